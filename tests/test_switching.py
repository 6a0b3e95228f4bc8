"""Connections that change shape part-way, on every front and loop: another framing at a
message boundary, raw bytes in between, and TLS started in place (STARTTLS). The peers send
the next bytes in the same segment as the message that announces the switch, so what
arrived behind the boundary (the leftover) must reach the new framing untouched."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.streams.tls import TLSAttribute

import aiomsg
from aiomsg.framing import switch_decoder
from aiomsg.testing import running_server

from .conftest import Codec
from .peers import messages_for
from .strategies import CASES, Case

FRAMES = aiomsg.LengthPrefixed(4)
HEADER = b"AMQP\x00\x00\x09\x01"  # AMQP 0-9-1's protocol header: 8 raw bytes, then frames
SEGMENT = HEADER + FRAMES.encode(b"one") + FRAMES.encode(b"two")


# --- sans-I/O ---------------------------------------------------------------------------


@pytest.mark.parametrize("split", range(len(SEGMENT) + 1))
def test_take_leftover_hands_over_exactly_what_follows_the_last_message(split: int) -> None:
    """The header framed as FixedLength(8), then frames: split at every byte."""
    decoder = aiomsg.FixedLength(8).decoder()
    got = decoder.feed(SEGMENT[:split])
    if got:  # a whole header arrived: switch behind it
        assert got[0] == HEADER
        rest = got[1:]  # FixedLength chunks of the frames, decoded too soon
        new, messages = switch_decoder(decoder, aiomsg.FixedLength(8), rest, FRAMES)
        messages += new.feed(SEGMENT[split:])
        assert messages == [b"one", b"two"]
    else:
        assert decoder.take_leftover() == SEGMENT[:split]
        with pytest.raises(aiomsg.FramingError):  # retired
            decoder.feed(b"x")


def test_a_framing_that_cannot_rebuild_its_bytes_refuses_and_changes_nothing() -> None:
    lines = aiomsg.Lines()
    decoder = lines.decoder()
    assert decoder.feed(b"STARTBODY\r\nab\ncd") == [b"STARTBODY", b"ab"]
    with pytest.raises(ValueError, match="cannot rebuild their exact bytes"):
        switch_decoder(decoder, lines, [b"ab"], aiomsg.FixedLength(5))
    assert decoder.feed(b"\n") == [b"cd"]  # still usable
    # Behind a message that ends what was read, the leftover is enough:
    assert decoder.feed(b"LEN\nhello") == [b"LEN"]
    _, messages = switch_decoder(decoder, lines, [], aiomsg.FixedLength(5))
    assert messages == [b"hello"]


# --- the Streams front ------------------------------------------------------------------


async def _send_segment(port: int, data: bytes) -> bytes:
    """A raw client: send ``data`` in one segment, return all it is sent back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    answer = await reader.read()
    writer.close()
    return answer


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "first",
    [aiomsg.FixedLength(8), aiomsg.LengthPrefixed(2), aiomsg.Lines()],
    ids=["fixed", "length2", "lines"],
)
async def test_streams_receive_exactly_then_switch(first: aiomsg.Framing) -> None:
    """Whatever framing the connection began with, the raw header and then the frames."""
    got: list[bytes] = []

    async def handler(conn: aiomsg.Connection) -> None:
        got.append(await conn.receive_exactly(8))
        conn.set_framing(FRAMES)
        got.extend([m async for m in conn])
        await conn.send(b"done")

    async with asyncio.timeout(10), aiomsg.serve(handler, "127.0.0.1", 0, framing=first) as srv:
        assert await _send_segment(srv.port, SEGMENT) == FRAMES.encode(b"done")
    assert got == [HEADER, b"one", b"two"]


@pytest.mark.asyncio
async def test_streams_switch_with_messages_already_decoded_behind_the_boundary() -> None:
    """The old framing decoded the new framing's bytes too soon: they are rebuilt."""
    got: list[bytes] = []
    old = aiomsg.FixedLength(4)
    new = aiomsg.Delimited(b"|")

    async def handler(conn: aiomsg.Connection) -> None:
        got.append(await conn.receive())  # b"HELO"; b"a|bc" and b"|def" wait, decoded
        await asyncio.sleep(0.05)
        conn.set_framing(receive=new)
        got.extend([m async for m in conn])

    async with asyncio.timeout(10), aiomsg.serve(handler, "127.0.0.1", 0, framing=old) as srv:
        await _send_segment(srv.port, b"HELOa|bc|def|gh|")
    assert got == [b"HELO", b"a", b"bc", b"def", b"gh"]


