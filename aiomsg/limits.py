"""Every default limit of aiomsg's fronts, in one place (``docs/limits.md`` explains them).

Each one has a knob of the same name (without ``DEFAULT_``) on the calls that
use it: ``serve``, ``connect``, ``serve_framed``, ``connect_framed``,
``FramedStream`` and ``MessageProtocol``. The framings' own limit,
``max_size``, is :data:`aiomsg.DEFAULT_MAX_SIZE`.
"""

from __future__ import annotations

__all__ = [
    "COPY_LIMIT",
    "DEFAULT_BACKLOG",
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_HEARTBEAT_TIMEOUT_FACTOR",
    "DEFAULT_KEEPALIVE",
    "DEFAULT_LINGER_TIMEOUT",
    "DEFAULT_MEMORY_BUDGET",
    "DEFAULT_MESSAGE_TIMEOUT",
    "DEFAULT_READ_SIZE",
    "DEFAULT_TLS_HANDSHAKE_TIMEOUT",
    "DEFAULT_WRITE_HIGH_WATER",
]

#: Bytes read per system call: large reads amortise the per-read cost over many
#: messages. The buffer is shared by every connection of a thread, so its size
#: costs nothing per connection.
DEFAULT_READ_SIZE = 256 * 1024

#: Unsent bytes above which ``drain()`` (and the Streams ``send()``) wait for the
#: peer, and above which the Protocol front stops reading from it.
DEFAULT_WRITE_HIGH_WATER = 256 * 1024

#: Bytes that all the connections of one event loop may hold together in unfinished
#: messages, decoded messages not yet taken and unsent output, before the ones holding
#: the most stop reading (``docs/limits.md``, "Memory of a whole server").
DEFAULT_MEMORY_BUDGET = 512 * 1024 * 1024

#: Seconds a message that has begun may take to complete.
DEFAULT_MESSAGE_TIMEOUT = 60.0

#: With the heartbeat on (``heartbeat=`` seconds), a peer from which nothing
#: arrived for this many heartbeat intervals is closed, unless
#: ``heartbeat_timeout=`` says otherwise. A peer with the same interval sends
#: something at least every two intervals (it checks once per interval), so
#: three leave one interval of margin for a busy loop or a slow network.
DEFAULT_HEARTBEAT_TIMEOUT_FACTOR = 3.0

#: Seconds of silence before TCP keepalive probes a peer (then every
#: ``keepalive / 6`` s, 5 times): a dead peer is found in about twice this.
DEFAULT_KEEPALIVE = 60.0

#: Seconds ``connect()`` may take, TLS handshake included.
DEFAULT_CONNECT_TIMEOUT = 30.0

#: Seconds a closing connection may make no progress flushing its output before
#: it is aborted (a peer that never reads would otherwise hold it forever).
DEFAULT_CLOSE_TIMEOUT = 30.0

#: Seconds a close after a framing error or a timeout waits for the peer to
#: close its side (so that a last notice is not destroyed by a reset).
DEFAULT_LINGER_TIMEOUT = 2.0

#: Listen backlog of the servers: a burst of clients connecting at once is
#: queued by the kernel instead of being made to retry (a SYN retry costs 1 s+).
DEFAULT_BACKLOG = 1024

#: Seconds a TLS client may take to finish its handshake on ``serve_framed``
#: (``serve`` uses asyncio's own default, 60 s).
DEFAULT_TLS_HANDSHAKE_TIMEOUT = 30.0

#: Messages at least this large are written as header + body (``writelines``)
#: instead of being copied into one new object first.
COPY_LIMIT = 64 * 1024
