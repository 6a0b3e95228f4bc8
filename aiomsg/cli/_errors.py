"""What goes wrong, in words: one line that names the address and says the cause.

A command raises :class:`CLIError` with such a line; :func:`aiomsg.cli.main`
prints it after ``aiomsg COMMAND: `` and exits with status 1.
"""

from __future__ import annotations

import os
import re
import socket
import ssl

import aiomsg

__all__ = [
    "CLIError",
    "address",
    "cause",
    "connect_error",
    "connection_error",
    "listen_error",
    "mismatch_hint",
    "unwrap",
]


class CLIError(Exception):
    """A failure to report as one line (after ``aiomsg COMMAND: ``), with exit status 1."""


def address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def seconds(value: float) -> str:
    """A duration in words: ``0.5 s``."""
    return f"{value:g} s"


def mismatch_hint(spec: str, peer: str = "server") -> str:
    """The words added when what arrived suggests the ``peer`` speaks another framing."""
    return f"(the {peer} may use another framing than --framing {spec})"


def cause(exc: BaseException) -> str:
    """The cause of an error in words: ``connection refused``, ``certificate verify failed``..."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")
    if isinstance(exc, TimeoutError) and not exc.errno:
        return "timed out"
    if isinstance(exc, OSError):
        errno = exc.errno
        if errno is None:  # asyncio: "Multiple exceptions: [Errno 111] ..., [Errno 111] ..."
            codes = {int(code) for code in re.findall(r"\[Errno (\d+)\]", str(exc))}
            errno = codes.pop() if len(codes) == 1 else None
        # os.strerror: asyncio's own strerror is "Connect call failed (...)"
        text = os.strerror(errno) if errno else exc.strerror or str(exc) or type(exc).__name__
        return text[:1].lower() + text[1:]
    return str(exc) or type(exc).__name__


def connect_error(exc: BaseException, host: str, port: int, timeout: float | None) -> str:
    """Why a connection to ``host:port`` could not be made, in one line."""
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return f"no such host: {host}"
        return f"cannot resolve {host} ({cause(exc)})"
    where = address(host, port)
    if isinstance(exc, TimeoutError) and timeout is not None and not exc.errno:
        return f"cannot connect to {where} (no answer within {seconds(timeout)})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed ({cause(exc)})"
    return f"cannot connect to {where} ({cause(exc)})"


def listen_error(exc: BaseException, host: str, port: int) -> str:
    """Why a server could not listen on ``host:port``, in one line."""
    if isinstance(exc, socket.gaierror):
        return connect_error(exc, host, port, None)
    return f"cannot listen on {address(host, port)} ({cause(exc)})"


def connection_error(exc: BaseException, where: str) -> str:
    """What went wrong on an open connection to ``where``, in one line."""
    if isinstance(exc, aiomsg.IncompleteMessageError):
        return (
            f"{where} closed the connection in the middle of a message "
            f"({exc.partial_size} bytes of it had arrived)"
        )
    if isinstance(exc, aiomsg.MessageTooLarge):
        return f"{where} sent a message over the size limit ({exc})"
    if isinstance(exc, aiomsg.FramingError):
        return f"{where} broke the framing ({exc})"
    if isinstance(exc, aiomsg.ConnectionTimeout):
        return f"{where} was too slow ({exc})"
    if isinstance(exc, aiomsg.ConnectionClosed):
        if isinstance(exc.__cause__, OSError):
            return f"connection to {where} lost ({cause(exc.__cause__)})"
        return f"{where} closed the connection"
    return f"connection to {where} failed ({cause(exc)})"


def unwrap(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups of one, as anyio raises them."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
