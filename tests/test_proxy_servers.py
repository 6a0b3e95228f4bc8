"""The PROXY protocol on every server, against real servers on loopback.

Each front (Streams, Unix sockets, half-close requests, ``serve_protocol`` for
MessageProtocol classes, ``serve_framed`` on asyncio, uvloop and trio) must: read
the header before anything else and never a byte more (the client's first bytes in
the same segment, or a TLS ClientHello, still reach the framing or the handshake),
expose the client's address and the header, keep the real endpoints for LOCAL and
UNKNOWN, and close what it must not serve: peers outside ``proxy_trusted``, garbage,
a header that stalls or announces too much, a flood of half headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute

import aiomsg

LINES = aiomsg.Lines()
TRUSTED = ["127.0.0.1/32"]
CLIENT = ("192.0.2.7", 40001)  # the address the proxy relays (TEST-NET-1)
V1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 40001 7000\r\n"
V2 = aiomsg.encode_proxy_header(
    CLIENT, ("198.51.100.1", 7000), authority="svc.example", unique_id=b"id-1", crc32c=True
)
WAIT = 20.0  # seconds any single wait of a test may take before it fails


@contextlib.contextmanager
def socket_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="aiomsg-proxy-") as tmp:  # short: AF_UNIX paths
        yield Path(tmp)


# --- the asyncio fronts -------------------------------------------------------------

# What each server saw per message: (remote_address, proxy_header, the socket's peer).
Seen = list[tuple[Any, Any, Any]]
ASYNCIO_FRONTS = ["serve", "serve_unix", "serve_protocol", "serve_protocol_unix"]
REQUEST_FRONTS = ["serve_requests", "serve_requests_unix"]


class EchoProtocol(aiomsg.MessageProtocol):
    framing = LINES
    seen: Seen

    def message_received(self, message: bytes) -> None:
        assert self.transport is not None
        self.seen.append(
            (self.remote_address, self.proxy_header, self.transport.get_extra_info("peername"))
        )
        self.send(message)


@contextlib.asynccontextmanager
async def asyncio_server(
    front: str, greeting: bytes | None = None, **kwargs: Any
) -> AsyncIterator[tuple[Any, Seen]]:
    """Run ``front`` (an echo of lines; ``greeting`` first) with the PROXY keywords
    ``kwargs``; yield its address (``(host, port)`` or a path) and what it saw."""
    seen: Seen = []
    unix = front.endswith("_unix")
    kwargs.setdefault("proxy_protocol", "any")
    kwargs.setdefault("proxy_trusted", ["unix"] if unix else TRUSTED)

    async def handler(conn: aiomsg.Connection) -> None:
        if greeting is not None:
            await conn.send(greeting)
        async for message in conn:
            seen.append(
                (conn.remote_address, conn.get_extra_info("proxy_header"),
                 conn.get_extra_info("peername"))
            )  # fmt: skip
            await conn.send(message)

    def protocol() -> EchoProtocol:
        made = EchoProtocol()
        made.seen = seen
        return made

    def answer(request: bytes) -> bytes:
        return b"got " + request

    with socket_dir() as tmp:
        path = str(tmp / "s.sock")
        server: aiomsg.Server
        if front == "serve":
            server = aiomsg.serve(handler, "127.0.0.1", 0, framing=LINES, **kwargs)
        elif front == "serve_unix":
            server = aiomsg.serve_unix(handler, path, framing=LINES, **kwargs)
        elif front == "serve_protocol":
            server = aiomsg.serve_protocol(protocol, "127.0.0.1", 0, **kwargs)
        elif front == "serve_protocol_unix":
            server = aiomsg.serve_protocol_unix(protocol, path, **kwargs)
        elif front == "serve_requests":
            server = aiomsg.serve_requests(answer, "127.0.0.1", 0, **kwargs)
        else:
            server = aiomsg.serve_requests_unix(answer, path, **kwargs)
        async with server:
            yield (path if unix else ("127.0.0.1", server.port)), seen


async def open_to(
    address: Any, source: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if isinstance(address, str):
        return await asyncio.open_unix_connection(address)
    local = (source, 0) if source else None
    return await asyncio.open_connection(*address, local_addr=local)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (a reset counts as a close)."""
    try:
        async with asyncio.timeout(WAIT):
            return await reader.read()
    except ConnectionResetError:
        return b""


