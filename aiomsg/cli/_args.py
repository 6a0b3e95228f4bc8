"""What every ``aiomsg`` command shares: option types, -v/-q, --framing, output formats.

A command is a module with a :class:`Command`; :func:`aiomsg.cli.main` builds the
parser from them. Each option type raises ``argparse.ArgumentTypeError`` with
what is wrong, which argparse prints as a usage error (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiomsg
from aiomsg._redact import redact_url
from aiomsg.framing import SPEC_HELP, Framing
from aiomsg.framing.spec import SpecError, parse_framing

from ._errors import listen_error

#: How a received message is printed (``--format``).
FORMATS = ("text", "hex", "json")
#: How a line of stdin is read (``--input``).
INPUTS = ("text", "hex")

VERBOSITY_HELP = (
    "Quiet by default: data on stdout, errors on stderr (one line, exit status 1). "
    "Servers also print 'listening on HOST:PORT' on stderr. -v adds the chatter "
    "(event loop, framing, connections); -q leaves errors only."
)


@dataclass(frozen=True)
class Command:
    """One ``aiomsg`` command: its name, help, options and what runs it.

    ``run(args, parser, say)`` returns the exit status; ``parser`` is for usage
    errors (``parser.error``). ``failure(exc, args)`` words an ``OSError`` or
    aiomsg error that escaped ``run`` as one line.
    """

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, argparse.ArgumentParser, Say], int]
    failure: Callable[[BaseException, argparse.Namespace], str] | None = None


#: The library's logging level for ``-q``, the default and ``-v`` (``args.level``).
LOG_LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}


class Say:
    """Lines on stderr, each ``aiomsg COMMAND: ...``, as ``-v``/``-q`` allow.

    ``level``: -1 with ``-q``, 0 by default, 1 with ``-v``.
    """

    def __init__(self, command: str, level: int) -> None:
        self.command = command
        self.level = level

    def error(self, text: str) -> None:
        """Always shown: what made the command fail."""
        self._print(text)

    def notice(self, text: str) -> None:
        """Shown unless ``-q``: a server's ``listening on``, a hint about a run that ended."""
        if self.level >= 0:
            self._print(text)

    def chatter(self, text: str) -> None:
        """Shown with ``-v`` only: event loop, framing, connections."""
        if self.level > 0:
            self._print(text)

    def _print(self, text: str) -> None:
        print(f"aiomsg {self.command}: {text}", file=sys.stderr, flush=True)


def add_verbosity(p: argparse.ArgumentParser) -> None:
    """``-v``/``--verbose`` and ``-q``/``--quiet`` (one excludes the other) as ``args.level``."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        dest="level",
        action="store_const",
        const=1,
        default=0,
        help="also say the event loop, the framing and each connection, on stderr",
    )
    group.add_argument(
        "-q", "--quiet", dest="level", action="store_const", const=-1, help="errors only"
    )


def add_host_port(p: argparse.ArgumentParser, *, server: bool = False) -> None:
    """The ``HOST PORT`` positionals: a server's (port 0: any free) or a client's."""
    if server:
        p.add_argument("host", help="address to listen on")
        p.add_argument("port", type=listen_port, help="port to listen on (0: any free)")
    else:
        p.add_argument("host", help="server's host name or address")
        p.add_argument("port", type=port, help="server's port")


def add_framing(p: argparse.ArgumentParser, *, default: str | None = None, what: str = "") -> None:
    """``--framing SPEC`` (required without ``default``) and ``--max-size BYTES``."""
    p.add_argument(
        "--framing",
        required=default is None,
        default=default,
        metavar="SPEC",
        help=f"{what}{SPEC_HELP}",
    )
    p.add_argument(
        "--max-size",
        type=size,
        default=aiomsg.DEFAULT_MAX_SIZE,
        metavar="BYTES",
        help="largest message, either way",
    )


def add_format(p: argparse.ArgumentParser) -> None:
    """``--format text|hex|json``: how :func:`render` prints a message."""
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="how to print a message: UTF-8 text, hex, or a JSON string (one line each)",
    )


def framing(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Framing:
    """The framing ``--framing`` names, or a usage error (exit status 2) saying what is wrong."""
    try:
        return parse_framing(args.framing, max_size=args.max_size)
    except SpecError as exc:
        parser.error(f"bad --framing {exc.spec!r}: {exc.reason}")


def render(message: bytes, fmt: str) -> bytes:
    """One message as ``--format fmt`` prints it, newline included.

    ``text``: UTF-8 (undecodable bytes as U+FFFD); ``hex``; ``json``: a JSON
    string, so a message with newlines stays on one line.
    """
    if fmt == "hex":
        return message.hex().encode() + b"\n"
    text = message.decode("utf-8", errors="replace")
    if fmt == "json":
        return json.dumps(text).encode() + b"\n"
    return text.encode() + b"\n"


# --- option types -------------------------------------------------------------------------


def port(text: str) -> int:
    """A port to connect to: 1-65535."""
    return _port_in(text, 1)


def listen_port(text: str) -> int:
    """A port to listen on: 0-65535 (0: any free port, printed when listening)."""
    return _port_in(text, 0)


def _port_in(text: str, lowest: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not lowest <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port must be {lowest}-65535, not {value}")
    return value


def seconds(text: str) -> float | None:
    """A timeout: seconds, 0 for none (None)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):  # refuses NaN too
        raise argparse.ArgumentTypeError(f"a timeout must be 0 or more seconds, not {text}")
    return value or None


