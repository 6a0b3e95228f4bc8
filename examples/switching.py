"""A connection that changes shape twice: raw bytes, then frames, then TLS (STARTTLS).

    python examples/switching.py    # needs trustme for the demo CA: pip install trustme

The client opens as AMQP does, with an 8-byte protocol header that no framing marks,
and sends its first frame in the same write. The server's connections begin with a
framing that reads exactly that header (``FixedLength(8)``: a framing decodes what
arrives at once, so it must be one that cannot misread the first bytes), then switch
to length-prefixed frames (``set_framing``): the frame that arrived behind the header
is decoded by the new framing, not lost. Then the client asks for TLS; the server
answers with one raw byte, as PostgreSQL answers an SSLRequest (``send_raw``, read
with ``receive_exactly``), and both upgrade the connection in place (``start_tls``).
"""

import ssl

import trustme

import aiomsg

HEADER = b"DEMO\x00\x00\x09\x01"  # the raw opening, AMQP-style
FRAMES = aiomsg.LengthPrefixed(4)

ca = trustme.CA()  # a throwaway authority, as in tls_echo.py
server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ca.issue_cert("localhost").configure_cert(server_context)
client_context = ssl.create_default_context()
ca.configure_trust(client_context)


async def handler(conn: aiomsg.Connection) -> None:
    header = await conn.receive()  # FixedLength(8): the raw opening
    conn.set_framing(FRAMES)  # what arrived behind the header is decoded as frames
    print("server: header", header, "then", await conn.receive())
    assert await conn.receive() == b"STARTTLS"
    await conn.send_raw(b"S")  # yes, outside any framing
    await conn.start_tls(server_context, server_side=True)
    async for message in conn:  # over TLS now, framed as before
        await conn.send(message.upper())


async def main() -> None:
    async with aiomsg.serve(handler, "127.0.0.1", 0, framing=aiomsg.FixedLength(8)) as server:
        async with aiomsg.connect("127.0.0.1", server.port, framing=FRAMES) as conn:
            await conn.send_raw(HEADER + FRAMES.encode(b"first frame"))  # one write
            await conn.send(b"STARTTLS")
            assert await conn.receive_exactly(1) == b"S"  # one raw byte: yes
            await conn.start_tls(client_context, server_hostname="localhost")
            await conn.send(b"secret")
            version = conn.get_extra_info("ssl_object").version()
            print("client:", await conn.receive(), "over", version)


if __name__ == "__main__":
    aiomsg.run(main())