async def exchange(address: Any, first: bytes, second: bytes = b"", *, request: bool) -> bytes:
    """Send ``first``, then ``second`` in another write; return the answer (a line, or
    everything until EOF for a half-close request)."""
    reader, writer = await open_to(address)
    try:
        writer.write(first)
        await writer.drain()
        if second:
            await asyncio.sleep(0.05)  # the server reads ``first`` on its own (not timed)
            writer.write(second)
        if request:
            writer.write_eof()
            return await read_until_closed(reader)
        async with asyncio.timeout(WAIT):
            return await reader.readline()
    finally:
        writer.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("front", ASYNCIO_FRONTS + REQUEST_FRONTS)
@pytest.mark.parametrize("header", [V1, V2], ids=["v1", "v2"])
async def test_header_and_first_bytes_in_one_segment(front: str, header: bytes) -> None:
    """AWS NLB's way: the header and the client's first message in one write. The
    message is served, and the server sees the client the header names."""
    request = front in REQUEST_FRONTS
    async with asyncio_server(front) as (address, seen):
        wire = header + (b"hello" if request else b"hello\n")
        answer = await exchange(address, wire, request=request)
    assert answer == (b"got hello" if request else b"hello\n")
    if not request:  # a request handler sees only the request's bytes
        [(remote, got, peer)] = seen
        assert remote == CLIENT
        assert got == aiomsg.parse_proxy_header(header)[0]
        assert peer != CLIENT  # the socket's peer: the proxy (loopback, or the Unix socket)


@pytest.mark.asyncio
@pytest.mark.parametrize("front", ASYNCIO_FRONTS + REQUEST_FRONTS)
@pytest.mark.parametrize("header", [V1, V2], ids=["v1", "v2"])
async def test_header_split_at_every_byte(front: str, header: bytes) -> None:
    """The header (and the first message after it) cut at every position, each cut
    on its own connection: every one is served, with the client's address."""
    request = front in REQUEST_FRONTS
    wire = header + (b"hello" if request else b"hello\n")
    cuts = range(1, len(wire))
    async with asyncio_server(front) as (address, seen):
        answers = await asyncio.gather(
            *(exchange(address, wire[:cut], wire[cut:], request=request) for cut in cuts)
        )
    assert answers == [b"got hello" if request else b"hello\n"] * len(cuts)
    if not request:
        assert [remote for remote, _, _ in seen] == [CLIENT] * len(cuts)


