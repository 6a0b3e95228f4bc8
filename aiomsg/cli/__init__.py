"""The ``aiomsg`` command: chat, framed client and server, half-close requests, demo.

One module per command (each has a ``COMMAND``), the shared option types and
output helpers in ``_args``, errors in words in ``_errors``. Quiet by default:
data on stdout; on stderr errors (one line, exit status 1; usage errors 2;
Ctrl-C 130), the servers' ``listening on HOST:PORT`` (``-q`` silences it) and,
with ``-v``, the chatter. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence

import aiomsg
from aiomsg._redact import redact_url

from . import chat, chat_server, connect, demo, request, serve
from ._args import LOG_LEVELS, VERBOSITY_HELP, Command, Formatter, Say, Version, add_verbosity
from ._errors import CLIError, unwrap

__all__ = ["COMMANDS", "main", "parser"]

#: Every command, in the order ``--help`` lists them.
COMMANDS: tuple[Command, ...] = (
    chat_server.COMMAND,
    chat.COMMAND,
    connect.COMMAND,
    request.COMMAND,
    serve.COMMAND,
    demo.COMMAND,
)


_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


class _Redacting(logging.Formatter):
    """Log lines with every URL's password hidden (a library line may name a broker URL)."""

    def format(self, record: logging.LogRecord) -> str:
        return _URL.sub(lambda url: redact_url(url[0]), super().format(record))


def parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``aiomsg`` parser, and each command's sub-parser by name."""
    top = argparse.ArgumentParser(
        prog="aiomsg",
        description="Message framing for asyncio: chat, framed clients and servers, requests.",
        epilog=VERBOSITY_HELP,
        formatter_class=Formatter,
    )
    top.add_argument("--version", action=Version)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subs: dict[str, argparse.ArgumentParser] = {}
    for command in COMMANDS:
        p = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            epilog=VERBOSITY_HELP,
            formatter_class=Formatter,
        )
        p.add_argument("--version", action=Version)
        add_verbosity(p)
        command.add_arguments(p)
        subs[command.name] = p
    return top, subs


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiomsg`` command line; return the exit status.

    Usage errors exit through argparse (``SystemExit(2)``).
    """
    top, subs = parser()
    args = top.parse_args(argv)
    command = next(c for c in COMMANDS if c.name == args.command)
    say = Say(command.name, args.level)
    # The library's own log lines (a client that broke the framing, the broker's
    # state) read like the command's: warnings by default, errors only with -q.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting(f"aiomsg {command.name}: %(message)s"))
    logging.basicConfig(
        level=LOG_LEVELS[args.level],
        handlers=[handler],
    )
    try:
        try:
            return command.run(args, subs[command.name], say)
        except BaseExceptionGroup as group:
            raise unwrap(group) from None
    except KeyboardInterrupt:
        return 130
    except CLIError as exc:
        say.error(str(exc))
        return 1
    except (OSError, aiomsg.AiomsgError, TimeoutError) as exc:
        if command.failure is not None:
            say.error(command.failure(exc, args))
        else:
            say.error(str(exc) or type(exc).__name__)
        return 1
