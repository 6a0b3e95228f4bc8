"""The command line's clients (``aiomsg connect``, ``aiomsg request``) and its errors in words.

``aiomsg connect`` is netcat for messages: each line of stdin goes out as one
message in the chosen framing, each message received is printed on a line of
its own. ``aiomsg request`` sends stdin as one message, half-closes and writes
the answer. Both use only the public API; what goes wrong is raised as
:class:`CLIError`, one line that names the address and says the cause in words.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import socket
import ssl
import sys
import threading
from collections.abc import AsyncIterator
from typing import BinaryIO

import aiomsg
from aiomsg.framing import Framing

__all__ = [
    "FORMATS",
    "INPUTS",
    "CLIError",
    "address",
    "cause",
    "connect_error",
    "connection_error",
    "listen_error",
    "run_connect",
    "run_request",
    "stdin_lines",
]

#: How ``aiomsg connect`` prints a received message.
FORMATS = ("text", "hex", "json")
#: How ``aiomsg connect`` reads a line of stdin.
INPUTS = ("text", "hex")

_CHUNK = 64 * 1024


class CLIError(Exception):
    """A failure to report as one line (after ``aiomsg COMMAND: ``), with exit status 1."""


# --- errors in words ------------------------------------------------------------------------


def address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _seconds(value: float) -> str:
    return f"{value:g} s"


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
        return f"cannot connect to {where} (no answer within {_seconds(timeout)})"
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
            f"({len(exc.partial)} bytes of it had arrived)"
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


async def _open(
    host: str,
    port: int,
    framing: Framing,
    timeout: float | None,
    message_timeout: float | None = aiomsg.limits.DEFAULT_MESSAGE_TIMEOUT,
) -> aiomsg.Connection:
    try:
        return await aiomsg.connect(
            host, port, framing=framing, timeout=timeout, message_timeout=message_timeout
        )
    except (OSError, TimeoutError) as exc:  # socket.gaierror and ssl.SSLError are OSErrors
        raise CLIError(connect_error(exc, host, port, timeout)) from None


# --- stdin, without blocking the loop -----------------------------------------------------------


async def _stdin_chunks() -> AsyncIterator[bytes]:
    """Yield what arrives on stdin until its end, read by a daemon thread.

    A daemon thread, not the loop's executor: a terminal read cannot be
    interrupted, and the executor's shutdown would wait for it (Ctrl-C would
    hang until Enter). ``os.read`` on the descriptor takes no lock that
    Python's shutdown could need. A bounded queue holds the reader back when
    the connection is slower than stdin.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(16)
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # no stdin at all: an empty one
        return

    def read() -> None:
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except OSError:
                chunk = b""
            put = queue.put(chunk)
            try:
                asyncio.run_coroutine_threadsafe(put, loop).result()
            except RuntimeError:  # the loop is closed
                put.close()
                return
            except concurrent.futures.CancelledError:  # the loop ended, cancelling the put
                return
            if not chunk:
                return

    threading.Thread(target=read, name="aiomsg-stdin", daemon=True).start()
    while chunk := await queue.get():
        yield chunk


async def stdin_lines() -> AsyncIterator[bytes]:
    """Yield each line of stdin without its ``\\n``; a last line without one too.

    Read by a daemon thread (see ``_stdin_chunks``), so Ctrl-C never waits for a line.
    """
    pending = bytearray()
    async for chunk in _stdin_chunks():
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            yield bytes(pending[start:end])
            start = end + 1
        del pending[:start]
    if pending:
        yield bytes(pending)


# --- aiomsg connect ------------------------------------------------------------------------------


def render(message: bytes, fmt: str) -> bytes:
    """One received message as printed by ``--format fmt``, newline included."""
    if fmt == "hex":
        return message.hex().encode() + b"\n"
    text = message.decode("utf-8", errors="replace")
    if fmt == "json":
        return json.dumps(text).encode() + b"\n"
    return text.encode() + b"\n"


async def _print_messages(conn: aiomsg.Connection, fmt: str, out: BinaryIO) -> None:
    async for message in conn:
        out.write(render(message, fmt))
        out.flush()


