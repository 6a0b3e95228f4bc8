"""A half-close request/response server: the request is everything the client sends
before it half-closes; the response is that in capitals.

    python examples/upper_server.py [--port 8765]
    printf 'hello' | nc -N 127.0.0.1 8765          # HELLO
    python examples/upper_client.py hello           # b'HELLO'
"""

import argparse
import contextlib

import aiomsg


def handler(request: bytes) -> bytes:  # may also be `async def`
    return request.upper()


async def main(host: str, port: int) -> None:
    async with aiomsg.serve_requests(handler, host, port) as server:
        print(f"upper server on {host}:{server.port} ({aiomsg.loop_name()})", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Capitals, one request per connection.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        aiomsg.run(main(args.host, args.port))
