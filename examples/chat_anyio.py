"""The example chat server on aiomsg's Anyio front; the code is aiomsg/chat/anyio_server.py.

    python examples/chat_anyio.py [--host 127.0.0.1] [--port 7777]
    nc 127.0.0.1 7777            # or: python -m aiomsg chat 127.0.0.1 7777

Same as ``python -m aiomsg chat-server --impl anyio``.
"""

import sys

from aiomsg.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["chat-server", "--impl", "anyio", *sys.argv[1:]]))
