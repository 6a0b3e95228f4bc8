"""The interactive chat client: type lines while incoming ones are printed above them.

On a terminal, prompt_toolkit keeps the line being typed intact: an incoming line
is printed above the prompt (with the time, HH:MM, and in colour), and the
half-typed input is drawn again below it. The prompt shows your nickname, learnt
from the server's welcome and ``* you are now NAME`` lines. Without a terminal
(stdin from a pipe), lines are forwarded as they come and printed as they are.
Either way, received text is neutralised first (:mod:`aiomsg.chat.text`): whatever
a server sends, no control sequence reaches the terminal but the client's own colours.
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
from aiomsg.cli._errors import address
from aiomsg.cli._stdin import stdin_lines

from .room import SHUTDOWN
from .text import neutralise

__all__ = ["Ending", "Look", "Nick", "run_client", "wants_colour", "why_it_ended"]

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


#: After a ``/quit``, the server's answer: the end of the conversation, not an accident.
_BYE = "* bye"


class Ending:
    """Why the connection ended, in words: what the client prints and its exit status."""

    def __init__(self, words: str, *, by_us: bool = False) -> None:
        self.words = neutralise(words)  # it may quote the server
        #: The end we asked for (``/quit`` answered): exit status 0, nothing to explain.
        self.by_us = by_us


def why_it_ended(exc: BaseException | None, last: str | None) -> Ending:
    """Word the end of the connection: ``exc`` ended the reading (``None``: a clean close),
    after ``last``, the server's last line."""
    if last == _BYE:  # our /quit answered: how the connection then ended does not matter
        return Ending("the server closed the connection", by_us=True)
    if last is not None and (last.startswith("!") or last == SHUTDOWN):
        # The server's own goodbye says why, however the connection then ended (a client
        # still writing gets a reset after it).
        return Ending(f"you were disconnected: {last}")
    if isinstance(exc, aiomsg.FramingError):
        return Ending(f"the server broke the framing: {exc}")
    if exc is not None:
        cause = exc.__cause__ if isinstance(exc, aiomsg.ConnectionClosed) else exc
        if isinstance(cause, ConnectionResetError):
            return Ending("the server reset the connection")
        if isinstance(exc, aiomsg.ConnectionClosed) and cause is None:
            return Ending(f"the connection was lost ({exc.reason})")
        return Ending(f"the connection was lost: {cause or type(cause).__name__}")
    return Ending("the server closed the connection")


async def _print_incoming(
    conn: aiomsg.Connection, show: Callable[[str], str], heard: Callable[[str], None]
) -> Ending:
    """Print each line the server sends until the connection ends; return why it ended.

    Every line is neutralised first: a server (or a member it relays) must not reach
    the terminal with a control sequence. A failure to print (stdout closed: ``|
    head``) is raised as it is: it is not the connection's."""
    last: str | None = None
    while True:
        try:
            line = await conn.receive()
        except (aiomsg.FramingError, OSError) as exc:  # ConnectionClosed is an OSError
            clean = isinstance(exc, aiomsg.ConnectionClosed) and exc.reason == "peer"
            return why_it_ended(None if clean else exc, last)
        last = neutralise(line.decode("utf-8", errors="replace"))
        heard(last)
        print(show(last), flush=True)