@pytest.mark.asyncio
async def test_streams_refuses_a_switch_it_cannot_make_exactly() -> None:
    outcome: list[object] = []

    async def handler(conn: aiomsg.Connection) -> None:
        outcome.append(await conn.receive())
        await asyncio.sleep(0.05)  # b"ab" decoded behind the boundary
        try:
            conn.set_framing(aiomsg.FixedLength(2))
        except ValueError as exc:
            outcome.append(exc)
        outcome.append(await conn.receive())  # unchanged: the next line

    async with asyncio.timeout(10):
        async with aiomsg.serve(handler, "127.0.0.1", 0, framing=aiomsg.Lines()) as srv:
            await _send_segment(srv.port, b"GO\r\nab\n")
    assert outcome[0] == b"GO" and outcome[2] == b"ab"
    assert isinstance(outcome[1], ValueError)


@pytest.mark.asyncio
async def test_streams_send_framing_and_raw_bytes() -> None:
    async def handler(conn: aiomsg.Connection) -> None:
        with pytest.raises(TypeError, match="not str"):
            await conn.send_raw("S")  # type: ignore[arg-type]
        await conn.send_raw(b"S")  # PostgreSQL's one-byte answer
        conn.set_framing(send=aiomsg.Netstring())
        await conn.send(b"hi")
        assert conn.framing == aiomsg.Lines() and conn.send_framing == aiomsg.Netstring()

    async with asyncio.timeout(10):
        async with aiomsg.serve(handler, "127.0.0.1", 0, framing=aiomsg.Lines()) as srv:
            assert await _send_segment(srv.port, b"") == b"S2:hi,"


# --- STARTTLS ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_streams_starttls_on_both_sides(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    seen: list[object] = []

    async def handler(conn: aiomsg.Connection) -> None:
        assert await conn.receive() == b"STARTTLS"
        await conn.send(b"GO AHEAD")
        await conn.start_tls(server_ctx, server_side=True)
        seen.append(conn.get_extra_info("ssl_object") is not None)
        async for message in conn:
            await conn.send(message.upper())

    framing = aiomsg.Lines()
    async with asyncio.timeout(10), aiomsg.serve(handler, "127.0.0.1", 0, framing=framing) as srv:
        async with aiomsg.connect("127.0.0.1", srv.port, framing=framing) as conn:
            await conn.send(b"STARTTLS")
            assert await conn.receive() == b"GO AHEAD"
            await conn.start_tls(client_ctx, server_hostname="localhost")
            assert conn.get_extra_info("ssl_object") is not None
            for word in (b"secret", b"x" * 100_000):
                await conn.send(word)
                assert await conn.receive() == word.upper()
    assert seen == [True]


