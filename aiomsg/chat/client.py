"""The interactive chat client: type lines while incoming ones are printed above them.

On a terminal, prompt_toolkit keeps the line being typed intact: an incoming line
is printed above the prompt (with the time, HH:MM, and in colour), and the
half-typed input is drawn again below it. The prompt shows your nickname, learnt
from the server's welcome and ``* you are now NAME`` lines. Without a terminal
(stdin from a pipe), lines are forwarded as they come and printed as they are.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
import time
import zlib
from collections.abc import Callable
from typing import TextIO

import aiomsg
from aiomsg.cli_client import address, stdin_lines

__all__ = ["Look", "Nick", "run_client", "wants_colour"]

# The server's lines that tell this client its nickname.
_WELCOME = re.compile(r"^\* welcome to aiomsg chat, you are ([^\s(]+)")
_RENAMED = re.compile(r"^\* you are now (\S+)$")
# Another member's message: "NAME: text" (nicknames are 1-24 letters, digits, _ or -).
_MESSAGE = re.compile(r"^([A-Za-z0-9_-]{1,24}): ")

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_NOTICE = "\x1b[36m"  # cyan: joins, leaves, /who, /me
_ERROR = "\x1b[1;31m"  # bold red: the server refused something
_YOU = "\x1b[1m"  # bold: your own nick in the prompt
# Others' nicks: one colour each, the same on every run (a hash of the name).
_NICK_COLOURS = ("\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[92m", "\x1b[93m")


def wants_colour(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether to colour what goes to ``stream``: only on a terminal, and never when the
    ``NO_COLOR`` environment variable is set to anything but the empty string (no-color.org)."""
    env = os.environ if environ is None else environ
    return stream.isatty() and not env.get("NO_COLOR")


class Nick:
    """This client's nickname, as the server tells it.

    Only the server's first line (the welcome) and a ``* you are now NAME``
    answering a ``/nick NAME`` this client sent count: another member's
    ``/me`` could print the same words (a member named ``you`` doing
    ``/me are now bob``), and must not change the prompt.
    """

    def __init__(self) -> None:
        self.name: str | None = None
        self._first = True
        self._asked: set[str] = set()

    def sent(self, line: str) -> None:
        """Note a line this client sent (a ``/nick NAME`` request)."""
        command, _, argument = line.strip().partition(" ")
        if command == "/nick" and argument.strip():
            self._asked.add(argument.strip())

    def heard(self, line: str) -> None:
        """Note a line from the server."""
        first, self._first = self._first, False
        if first and (match := _WELCOME.match(line)):
            self.name = match.group(1)
        elif (match := _RENAMED.match(line)) and match.group(1) in self._asked:
            self._asked.clear()
            self.name = match.group(1)


class Look:
    """How the terminal client shows incoming lines and its prompt.

    ``colour`` colours notices (``* ...``), errors (``! ...``) and others' nicks;
    ``timestamps`` puts the local time (HH:MM) before each incoming line.
    """

    def __init__(
        self,
        *,
        colour: bool,
        timestamps: bool = True,
        clock: Callable[[], str] = lambda: time.strftime("%H:%M"),
    ) -> None:
        self.colour = colour
        self.timestamps = timestamps
        self._clock = clock

    def line(self, text: str) -> str:
        """``text`` (one incoming line) as printed."""
        if self.colour:
            if text.startswith("*"):
                text = f"{_NOTICE}{text}{_RESET}"
            elif text.startswith("!"):
                text = f"{_ERROR}{text}{_RESET}"
            elif match := _MESSAGE.match(text):
                nick = match.group(1)
                colour = _NICK_COLOURS[zlib.crc32(nick.encode()) % len(_NICK_COLOURS)]
                text = f"{colour}{nick}{_RESET}{text[len(nick) :]}"
        if self.timestamps:
            stamp = self._clock()
            text = f"{_DIM}{stamp}{_RESET} {text}" if self.colour else f"{stamp} {text}"
        return text

    def prompt(self, nick: str | None) -> str:
        """The prompt: ``NAME> `` once the nickname is known, ``> `` before."""
        if nick is None:
            return "> "
        return f"{_YOU}{nick}{_RESET}> " if self.colour else f"{nick}> "


