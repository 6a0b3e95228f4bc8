"""A tiny key-value store over half-close request/response (one request per connection).

Run it, then talk to it with anything that can half-close::

    python examples/kv_server.py --port 8765
    printf 'SET greeting hello' | nc -N 127.0.0.1 8765     # -> OK
    printf 'GET greeting'       | nc -N 127.0.0.1 8765     # -> hello
    python -m aiomsg request 127.0.0.1 8765 <<< 'DEL greeting'

Requests are ``GET key``, ``SET key value`` and ``DEL key``; answers are the value,
``OK``, or a line starting with ``ERROR``.
"""

from __future__ import annotations

import argparse
import contextlib

import aiomsg


class KeyValueStore:
    """The request handler: one request in, one response out."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def __call__(self, request: bytes) -> bytes:
        command, _, rest = request.strip().partition(b" ")
        key, _, value = rest.partition(b" ")
        match command.upper(), key:
            case _, b"":
                return b"ERROR usage: GET key | SET key value | DEL key\n"
            case b"GET", _:
                return self.data.get(key, b"ERROR no such key\n")
            case b"SET", _:
                self.data[key] = value
                return b"OK\n"
            case b"DEL", _:
                return b"OK\n" if self.data.pop(key, None) is not None else b"ERROR no such key\n"
        return b"ERROR unknown command\n"


async def main(host: str, port: int) -> None:
    server = await aiomsg.serve_requests(KeyValueStore(), host, port, max_size=1 << 20)
    print(f"key-value store on {host}:{server.port} ({aiomsg.loop_name()})", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        aiomsg.run(main(args.host, args.port))