@pytest.mark.asyncio
async def test_streams_starttls_refuses_plaintext_sent_behind_the_request(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """A client that sends its next bytes before the handshake (or an attacker injecting
    them): the server sees a FramingError, the bytes are neither decrypted nor dropped."""
    server_ctx, _ = tls
    outcome: list[BaseException] = []

    async def handler(conn: aiomsg.Connection) -> None:
        assert await conn.receive() == b"STARTTLS"
        try:
            await conn.start_tls(server_ctx, server_side=True)
        except aiomsg.FramingError as exc:
            outcome.append(exc)

    async with asyncio.timeout(10):
        async with aiomsg.serve(handler, "127.0.0.1", 0, framing=aiomsg.Lines()) as srv:
            await _send_segment(srv.port, b"STARTTLS\nMAIL FROM:<x>\n")
    assert len(outcome) == 1
    assert "after the point where TLS starts" in str(outcome[0])


# --- the Protocol front -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_protocol_front_switches_inside_message_received() -> None:
    """The rest of the read that carried the header is re-decoded by the new framing."""
    got: list[bytes] = []
    done = asyncio.get_running_loop().create_future()

    class Amqp(aiomsg.MessageProtocol):
        framing = aiomsg.FixedLength(8)

        def message_received(self, message: bytes) -> None:
            got.append(message)
            if message == HEADER:
                self.set_framing(FRAMES)
            elif message == b"two":
                self.send(b"done")
                done.set_result(None)

    server = await asyncio.get_running_loop().create_server(Amqp, "127.0.0.1", 0)
    async with server, asyncio.timeout(10):
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(SEGMENT)
        await done
        assert await reader.readexactly(8) == FRAMES.encode(b"done")
        writer.close()
    assert got == [HEADER, b"one", b"two"]


def _starttls_server(
    server_ctx: ssl.SSLContext, tasks: list[asyncio.Task[None]]
) -> Callable[[], aiomsg.MessageProtocol]:
    """A Lines server that answers ``STARTTLS`` with ``GO`` and starts TLS, and answers
    any other line with it reversed; its start_tls() tasks go to ``tasks`` (kept: a task
    nobody holds may vanish)."""

    class Server(aiomsg.MessageProtocol):
        framing = aiomsg.Lines()

        def message_received(self, message: bytes) -> None:
            if message == b"STARTTLS":
                self.send(b"GO")
                tasks.append(self.start_tls(server_ctx, server_side=True))
            else:
                self.send(message[::-1])

    return Server


@pytest.mark.asyncio
async def test_protocol_front_starttls(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    loop = asyncio.get_running_loop()
    echoed = loop.create_future()
    tasks: list[asyncio.Task[None]] = []  # kept: a task nobody holds may vanish

    Server = _starttls_server(server_ctx, tasks)

    class Client(aiomsg.MessageProtocol):
        framing = aiomsg.Lines()

        def message_received(self, message: bytes) -> None:
            if message == b"GO":
                tasks.append(loop.create_task(self._secure()))
            else:
                echoed.set_result(message)

        async def _secure(self) -> None:
            await self.start_tls(client_ctx, server_hostname="localhost")
            self.send(b"over tls")

    server = await loop.create_server(Server, "127.0.0.1", 0)
    async with server, asyncio.timeout(10):
        port = server.sockets[0].getsockname()[1]
        _, client = await loop.create_connection(Client, "127.0.0.1", port)
        client.send(b"STARTTLS")
        assert await echoed == b"slt revo"
        assert client.transport is not None
        assert client.transport.get_extra_info("ssl_object") is not None
        client.close()


async def _tls_client_sending_with_its_finished(
    port: int, client_ctx: ssl.SSLContext, first: bytes
) -> bytes:
    """A client that asks for STARTTLS, then sends ``first`` in the very segment that ends
    its handshake: the server's TLS layer may decrypt it before the server's
    ``start_tls()`` has returned. Returns the server's first answer over TLS."""
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    with sock:
        await loop.sock_sendall(sock, b"STARTTLS\n")
        plain = b""
        while not plain.endswith(b"GO\n"):
            plain += await loop.sock_recv(sock, 100)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
        for _ in range(20):  # a handshake takes two or three round trips
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await loop.sock_sendall(sock, outgoing.read())
                incoming.write(await loop.sock_recv(sock, 65536))
        tls.write(first)  # behind the handshake's last bytes, not yet sent
        await loop.sock_sendall(sock, outgoing.read())  # one segment: Finished + data
        answer = b""
        while not answer.endswith(b"\n"):
            try:
                answer += tls.read(100)
            except ssl.SSLWantReadError:
                data = await loop.sock_recv(sock, 65536)
                assert data, "the server closed instead of answering"
                incoming.write(data)
        return answer


@pytest.mark.asyncio
async def test_protocol_front_starttls_keeps_what_arrives_with_the_handshake(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """A message the peer sends with its handshake's last bytes is held until TLS is in
    place, then delivered (and answered over TLS), not lost or sent in plaintext."""
    server_ctx, client_ctx = tls
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    Server = _starttls_server(server_ctx, tasks)

    server = await loop.create_server(Server, "127.0.0.1", 0)
    async with server, asyncio.timeout(10):
        port = server.sockets[0].getsockname()[1]
        answer = await _tls_client_sending_with_its_finished(port, client_ctx, b"early\n")
    assert answer == b"ylrae\n"
    for task in tasks:
        await task


@pytest.mark.asyncio
async def test_protocol_front_starttls_refuses_what_the_same_read_carried_behind_it(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """Called from message_received: the rest of that read is behind the boundary."""
    server_ctx, _ = tls
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[BaseException] = loop.create_future()
    delivered: list[bytes] = []

    class Server(aiomsg.MessageProtocol):
        framing = aiomsg.Lines()

        def message_received(self, message: bytes) -> None:
            delivered.append(message)
            if message == b"STARTTLS":
                try:
                    self.start_tls(server_ctx, server_side=True)
                except aiomsg.FramingError as exc:
                    outcome.set_result(exc)
                    self.close()

    server = await loop.create_server(Server, "127.0.0.1", 0)
    async with server, asyncio.timeout(10):
        port = server.sockets[0].getsockname()[1]
        await _send_segment(port, b"STARTTLS\nMAIL FROM:<x>\n")
        assert "1 message(s)" in str(await outcome)
    assert delivered == [b"STARTTLS"]  # the plaintext behind it never reached the application


# --- the anyio front (asyncio, uvloop, trio) --------------------------------------------


@asynccontextmanager
async def raw_client(port: int) -> AsyncIterator[anyio.abc.SocketStream]:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        yield stream


async def _anyio_segment(port: int, data: bytes) -> bytes:
    async with raw_client(port) as stream:
        await stream.send(data)
        await stream.send_eof()
        answer = b""
        with anyio.move_on_after(5):
            while True:
                try:
                    answer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
        return answer


Wrap = Callable[[aiomsg.FramedStream], Awaitable[None]]


@pytest.mark.anyio
async def test_anyio_receive_exactly_then_switch() -> None:
    got: list[bytes] = []

    async def handler(stream: aiomsg.FramedStream) -> None:
        got.append(await stream.receive_exactly(8))
        stream.set_framing(FRAMES)
        got.extend([m async for m in stream])
        await stream.send(b"done")

    with anyio.fail_after(10):
        async with running_server(handler, aiomsg.LengthPrefixed(2)) as (_, port):
            assert await _anyio_segment(port, SEGMENT) == FRAMES.encode(b"done")
    assert got == [HEADER, b"one", b"two"]


@pytest.mark.anyio
async def test_anyio_framed_stream_over_any_byte_stream_switches() -> None:
    """A FramedStream the user built around an anyio stream (not aiomsg's transport)."""
    got: list[bytes] = []

    async def handle(raw: anyio.abc.SocketStream) -> None:
        stream = aiomsg.FramedStream(raw, aiomsg.FixedLength(4))
        got.append(await stream.receive())
        stream.set_framing(aiomsg.Delimited(b"|"))
        got.extend([m async for m in stream])
        await stream.send_raw(b"ok")
        await stream.aclose()

    with anyio.fail_after(10):
        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, handle)
                assert await _anyio_segment(port, b"HELOa|bc|") == b"ok"
                tg.cancel_scope.cancel()
    assert got == [b"HELO", b"a", b"bc"]


@pytest.mark.anyio
async def test_anyio_starttls_on_both_sides(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    secure: list[bool] = []

    async def handler(stream: aiomsg.FramedStream) -> None:
        assert await stream.receive() == b"STARTTLS"
        await stream.send(b"GO")
        await stream.start_tls(server_ctx, server_side=True)
        secure.append(stream.extra(TLSAttribute.ssl_object, None) is not None)
        async for message in stream:
            await stream.send(message.upper())

    framing = aiomsg.Lines()
    with anyio.fail_after(10):
        async with running_server(handler, framing) as (host, port):
            async with aiomsg.connect_framed(host, port, framing=framing) as stream:
                await stream.send(b"STARTTLS")
                assert await stream.receive() == b"GO"
                await stream.start_tls(client_ctx, hostname="localhost")
                await stream.send(b"quiet")
                assert await stream.receive() == b"QUIET"
    assert secure == [True]


@pytest.mark.anyio
async def test_anyio_starttls_refuses_plaintext_sent_behind_the_request(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, _ = tls
    outcome: list[BaseException] = []

    async def handler(stream: aiomsg.FramedStream) -> None:
        assert await stream.receive() == b"STARTTLS"
        try:
            await stream.start_tls(server_ctx, server_side=True)
        except aiomsg.FramingError as exc:
            outcome.append(exc)

    with anyio.fail_after(10):
        async with running_server(handler, aiomsg.Lines()) as (_, port):
            await _anyio_segment(port, b"STARTTLS\nQUIT\n")
    assert len(outcome) == 1


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_take_leftover_gives_back_every_byte_held_at_every_cut(
    case: Case, codec_implementation: Codec
) -> None:
    """Header included, nested headers too (TypePrefixed's used to go missing)."""
    for message in messages_for(case.framing, (1, 40)):
        wire = case.framing.encode(message)
        for cut in range(1, len(wire)):
            decoder = codec_implementation.decoder(case.framing)
            if decoder.feed(wire[:cut]):
                continue  # a whole message already (UntilEOF aside, none)
            assert decoder.take_leftover() == wire[:cut], cut