async def run_client(
    host: str, port: int, *, nick: str | None = None, verbose: bool = False
) -> int:
    """Chat with the server at ``host:port`` until ``/quit``, end of input or disconnect.

    ``nick``: sent as ``/nick NAME`` once connected (the server may refuse it,
    saying why). ``verbose``: says ``aiomsg chat: connected to HOST:PORT, event
    loop NAME`` on stderr.
    On a terminal it needs prompt_toolkit (the ``[chat]`` extra); without it, it
    says so and returns 1 before connecting. Returns 0 after ``/quit`` (or the end
    of input) is answered, 130 when the user pressed Ctrl-C at the prompt (the
    connection is closed first), and 1 when the server ended the connection
    (closed, reset, broke the framing or disconnected this client): a piped client
    then stops at once, without waiting for its input to end, and says why in one
    line on stderr; a terminal client says it above the prompt.

    Raises:
        OSError, TimeoutError: the connection cannot be made (the caller words it).
            Once connected, nothing is raised: the end is worded here.
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
    if verbose:
        how = "; /quit or Ctrl-D to leave" if interactive else ""
        print(
            f"aiomsg chat: connected to {address(host, port)}, "
            f"event loop {aiomsg.loop_name()}{how}",
            file=sys.stderr,
            flush=True,
        )
    me = Nick()
    async with conn:
        if interactive:
            return await _interactive(conn, Look(colour=wants_colour(sys.stdout)), me, nick)
        return await _piped(conn, nick)


async def _send(conn: aiomsg.Connection, text: str | bytes) -> bool:
    """Send one line; False if the connection is gone (the reader says why)."""
    try:
        await conn.send(text.encode() if isinstance(text, str) else text)
    except (aiomsg.ConnectionClosed, OSError):
        return False
    return True


async def _interactive(conn: aiomsg.Connection, look: Look, me: Nick, nick: str | None) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.formatted_text import ANSI
    from prompt_toolkit.patch_stdout import patch_stdout

    # A callable prompt: drawn again (with a new nick) after each line printed above it.
    session: PromptSession[str] = PromptSession(lambda: ANSI(look.prompt(me.name)))
    with patch_stdout(raw=True):  # raw: our colour codes pass through (received text is
        # neutralised before it is coloured, so only ours do)
        printer = asyncio.create_task(_print_incoming(conn, look.line, me.heard))
        if nick is not None:
            me.sent(f"/nick {nick}")
            await _send(conn, f"/nick {nick}")
        typing = asyncio.create_task(_type_lines(conn, session, me))
        await asyncio.wait([printer, typing], return_when=asyncio.FIRST_COMPLETED)
        status = 0
        if printer.done() and not typing.done():
            typing.cancel()  # the server left: stop prompting
        elif typing.exception() is None and typing.result() == "interrupted":
            status = 130  # Ctrl-C: leave at once, as every command does
        else:  # /quit, Ctrl-D, or a send that failed (the printer says why)
            await asyncio.wait([printer], timeout=2)  # let "* bye" arrive
        if status == 0 and printer.done() and not printer.cancelled():
            ending = printer.result()
            if not ending.by_us:
                print(look.line(f"! {ending.words}"), flush=True)
                status = 1
        for task in (printer, typing):
            task.cancel()
        await asyncio.gather(printer, typing, return_exceptions=True)
    return status


async def _type_lines(conn: aiomsg.Connection, session: object, me: Nick) -> str:
    """Send what is typed; return ``"quit"`` after ``/quit`` or Ctrl-D, ``"interrupted"``
    after Ctrl-C, ``"gone"`` when the connection is."""
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
            if not await _send(conn, text):
                return "gone"
        if text.strip() == "/quit":
            return "quit"


async def _forward_stdin(conn: aiomsg.Connection) -> None:
    # A daemon thread reads stdin: Ctrl-C must not wait for a line that never comes.
    async for line in stdin_lines():
        if not await _send(conn, line.rstrip(b"\r")):
            return
    await _send(conn, b"/quit")


async def _piped(conn: aiomsg.Connection, nick: str | None) -> int:
    printer = asyncio.create_task(_print_incoming(conn, str, lambda line: None))
    if nick is not None:
        await _send(conn, f"/nick {nick}")
    forwarder = asyncio.create_task(_forward_stdin(conn))
    try:
        # Whichever ends first: the server (then stop at once: `tail -f log | aiomsg
        # chat` must not wait for its input), or the input (then /quit was sent, and the
        # server answers and closes).
        await asyncio.wait([printer, forwarder], return_when=asyncio.FIRST_COMPLETED)
        if not printer.done():
            await asyncio.wait([printer], timeout=5)
    finally:
        forwarder.cancel()
        printer.cancel()
        await asyncio.gather(printer, forwarder, return_exceptions=True)
    if printer.cancelled():  # /quit sent, no answer in time
        print("aiomsg chat: the server did not answer /quit", file=sys.stderr, flush=True)
        return 1
    if isinstance(printer.exception(), BrokenPipeError):  # `aiomsg chat ... | head`
        # Whatever Python flushes to stdout at exit goes nowhere, not into a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("aiomsg chat: stdout was closed", file=sys.stderr, flush=True)
        return 1
    ending = printer.result()
    if ending.by_us:
        return 0
    print(f"aiomsg chat: {ending.words}", file=sys.stderr, flush=True)
    return 1