@pytest.mark.asyncio
@pytest.mark.parametrize("front", ["serve", "serve_unix", "serve_protocol"])
async def test_local_and_unknown_keep_the_real_peer(
    front: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A LOCAL header (HAProxy's health check) and v1 UNKNOWN are served with the
    connection's own endpoints; a check that closes after its header logs nothing."""
    local = aiomsg.encode_proxy_header(command="LOCAL")
    caplog.set_level(logging.DEBUG, "aiomsg")
    async with asyncio_server(front) as (address, seen):
        assert await exchange(address, local + b"one\n", request=False) == b"one\n"
        assert await exchange(address, b"PROXY UNKNOWN\r\ntwo\n", request=False) == b"two\n"
        for _ in range(5):  # health checks: the header, then close
            _, writer = await open_to(address)
            writer.write(local)
            writer.close()
            await writer.wait_closed()
        # one more exchange, so that the checks above were all handled first
        assert await exchange(address, local + b"three\n", request=False) == b"three\n"
    assert [got.command if got else None for _, got, _ in seen] == ["LOCAL", "PROXY", "LOCAL"]
    for remote, _, peer in seen:
        assert remote == peer  # the real peer, not a relayed client
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.asyncio
@pytest.mark.parametrize("front", ["serve", "serve_unix"])
async def test_server_speaks_first_after_a_header_alone(front: str) -> None:
    """A server that greets first is not kept waiting for data after the header."""
    async with asyncio_server(front, greeting=b"welcome") as (address, _):
        reader, writer = await open_to(address)
        writer.write(V2)
        async with asyncio.timeout(WAIT):
            assert await reader.readline() == b"welcome\n"
        writer.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("front", ["serve", "serve_requests"])
async def test_untrusted_peer_is_closed_unread_and_logged_once(
    front: str, caplog: pytest.LogCaptureFixture
) -> None:
    """From 127.0.0.2 (outside 127.0.0.1/32) a perfect header is refused: the connection
    closes with nothing served, and three such connections make one log line."""
    async with asyncio_server(front) as (address, seen):
        for _ in range(3):
            reader, writer = await open_to(address, source="127.0.0.2")
            writer.write(V2 + b"hello\n")
            assert await read_until_closed(reader) == b""
            writer.close()
        assert await exchange(address, V2 + b"ok\n", request=front == "serve_requests") != b""
    assert all(remote == CLIENT for remote, _, _ in seen)
    assert len(seen) == (1 if front == "serve" else 0)
    refusals = [r for r in caplog.records if "not in proxy_trusted" in r.getMessage()]
    assert len(refusals) == 1
    assert "127.0.0.2" in refusals[0].getMessage()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "bad",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\nhello\n",
        b"PROXY TCP4 " + b"1" * 200,  # no CRLF within 107 bytes
        aiomsg.encode_proxy_header(CLIENT, ("198.51.100.1", 7000))[:12] + b"\x31\x11\x00\x0c",
    ],
    ids=["http", "bad-address", "too-long", "v3"],
)
async def test_garbage_is_closed_with_one_line(
    bad: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with asyncio_server("serve", proxy_timeout=60) as (address, seen):
        for _ in range(3):
            reader, writer = await open_to(address)
            writer.write(bad)
            assert await read_until_closed(reader) == b""
            writer.close()
        assert await exchange(address, V1 + b"fine\n", request=False) == b"fine\n"
    assert [remote for remote, _, _ in seen] == [CLIENT]
    lines = [r for r in caplog.records if "without a valid PROXY header" in r.getMessage()]
    assert len(lines) == 1  # three failures within a minute: one line
    assert lines[0].exc_info is None


@pytest.mark.asyncio
async def test_v2_announcing_65535_bytes_is_refused_at_its_16th_byte() -> None:
    """It is closed at once, not after the (long) timeout: the 16 bytes say it all."""
    announce = aiomsg.encode_proxy_header(CLIENT, ("198.51.100.1", 7000))[:14] + b"\xff\xff"
    async with asyncio_server("serve", proxy_timeout=3600) as (address, _):
        reader, writer = await open_to(address)
        writer.write(announce + b"\x00" * 100)  # then it stalls
        assert await read_until_closed(reader) == b""  # within WAIT, far below an hour
        writer.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("front", ["serve", "serve_protocol"])
async def test_a_thousand_half_headers_time_out_while_a_good_client_is_served(
    front: str, caplog: pytest.LogCaptureFixture
) -> None:
    """1,000 connections send half a v2 header and stall. A good client is served
    meanwhile; each staller is closed once ``proxy_timeout`` passes, reported in one
    line with its count."""
    half = V2[:10]
    async with asyncio_server(front, proxy_timeout=2) as (address, seen):
        stalled = []
        for _ in range(1000):
            reader, writer = await open_to(address)
            writer.write(half)
            stalled.append((reader, writer))
        for n in range(3):
            assert await exchange(address, V2 + b"good %d\n" % n, request=False) == b"good %d\n" % n
        closes = await asyncio.gather(*(read_until_closed(reader) for reader, _ in stalled))
        assert closes == [b""] * 1000
        for _, writer in stalled:
            writer.close()
    assert [remote for remote, _, _ in seen] == [CLIENT] * 3
    lines = [r for r in caplog.records if "without a valid PROXY header" in r.getMessage()]
    assert len(lines) == 1
    assert "no complete header within 2 s" in lines[0].getMessage()


@pytest.mark.asyncio
async def test_waiting_connections_are_bounded_oldest_evicted() -> None:
    """With ``proxy_max_pending=50``, 150 stalled half headers leave 50 waiting (the
    100 oldest closed at once, long before the timeout); a good client still gets in,
    evicting one more."""
    half = V2[:10]
    async with asyncio_server("serve", proxy_timeout=3600, proxy_max_pending=50) as (address, _):
        stalled = []
        for _ in range(150):
            reader, writer = await open_to(address)
            writer.write(half)
            await writer.drain()
            stalled.append((reader, writer))
        # the first 100 are closed; the last 50 stay open
        assert [await read_until_closed(reader) for reader, _ in stalled[:100]] == [b""] * 100
        assert await exchange(address, V2 + b"good\n", request=False) == b"good\n"
        assert await read_until_closed(stalled[100][0]) == b""  # the oldest of the 50: evicted
        for reader, _ in stalled[101:]:
            assert not reader.at_eof()  # still waiting for their header
        for _, writer in stalled:
            writer.close()


# --- TLS after the header -----------------------------------------------------------


def header_and_hello_in_one_segment(
    port: int, client: ssl.SSLContext, header: bytes, message: bytes
) -> bytes:
    """A blocking client that writes the PROXY header and its TLS ClientHello in one
    ``send``, finishes the handshake, sends ``message`` and returns the first reply."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        sock.sendall(header + outgoing.read())
        for _ in range(50):  # a TLS 1.3 handshake takes a few round trips
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.do_handshake()
                break
            if pending := outgoing.read():
                sock.sendall(pending)
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed during the handshake")
            incoming.write(data)
        tls.write(message)
        sock.sendall(outgoing.read())
        for _ in range(50):
            with contextlib.suppress(ssl.SSLWantReadError):
                return tls.read(65536)
            data = sock.recv(65536)
            if not data:
                return b""
            incoming.write(data)
    raise AssertionError("no reply")


@pytest.mark.asyncio
async def test_tls_after_the_header(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """``send-proxy-v2`` to a TLS backend: the header in clear, then TLS. Both with the
    ClientHello in the header's segment and with aiomsg's client side."""
    server_ctx, client_ctx = tls
    async with asyncio_server("serve", ssl=server_ctx) as (address, seen):
        port = address[1]
        reply = await asyncio.to_thread(
            header_and_hello_in_one_segment, port, client_ctx, V2, b"over tls\n"
        )
        assert reply == b"over tls\n"
        async with aiomsg.connect(
            "127.0.0.1", port, framing=LINES, ssl=client_ctx, proxy_header=V1
        ) as conn:
            await conn.send(b"again")
            assert await conn.receive() == b"again"
    assert [remote for remote, _, _ in seen] == [CLIENT, CLIENT]


# --- the client side ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_client_side_round_trip() -> None:
    """``connect(proxy_header=ProxyHeader)``: the server gets the same header back,
    TLVs and checksum included, and the client's own source address applies."""
    sent, _ = aiomsg.parse_proxy_header(V2)
    async with asyncio_server("serve") as (address, seen):
        async with aiomsg.connect(
            *address, framing=LINES, proxy_header=sent, local_addr=("127.0.0.1", 0)
        ) as conn:
            await conn.send(b"ping")
            assert await conn.receive() == b"ping"
    [(remote, got, _)] = seen
    assert remote == CLIENT
    assert got == sent
    assert got.authority == "svc.example" and got.unique_id == b"id-1" and got.crc32c is not None


def test_client_side_refuses_what_is_not_a_header() -> None:
    with pytest.raises(TypeError, match="ProxyHeader or bytes"):
        aiomsg.connect("127.0.0.1", 1, framing=LINES, proxy_header="PROXY")  # type: ignore[arg-type]


# --- the keywords -------------------------------------------------------------------


def handler(conn: Any) -> Any:
    raise AssertionError("never served")


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"proxy_protocol": "v2"}, "without proxy_trusted"),
        ({"proxy_trusted": TRUSTED}, "proxy_protocol is not"),
        ({"proxy_protocol": "v3", "proxy_trusted": TRUSTED}, "'v1', 'v2', 'any'"),
        ({"proxy_protocol": "v2", "proxy_trusted": []}, "empty"),
        ({"proxy_protocol": "v2", "proxy_trusted": ["10.0.0.1/8"]}, "host bits"),
        ({"proxy_protocol": "v2", "proxy_trusted": ["nope"]}, "does not appear"),
        ({"proxy_protocol": "v2", "proxy_trusted": ["unix"]}, "no network"),
        ({"proxy_protocol": "v2", "proxy_trusted": TRUSTED, "proxy_timeout": 0}, "positive"),
        ({"proxy_protocol": "v2", "proxy_trusted": TRUSTED, "proxy_max_pending": 0}, "positive"),
    ],
)
def test_wrong_keywords_are_refused_when_the_server_is_made(
    keywords: dict[str, Any], message: str
) -> None:
    for make in (
        functools.partial(aiomsg.serve, handler, "127.0.0.1", 0, framing=LINES),
        functools.partial(aiomsg.serve_requests, handler, "127.0.0.1", 0),
        functools.partial(aiomsg.serve_protocol, EchoProtocol, "127.0.0.1", 0),
    ):
        with pytest.raises(ValueError, match=message):
            make(**keywords)


