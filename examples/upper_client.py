"""One half-close request to examples/upper_server.py.

    python examples/upper_client.py [--port 8765] hello    # b'HELLO'
"""

import argparse

import aiomsg


async def main(host: str, port: int, text: str) -> None:
    # Connect, send, half-close ("done sending, still listening"), read until the server closes.
    print(await aiomsg.request(host, port, text.encode(), timeout=30.0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="One request to the upper server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("text", nargs="?", default="hello")
    args = parser.parse_args()
    aiomsg.run(main(args.host, args.port, args.text))
