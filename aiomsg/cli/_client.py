"""What ``connect`` and ``request`` share: opening the connection, saying what failed."""

from __future__ import annotations

import aiomsg
from aiomsg.framing import Framing

from ._errors import CLIError, connect_error, connection_error, mismatch_hint


async def open_connection(
    host: str,
    port: int,
    framing: Framing,
    timeout: float | None,
    message_timeout: float | None = aiomsg.limits.DEFAULT_MESSAGE_TIMEOUT,
) -> aiomsg.Connection:
    """Connect to ``host:port``.

    Raises:
        CLIError: the connection cannot be made (the line says why).
    """
    try:
        options = aiomsg.Options(connect_timeout=timeout, message_timeout=message_timeout)
        return await aiomsg.connect(host, port, framing=framing, options=options)
    except (OSError, TimeoutError) as exc:  # socket.gaierror and ssl.SSLError are OSErrors
        raise CLIError(connect_error(exc, host, port, timeout)) from None


def broken(exc: BaseException, where: str, spec: str, *, first: bool) -> CLIError:
    """The error for a connection that broke; ``first``: before any message arrived.

    Bytes that do not parse, a close inside the first message, a reset or a
    timeout before any message are what a server of another framing causes, so
    then the line ends with :func:`mismatch_hint`.
    """
    line = connection_error(exc, where)
    return CLIError(f"{line} {mismatch_hint(spec)}" if first else line)


def no_answer(where: str, spec: str) -> str:
    """The line for a server that closed without sending a message back."""
    return f"{where} closed the connection without answering {mismatch_hint(spec)}"