def test_a_unix_server_needs_unix_in_proxy_trusted() -> None:
    with pytest.raises(ValueError, match="'unix' in proxy_trusted"):
        aiomsg.serve_unix(handler, "/nonexistent/s", framing=LINES, proxy_protocol="v2",
                          proxy_trusted=TRUSTED)  # fmt: skip


def test_trust_accepts_networks_addresses_and_mapped_ipv4() -> None:
    import ipaddress

    from aiomsg._proxy_accept import proxy_settings

    trusted = [
        "10.0.0.0/8", ipaddress.ip_address("192.0.2.1"), ipaddress.ip_network("2001:db8::/32")
    ]  # fmt: skip
    settings = proxy_settings("v2", trusted)
    assert settings is not None
    assert settings.trusts(("10.1.2.3", 1)) and settings.trusts(("::ffff:10.9.9.9", 1, 0, 0))
    assert settings.trusts(("192.0.2.1", 1)) and not settings.trusts(("192.0.2.2", 1))
    assert settings.trusts(("2001:db8::5", 1, 0, 0)) and not settings.trusts(("2001:db9::", 1))
    assert not settings.trusts("")  # a Unix peer, without "unix"


# --- the anyio front (asyncio, uvloop, trio) ----------------------------------------

AnyioSeen = list[tuple[Any, Any, Any]]