def positive_seconds(text: str) -> float:
    """Seconds, more than 0."""
    value = seconds(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def count(text: str) -> int:
    """A number of processes: 1-256."""
    return _whole(text, "", 1, 256)


def size(text: str) -> int:
    """A number of bytes, at least 1."""
    return _whole(text, " of bytes", 1, None)


def _whole(text: str, unit: str, lowest: int, highest: int | None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number{unit}: {text!r}") from None
    if highest is not None and not lowest <= value <= highest:
        raise argparse.ArgumentTypeError(f"must be {lowest}-{highest}, not {value}")
    if value < lowest:
        raise argparse.ArgumentTypeError(f"a size must be at least {lowest} byte, not {value}")
    return value


def add_timeout(p: argparse.ArgumentParser, what: str) -> None:
    """``--timeout SECONDS`` (30 by default, 0: none); ``what`` it bounds, for the help."""
    p.add_argument("--timeout", type=seconds, default=30.0, metavar="SECONDS", help=what)


def server_failure(exc: BaseException, args: argparse.Namespace) -> str:
    """A server's :attr:`Command.failure`: why it cannot listen on ``args.host:args.port``."""
    return listen_error(exc, args.host, args.port)


def broker_url(text: str) -> str:
    """A Redis URL: ``redis://HOST:PORT/DB``, ``rediss://`` (TLS) or ``unix://PATH``."""
    usage = "not a Redis URL (redis://HOST:PORT/DB, rediss:// for TLS, unix://PATH)"
    shown = repr(redact_url(text))  # never echo a password
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError(f"{usage}: {shown}")
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise argparse.ArgumentTypeError(f"{usage}: {shown}") from None
    if parts.scheme != "unix" and not parts.hostname:
        raise argparse.ArgumentTypeError(f"{usage}: {shown}")
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise argparse.ArgumentTypeError(f"{usage}: {shown}: the database is a number")
    return text


# --- help and --version -------------------------------------------------------------------


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "%(default)" in text
            or not action.option_strings
            or action.required
            or action.default in (None, False, argparse.SUPPRESS)  # -v's 0 is False
        ):
            return text
        return text + " (default: %(default)s)"


def version_line() -> str:
    """``aiomsg <version> (<event loop>)``: what ``--version`` prints."""
    try:
        loop = aiomsg.new_event_loop()
    except (RuntimeError, ValueError) as exc:  # AIOMSG_LOOP names a loop that cannot run
        return f"aiomsg {aiomsg.__version__} (no event loop: {exc})"
    try:
        return f"aiomsg {aiomsg.__version__} ({aiomsg.loop_name(loop)})"
    finally:
        loop.close()


class Version(argparse.Action):
    """``--version``: print :func:`version_line` and exit (the loop is made only then)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings,
            dest=argparse.SUPPRESS,
            default=argparse.SUPPRESS,
            nargs=0,
            help="print aiomsg's version and event loop, then exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(version_line())
        parser.exit()