async def _send_lines(conn: aiomsg.Connection, framing: Framing, input_mode: str) -> None:
    number = 0
    try:
        async for line in stdin_lines():
            number += 1
            if input_mode == "hex":
                try:
                    message = bytes.fromhex(line.decode("ascii"))
                except (UnicodeDecodeError, ValueError):
                    raise CLIError(f"line {number} of stdin is not hex: {line[:40]!r}") from None
            else:
                message = line
            try:
                framing.encode_parts(message)  # check first: a refused line is the user's
            except aiomsg.FramingError as exc:
                raise CLIError(f"cannot send line {number} of stdin: {exc}") from None
            await conn.send(message)
        if conn.can_send_eof():
            await conn.send_eof()  # "done sending, still listening"
    except aiomsg.ConnectionClosed:
        return  # the connection broke: the receiving side reports why


async def run_connect(
    host: str,
    port: int,
    framing: Framing,
    *,
    fmt: str = "text",
    input_mode: str = "text",
    wait: float | None = 5.0,
    timeout: float | None = 30.0,
    verbose: bool = False,
) -> int:
    """Send stdin's lines as messages to ``host:port``, print the messages received.

    Ends when the server closes; after the end of stdin (then half-closed), at
    the latest ``wait`` seconds later (``None``: no limit). Returns 0.

    Raises:
        CLIError: the connection failed, broke, or a line cannot be sent.
    """
    where = address(host, port)
    conn = await _open(host, port, framing, timeout)
    if verbose:
        print(
            f"aiomsg connect: connected to {where}, {framing!r}, event loop {aiomsg.loop_name()}",
            file=sys.stderr,
            flush=True,
        )
    out = sys.stdout.buffer
    printer = asyncio.create_task(_print_messages(conn, fmt, out))
    sender = asyncio.create_task(_send_lines(conn, framing, input_mode))
    try:
        done, _ = await asyncio.wait((printer, sender), return_when=asyncio.FIRST_COMPLETED)
        if printer not in done:  # stdin ended (and was half-closed): wait for the server
            sender.result()  # a line that could not be sent ends it here
            await asyncio.wait((printer,), timeout=wait)
        if printer.done():
            printer.result()  # the server closed: cleanly, or raise why not
    except (aiomsg.ConnectionClosed, aiomsg.FramingError, OSError) as exc:
        raise CLIError(connection_error(exc, where)) from None
    finally:
        for task in (printer, sender):
            task.cancel()
        await asyncio.gather(printer, sender, return_exceptions=True)
        await conn.aclose()
    return 0


# --- aiomsg request ------------------------------------------------------------------------------


async def _read_stdin() -> bytes:
    return b"".join([chunk async for chunk in _stdin_chunks()])


async def run_request(
    host: str, port: int, framing: Framing, *, timeout: float | None = 30.0
) -> int:
    """Send stdin as one message, half-close, write the answer (the first message) to stdout.

    With a terminal on stdin it connects first, so that a connection that
    cannot be made is reported before anything is typed. ``timeout`` bounds the
    connection, and then the wait for the answer once the request is sent.

    Raises:
        CLIError: the connection failed or broke, the request cannot be carried by
            ``framing``, or the server closed without answering or did not answer in time.
    """
    where = address(host, port)
    loop_name = aiomsg.loop_name()
    conn: aiomsg.Connection | None = None
    if sys.stdin.isatty():
        conn = await _open(host, port, framing, timeout, message_timeout=None)
        _say(f"connected to {where}, event loop {loop_name}; type the request, then Ctrl-D")
    payload = await _read_stdin()
    try:
        framing.encode_parts(payload)
    except aiomsg.FramingError as exc:
        if conn is not None:
            await conn.aclose()
        raise CLIError(f"the request ({len(payload)} bytes) cannot be sent: {exc}") from None
    if conn is None:
        _say(f"request of {len(payload)} bytes to {where}, event loop {loop_name}")
        conn = await _open(host, port, framing, timeout, message_timeout=None)
    async with conn:
        try:
            async with asyncio.timeout(timeout):
                await conn.send(payload)
                if conn.can_send_eof():
                    await conn.send_eof()
                response = await conn.receive_or_none()
        except TimeoutError:
            assert timeout is not None
            raise CLIError(f"no answer from {where} within {_seconds(timeout)}") from None
        except (aiomsg.ConnectionClosed, aiomsg.FramingError, OSError) as exc:
            raise CLIError(connection_error(exc, where)) from None
    if not response and (response is None or isinstance(framing, aiomsg.UntilEOF)):
        raise CLIError(f"{where} closed the connection without answering")
    sys.stdout.buffer.write(response)
    sys.stdout.flush()
    return 0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
