"""How a server logs the end of one connection: once, at a level that fits the cause.

A server faces clients it did not write. Resets, TLS peers that leave without
close_notify and timeouts are ordinary and must not flood the log with
tracebacks; a bug in the application's handler must show one. Exception groups
(from task groups inside a handler) are judged by what they contain.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from .errors import ConnectionClosed, ConnectionTimeout, FramingError

__all__ = ["log_connection_end"]

logger = logging.getLogger("aiomsg")

# What a peer can do to a connection without anyone's code being wrong.
_ORDINARY: tuple[type[BaseException], ...] = (ConnectionClosed, OSError, EOFError, ssl.SSLError)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def log_connection_end(
    exc: BaseException, peer: Any, ordinary: tuple[type[BaseException], ...] = ()
) -> bool:
    """Log why the connection with ``peer`` ended with ``exc``, once.

    Resets, closes and TLS errors (and the ``ordinary`` types the caller adds)
    go to DEBUG, timeouts to INFO, framing errors to WARNING, anything else to
    ERROR with its traceback. Returns whether it was that last kind (a bug in
    the handler, most likely): the caller then resets the connection, so that
    the peer does not take a clean close for a complete answer.
    """
    leaves = _leaves(exc)
    expected = _ORDINARY + ordinary
    if not all(isinstance(leaf, (*expected, FramingError)) for leaf in leaves):
        logger.error("handler failed for %r; resetting that connection", peer, exc_info=exc)
        return True
    if any(isinstance(leaf, FramingError) for leaf in leaves):
        logger.warning("closing connection from %r: %s", peer, exc)
    elif any(isinstance(leaf, ConnectionTimeout) for leaf in leaves):
        logger.info("closing connection from %r: %s", peer, exc)
    else:
        logger.debug("connection from %r ended: %r", peer, exc)
    return False