async def _print_incoming(
    conn: aiomsg.Connection, show: Callable[[str], str], heard: Callable[[str], None]
) -> None:
    try:
        async for line in conn:
            text = line.decode("utf-8", errors="replace")
            heard(text)
            print(show(text), flush=True)
    except (aiomsg.ConnectionClosed, aiomsg.FramingError) as exc:
        print(show(f"! connection lost: {exc}"), flush=True)
    else:
        print(show("* the server closed the connection"), flush=True)


async def run_client(host: str, port: int, *, nick: str | None = None) -> int:
    """Chat with the server at ``host:port`` until ``/quit``, end of input or disconnect.

    ``nick``: sent as ``/nick NAME`` once connected (the server may refuse it,
    saying why). Prints ``connected to HOST:PORT, event loop NAME`` on stderr.
    On a terminal it needs prompt_toolkit (the ``[chat]`` extra); without it, it
    says so and returns 1 before connecting. Returns 0, or 130 when the user
    pressed Ctrl-C at the prompt (the connection is closed first).

    Raises:
        OSError, TimeoutError: the connection cannot be made (the caller words it).
    """
    interactive = sys.stdin.isatty()
    if interactive and importlib.util.find_spec("prompt_toolkit") is None:
        print(
            "aiomsg chat: the interactive client needs prompt_toolkit: "
            "pip install 'aiomsg-framing[chat]'",
            file=sys.stderr,
        )
        return 1
    conn = await aiomsg.connect(host, port, framing=aiomsg.Lines())
    how = "; /quit or Ctrl-D to leave" if interactive else ""
    print(
        f"connected to {address(host, port)}, event loop {aiomsg.loop_name()}{how}",
        file=sys.stderr,
        flush=True,
    )
    me = Nick()
    async with conn:
        if nick is not None:
            me.sent(f"/nick {nick}")
            await conn.send(f"/nick {nick}".encode())
        if interactive:
            return await _interactive(conn, Look(colour=wants_colour(sys.stdout)), me)
        await _piped(conn)
    return 0


async def _interactive(conn: aiomsg.Connection, look: Look, me: Nick) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.formatted_text import ANSI
    from prompt_toolkit.patch_stdout import patch_stdout

    # A callable prompt: drawn again (with a new nick) after each line printed above it.
    session: PromptSession[str] = PromptSession(lambda: ANSI(look.prompt(me.name)))
    with patch_stdout(raw=True):  # raw: our colour codes pass through
        printer = asyncio.create_task(_print_incoming(conn, look.line, me.heard))
        typing = asyncio.create_task(_type_lines(conn, session, me))
        await asyncio.wait([printer, typing], return_when=asyncio.FIRST_COMPLETED)
        status = 0
        if printer.done() and not typing.done():
            typing.cancel()  # the server left: stop prompting
        elif typing.exception() is None and typing.result() == "interrupted":
            status = 130  # Ctrl-C: leave at once, as every command does
        else:  # /quit, Ctrl-D, or a send that failed (the printer says why)
            await asyncio.wait([printer], timeout=2)  # let "* bye" arrive
        for task in (printer, typing):
            task.cancel()
        await asyncio.gather(printer, typing, return_exceptions=True)
    return status


async def _type_lines(conn: aiomsg.Connection, session: object, me: Nick) -> str:
    """Send what is typed; return ``"quit"`` after ``/quit`` or Ctrl-D, ``"interrupted"``
    after Ctrl-C."""
    prompt_async = session.prompt_async  # type: ignore[attr-defined]
    while True:
        try:
            text: str = await prompt_async()
        except KeyboardInterrupt:
            return "interrupted"
        except EOFError:
            text = "/quit"
        if text:
            me.sent(text)
            await conn.send(text.encode())
        if text.strip() == "/quit":
            return "quit"


async def _piped(conn: aiomsg.Connection) -> None:
    printer = asyncio.create_task(_print_incoming(conn, str, lambda line: None))
    # A daemon thread reads stdin: Ctrl-C must not wait for a line that never comes.
    async for line in stdin_lines():
        await conn.send(line.rstrip(b"\r"))
    await conn.send(b"/quit")
    await asyncio.wait([printer], timeout=5)
    printer.cancel()
