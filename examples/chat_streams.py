"""The example chat server on aiomsg's Streams front; the code is aiomsg/chat/streams_server.py.

    python examples/chat_streams.py [--host 127.0.0.1] [--port 7777]
    nc 127.0.0.1 7777            # or: python -m aiomsg chat 127.0.0.1 7777

Same as ``python -m aiomsg chat-server --impl streams``.
"""

import sys

from aiomsg.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["chat-server", "--impl", "streams", *sys.argv[1:]]))
