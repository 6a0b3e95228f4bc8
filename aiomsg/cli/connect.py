"""``aiomsg connect``: a framed client, like netcat for messages."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import BinaryIO

import aiomsg
from aiomsg.framing import Framing

from ._args import (
    INPUTS,
    Command,
    Say,
    add_format,
    add_framing,
    add_host_port,
    add_timeout,
    framing,
    render,
    seconds,
)
from ._client import broken, no_answer, open_connection
from ._errors import CLIError, address
from ._stdin import stdin_lines


class _Tally:
    """Messages sent and received so far: what the end of the run is judged by."""

    sent = 0
    received = 0


def _add_arguments(p: argparse.ArgumentParser) -> None:
    add_host_port(p)
    add_framing(p)
    add_format(p)
    p.add_argument(
        "--input", choices=INPUTS, default="text", help="how to read a line: bytes, or hex"
    )
    p.add_argument(
        "--wait",
        type=seconds,
        default=5.0,
        metavar="SECONDS",
        help="after the end of stdin, how long to wait for the server to close (0: forever)",
    )
    add_timeout(p, "seconds to wait for the connection (0: as long as the system does)")


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, say: Say) -> int:
    chosen = framing(args, parser)
    return aiomsg.run(
        run_connect(
            args.host,
            args.port,
            chosen,
            spec=args.framing,
            say=say,
            fmt=args.format,
            input_mode=args.input,
            wait=args.wait,
            timeout=args.timeout,
        )
    )


async def _print_messages(conn: aiomsg.Connection, fmt: str, out: BinaryIO, tally: _Tally) -> None:
    async for message in conn:
        tally.received += 1
        out.write(render(message, fmt))
        out.flush()


async def _send_lines(
    conn: aiomsg.Connection, framing: Framing, input_mode: str, tally: _Tally
) -> None:
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
            tally.sent += 1
        if conn.can_send_eof():
            await conn.send_eof()  # "done sending, still listening"
    except aiomsg.ConnectionClosed:
        return  # the connection broke: the receiving side reports why


async def run_connect(
    host: str,
    port: int,
    framing: Framing,
    *,
    spec: str,
    say: Say,
    fmt: str = "text",
    input_mode: str = "text",
    wait: float | None = 5.0,
    timeout: float | None = 30.0,
) -> int:
    """Send stdin's lines as messages to ``host:port``, print the messages received.

    Ends when the server closes; after the end of stdin (then half-closed), at
    the latest ``wait`` seconds later (``None``: no limit). Returns 0. A server
    that closes without sending a message back, after messages were sent to it,
    gets a notice that the server may use another framing than ``spec`` (the
    ``--framing`` as typed).

    Raises:
        CLIError: the connection failed, broke (with the hint if no message had
            arrived), or a line cannot be sent.
    """
    where = address(host, port)
    conn = await open_connection(host, port, framing, timeout)
    say.chatter(f"connected to {where}, {framing!r}, event loop {aiomsg.loop_name()}")
    tally = _Tally()
    printer = asyncio.create_task(_print_messages(conn, fmt, sys.stdout.buffer, tally))
    sender = asyncio.create_task(_send_lines(conn, framing, input_mode, tally))
    try:
        done, _ = await asyncio.wait((printer, sender), return_when=asyncio.FIRST_COMPLETED)
        if printer not in done:  # stdin ended (and was half-closed): wait for the server
            sender.result()  # a line that could not be sent ends it here
            await asyncio.wait((printer,), timeout=wait)
        if printer.done():
            printer.result()  # the server closed: cleanly, or raise why not
    except (aiomsg.ConnectionClosed, aiomsg.FramingError, OSError) as exc:
        raise broken(exc, where, spec, first=not tally.received) from None
    finally:
        for task in (printer, sender):
            task.cancel()
        await asyncio.gather(printer, sender, return_exceptions=True)
        await conn.aclose()
    closed = "closed the connection" if printer.done() else "did not close in time"
    say.chatter(f"{where} {closed}; {tally.sent} messages sent, {tally.received} received")
    if printer.done() and tally.sent and not tally.received:
        say.notice(no_answer(where, spec))
    return 0


COMMAND = Command(
    name="connect",
    help="a framed client, like netcat for messages",
    description=(
        "Send each line of stdin (without its newline) as one message; print each message "
        "received on a line of its own. When stdin ends, half-close and print what still "
        "arrives until the server closes (or --wait expires). Exit status 1, with one line on "
        "stderr, when the connection fails or the server breaks the framing or resets; when "
        "nothing had arrived yet, the line adds '(the server may use another framing than "
        "--framing SPEC)'. A server that closes without sending anything back gets that hint "
        "too, as a notice (status 0; -q silences it: a server that only listens does that)."
    ),
    add_arguments=_add_arguments,
    run=_run,
)
