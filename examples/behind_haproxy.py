"""A line echo server behind a load balancer that speaks the PROXY protocol (HAProxy's
``send-proxy-v2``, AWS NLB): it greets each client by the client's own address.

    python examples/behind_haproxy.py [--port 9000] [--trusted 127.0.0.1/32]
    # HAProxy: server s1 127.0.0.1:9000 send-proxy-v2 check check-send-proxy
"""

import argparse
import contextlib

import aiomsg


async def handler(conn: aiomsg.Connection) -> None:
    header = conn.get_extra_info("proxy_header")  # the ProxyHeader HAProxy sent
    if header.command == "LOCAL":
        return  # HAProxy's own health check: nothing to greet
    host, port = conn.remote_address[:2]  # the client's, from the header
    balancer = conn.get_extra_info("peername")[0]  # the socket's peer: HAProxy
    await conn.send(f"hello {host}:{port}, via {balancer}".encode())
    async for message in conn:
        await conn.send(message)


async def main(host: str, port: int, trusted: list[str]) -> None:
    async with aiomsg.serve(
        handler,
        host,
        port,
        framing=aiomsg.Lines(),
        proxy_protocol="v2",  # every connection starts with a v2 header...
        proxy_trusted=trusted,  # ...from these networks only; others are closed unread
    ) as server:
        print(f"echo behind a load balancer on {host}:{server.port} ({aiomsg.loop_name()})",
              flush=True)  # fmt: skip
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A line echo server behind HAProxy.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--trusted", action="append", help="the balancers' networks")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        aiomsg.run(main(args.host, args.port, args.trusted or ["127.0.0.1/32"]))
