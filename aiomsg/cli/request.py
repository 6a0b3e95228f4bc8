"""``aiomsg request``: send stdin as one message, half-close, write the answer to stdout."""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiomsg
from aiomsg.framing import Framing

from ._args import Command, Say, add_framing, add_host_port, add_timeout, framing
from ._client import broken, no_answer, open_connection
from ._errors import CLIError, address
from ._errors import seconds as in_seconds
from ._stdin import read_stdin


def _add_arguments(p: argparse.ArgumentParser) -> None:
    add_host_port(p)
    add_framing(p, default="eos", what="framing of the request and the response: ")
    add_timeout(p, "seconds to connect, and then for the answer (0: no limit)")


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, say: Say) -> int:
    request = run_request(
        args.host,
        args.port,
        framing(args, parser),
        spec=args.framing,
        say=say,
        timeout=args.timeout,
    )
    return aiomsg.run(request)


async def run_request(
    host: str,
    port: int,
    framing: Framing,
    *,
    spec: str,
    say: Say,
    timeout: float | None = 30.0,
) -> int:
    """Send stdin as one message, half-close, write the answer (the first message) to stdout.

    With a terminal on stdin it connects first, so that a connection that
    cannot be made is reported before anything is typed. ``timeout`` bounds the
    connection, and then the wait for the answer once the request is sent.

    Raises:
        CLIError: the connection failed or broke, the request cannot be carried by
            ``framing``, or the server closed without answering or did not answer in
            time. An answer that does not parse, or none at all, adds that the server
            may use another framing than ``spec`` (the ``--framing`` as typed).
    """
    where = address(host, port)
    conn: aiomsg.Connection | None = None
    if sys.stdin.isatty():
        conn = await open_connection(host, port, framing, timeout, message_timeout=None)
        say.chatter(f"connected to {where}; type the request, then Ctrl-D")
    payload = await read_stdin()
    try:
        framing.encode_parts(payload)
    except aiomsg.FramingError as exc:
        if conn is not None:
            await conn.aclose()
        raise CLIError(f"the request ({len(payload)} bytes) cannot be sent: {exc}") from None
    say.chatter(
        f"request of {len(payload)} bytes to {where}, {framing!r}, event loop {aiomsg.loop_name()}"
    )
    if conn is None:
        conn = await open_connection(host, port, framing, timeout, message_timeout=None)
    async with conn:
        try:
            async with asyncio.timeout(timeout):
                await conn.send(payload)
                if conn.can_send_eof():
                    await conn.send_eof()
                response = await conn.receive_or_none()
        except TimeoutError:
            assert timeout is not None
            raise CLIError(f"no answer from {where} within {in_seconds(timeout)}") from None
        except (aiomsg.ConnectionClosed, aiomsg.FramingError, OSError) as exc:
            raise broken(exc, where, spec, first=True) from None
    if not response and (response is None or isinstance(framing, aiomsg.UntilEOF)):
        raise CLIError(no_answer(where, spec))
    say.chatter(f"answer of {len(response)} bytes")
    sys.stdout.buffer.write(response)
    sys.stdout.flush()
    return 0


COMMAND = Command(
    name="request",
    help="send stdin, half-close, write the response to stdout",
    description=(
        "Send stdin as one message (by default as it is: --framing eos), half-close, and "
        "write the response (the first message received) to stdout. A server that closes "
        "without answering is an error, as is an answer that does not parse; both add "
        "'(the server may use another framing than --framing SPEC)'. With a terminal on "
        "stdin, it connects first."
    ),
    add_arguments=_add_arguments,
    run=_run,
)
