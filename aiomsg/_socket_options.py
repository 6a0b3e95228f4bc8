"""Socket options aiomsg sets on TCP connections: keepalive (find dead peers) and
linger-zero (make an abort a reset)."""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any

__all__ = ["KEEPALIVE_PROBES", "enable_keepalive", "reset_on_close"]

#: Unanswered keepalive probes after which the kernel declares the peer dead.
KEEPALIVE_PROBES = 5
_LINGER_ZERO = struct.pack("ii", 1, 0)


def _is_tcp(sock: Any) -> bool:
    return sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)


def enable_keepalive(sock: Any, idle: float) -> None:
    """Turn TCP keepalive on: probe after ``idle`` seconds of silence, then every
    ``idle / 6`` seconds, :data:`KEEPALIVE_PROBES` times. A peer that vanished
    (power loss, cable pulled, a NAT that forgot the flow) is found in about
    ``2 * idle`` seconds, and its connection fails. No-op for non-TCP sockets."""
    if not _is_tcp(sock):
        return
    seconds = max(1, round(idle))
    # Linux and most BSDs name the idle time TCP_KEEPIDLE, macOS TCP_KEEPALIVE.
    idle_option = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    options = [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, idle_option, seconds),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPINTVL", None), max(1, seconds // 6)),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_PROBES),
    ]
    with contextlib.suppress(OSError, ValueError):  # uvloop: ValueError once the fd is closed
        for level, option, value in options:
            if option is not None:
                sock.setsockopt(level, option, value)


def reset_on_close(sock: Any) -> None:
    """SO_LINGER=0: closing sends a reset, which the peer cannot mistake for a clean
    end (a socket whose input was all read would otherwise close with a FIN)."""
    if _is_tcp(sock):
        with contextlib.suppress(OSError, ValueError):  # uvloop: ValueError once the fd is closed
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