@contextlib.asynccontextmanager
async def anyio_server(
    unix: bool, tls_context: ssl.SSLContext | None = None, greeting: bytes | None = None,
    **kwargs: Any,
) -> AsyncIterator[tuple[Any, AnyioSeen]]:  # fmt: skip
    seen: AnyioSeen = []
    kwargs.setdefault("proxy_protocol", "any")
    kwargs.setdefault("proxy_trusted", ["unix"] if unix else TRUSTED)

    async def handler(stream: aiomsg.FramedStream) -> None:
        if greeting is not None:
            await stream.send(greeting)
        async for message in stream:
            seen.append(
                (stream.extra(SocketAttribute.remote_address),
                 stream.extra(aiomsg.ProxyAttribute.header, None),
                 stream.extra(aiomsg.ProxyAttribute.proxy_address, None))
            )  # fmt: skip
            await stream.send(message)

    with socket_dir() as tmp:
        async with anyio.create_task_group() as tg:
            if unix:
                where: Any = await tg.start(
                    functools.partial(aiomsg.serve_framed_unix, handler, str(tmp / "s.sock"),
                                      framing=LINES, **kwargs)
                )  # fmt: skip
            else:
                port = await tg.start(
                    functools.partial(aiomsg.serve_framed, handler, "127.0.0.1", 0,
                                      framing=LINES, ssl_context=tls_context, **kwargs)
                )  # fmt: skip
                where = ("127.0.0.1", port)
            yield where, seen
            tg.cancel_scope.cancel()


async def anyio_open(address: Any, source: str | None = None) -> ByteStream:
    if isinstance(address, str):
        return await anyio.connect_unix(address)
    return await anyio.connect_tcp(*address, local_host=source)


