"""TLS on the Streams front and on the anyio front, with a throwaway certificate authority.

    python examples/tls_echo.py    # needs trustme for the demo CA: pip install trustme

In production the server loads its real certificate and key
(``ctx.load_cert_chain("cert.pem", "key.pem")``) and clients use
``ssl.create_default_context()``, which trusts the system's authorities. Here trustme
makes a certificate authority and a certificate for 127.0.0.1 that only this
program trusts, so the example runs anywhere without files.
"""

import functools
import ssl

import anyio
import trustme

import aiomsg

FRAMING = aiomsg.LengthPrefixed(4)

# The certificates: a CA, and a server certificate it signed for the address we serve on.
ca = trustme.CA()
server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ca.issue_cert("127.0.0.1").configure_cert(server_context)
client_context = ssl.create_default_context()  # verifies the certificate and the host name
ca.configure_trust(client_context)  # ... against our CA, in place of the system's


async def echo(conn: aiomsg.Connection) -> None:
    async for message in conn:
        await conn.send(message)


async def echo_stream(stream: aiomsg.FramedStream) -> None:
    async for message in stream:
        await stream.send(message)


async def streams_front() -> None:
    # ssl= is asyncio's: the server's context on serve(), the client's on connect().
    async with aiomsg.serve(echo, "127.0.0.1", 0, framing=FRAMING, ssl=server_context) as server:
        conn = await aiomsg.connect("127.0.0.1", server.port, framing=FRAMING, ssl=client_context)
        async with conn:
            await conn.send(b"secret")
            tls = conn.get_extra_info("ssl_object")  # the ssl.SSLObject: version, peer cert...
            print("Streams over TLS:", await conn.receive(), tls.version())


async def anyio_front() -> None:
    async with anyio.create_task_group() as tg:
        serve = functools.partial(
            aiomsg.serve_framed, echo_stream, "127.0.0.1", 0, framing=FRAMING,
            ssl_context=server_context,  # clients must finish the handshake in 30 s
        )  # fmt: skip
        port = await tg.start(serve)
        stream = await aiomsg.connect_framed(
            "127.0.0.1", port, framing=FRAMING, ssl_context=client_context
        )
        async with stream:
            await stream.send(b"secret")
            print("anyio over TLS:", await stream.receive())
            try:
                await stream.send_eof()
            except NotImplementedError:  # TLS has no half-close: end messages with the framing
                print("anyio over TLS: no send_eof()")
        tg.cancel_scope.cancel()


if __name__ == "__main__":
    aiomsg.run(streams_front())
    anyio.run(anyio_front, backend_options={"loop_factory": aiomsg.loop_factory()})