async def anyio_read_until_closed(stream: ByteStream) -> bytes:
    chunks = []
    with anyio.fail_after(WAIT):
        for _ in range(1000):
            try:
                chunks.append(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                break
    return b"".join(chunks)


async def anyio_exchange(address: Any, first: bytes, second: bytes = b"") -> bytes:
    stream = await anyio_open(address)
    async with stream:
        await stream.send(first)
        if second:
            await anyio.sleep(0.05)  # the server reads ``first`` on its own (not timed)
            await stream.send(second)
        with anyio.fail_after(WAIT):
            got = b""
            while not got.endswith(b"\n"):
                got += await stream.receive()
        return got


@pytest.mark.anyio
@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
@pytest.mark.parametrize("header", [V1, V2], ids=["v1", "v2"])
async def test_anyio_header_split_at_every_byte(unix: bool, header: bytes) -> None:
    wire = header + b"hello\n"
    cuts = range(1, len(wire))
    answers: list[bytes] = []
    async with anyio_server(unix) as (address, seen):

        async def one(cut: int) -> None:
            answers.append(await anyio_exchange(address, wire[:cut], wire[cut:]))

        async with anyio.create_task_group() as tg:
            for cut in cuts:
                tg.start_soon(one, cut)
        assert await anyio_exchange(address, wire) == b"hello\n"  # one segment
    assert answers == [b"hello\n"] * len(cuts)
    assert [remote for remote, _, _ in seen] == [CLIENT] * (len(cuts) + 1)
    for _, got, proxy in seen:
        assert got == aiomsg.parse_proxy_header(header)[0]
        assert proxy != CLIENT


@pytest.mark.anyio
async def test_anyio_hostile_input(caplog: pytest.LogCaptureFixture) -> None:
    """Untrusted, garbage, 65,535 announced: each closed unserved; LOCAL served with
    the real peer; a good client served after all of it."""
    announce = V2[:14] + b"\xff\xff"
    async with anyio_server(False, proxy_timeout=3600) as (address, seen):
        for source, wire in [("127.0.0.2", V2 + b"x\n"), (None, b"HELLO\r\n"), (None, announce)]:
            stream = await anyio_open(address, source)
            async with stream:
                await stream.send(wire)
                assert await anyio_read_until_closed(stream) == b""
        local = aiomsg.encode_proxy_header(command="LOCAL")
        assert await anyio_exchange(address, local + b"check\n") == b"check\n"
        assert await anyio_exchange(address, V2 + b"good\n") == b"good\n"
    [(real, local_header, proxy), (client, _, _)] = seen
    assert local_header.command == "LOCAL" and real == proxy  # the real peer
    assert client == CLIENT
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(messages) == 2  # one untrusted peer, one line for the two bad headers
    assert "127.0.0.2" in messages[0] and "not in proxy_trusted" in messages[0]
    assert "closed 1 connection(s) without a valid PROXY header" in messages[1]


@pytest.mark.anyio
async def test_anyio_half_headers_time_out_while_a_good_client_is_served() -> None:
    async with anyio_server(False, proxy_timeout=2) as (address, seen):
        stalled = []
        for _ in range(300):
            stream = await anyio_open(address)
            await stream.send(V2[:10])
            stalled.append(stream)
        assert await anyio_exchange(address, V2 + b"good\n") == b"good\n"
        for stream in stalled:
            assert await anyio_read_until_closed(stream) == b""
            await stream.aclose()
    assert [remote for remote, _, _ in seen] == [CLIENT]


@pytest.mark.anyio
async def test_anyio_waiting_connections_are_bounded() -> None:
    async with anyio_server(False, proxy_timeout=3600, proxy_max_pending=20) as (address, _):
        stalled = []
        for _ in range(60):
            stream = await anyio_open(address)
            await stream.send(V2[:10])
            stalled.append(stream)
        for stream in stalled[:40]:  # evicted, oldest first, long before the timeout
            assert await anyio_read_until_closed(stream) == b""
        assert await anyio_exchange(address, V2 + b"good\n") == b"good\n"
        for stream in stalled:
            await stream.aclose()


@pytest.mark.anyio
async def test_anyio_tls_after_the_header_and_server_speaks_first(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, client_ctx = tls
    async with anyio_server(False, server_ctx, greeting=b"welcome") as (address, seen):
        port = address[1]
        reply = await anyio.to_thread.run_sync(
            header_and_hello_in_one_segment, port, client_ctx, V2, b"over tls\n"
        )
        assert reply == b"welcome\n"
        async with aiomsg.connect_framed(
            "127.0.0.1", port, framing=LINES, ssl_context=client_ctx,
            proxy_header=aiomsg.parse_proxy_header(V1)[0],
        ) as stream:  # fmt: skip
            assert await stream.receive() == b"welcome"  # nothing sent after the header
            await stream.send(b"ping")
            assert await stream.receive() == b"ping"
    assert seen  # the ping at least (the threaded client may have left before its echo)
    assert [remote for remote, _, _ in seen] == [CLIENT] * len(seen)
