"""The interactive chat client under a pseudo-terminal, as a person would use it."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from aiomsg.chat.client import Nick, wants_colour

from .peers import connect_blocking

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]|[\r\x08]")


@pytest.fixture
def chat_port() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiomsg", "chat-server", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "aiomsg chat-server: listening on 127.0.0.1:PORT"
        yield int(line.split("127.0.0.1:")[1])
    finally:
        proc.terminate()
        proc.wait(10)


class Terminal:
    """A program running on a pseudo-terminal; keystrokes in, screen text out."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.screen = b""

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait_for(self, text: bytes, after: bytes = b"", timeout: float = 15) -> bytes:
        """Read output until ``text`` shows (after ``after``, if given), escape codes removed;
        return all read so far."""
        deadline = time.monotonic() + timeout
        while not self._shows(text, after):
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never appeared; screen: {self._text()!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:  # the program exited
                    break
        return self._text()

    def _shows(self, text: bytes, after: bytes) -> bool:
        if not after:
            return text in self._text()
        _, found, rest = self._text().rpartition(after)
        return bool(found) and text in rest  # not before ``after`` has shown

    def _text(self) -> bytes:
        return ANSI.sub(b"", self.screen)

    def close(self) -> int:
        try:
            return self.proc.wait(15)
        finally:
            os.close(self.master)


def read_line(sock: socket.socket, buffer: list[bytes]) -> str:
    while b"\n" not in buffer[0]:
        chunk = sock.recv(4096)
        assert chunk, "server closed the connection"
        buffer[0] += chunk
    line, _, buffer[0] = buffer[0].partition(b"\n")
    return line.decode()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_typing_in_the_terminal_client(chat_port: int, loop: str) -> None:
    other = connect_blocking(("127.0.0.1", chat_port))
    pending = [b""]
    assert read_line(other, pending).startswith("* welcome")

    env = {**os.environ, "TERM": "xterm", "AIOMSG_LOOP": loop, "PROMPT_TOOLKIT_NO_CPR": "1"}
    term = Terminal([sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(chat_port)], env)
    try:
        screen = term.wait_for(b"you are guest")
        nick = re.search(rb"you are (guest\d+)", screen)
        assert nick is not None
        name = nick.group(1).decode()
        assert read_line(other, pending) == f"* {name} joined"

        # A typed line reaches the other client.
        term.type(b"hello there\r")
        assert read_line(other, pending) == f"{name}: hello there"

        # Half a line typed, then a line arrives: it is shown, and the half-typed
        # input survives (it is finished and sent whole afterwards).
        term.type(b"half way")
        term.wait_for(b"half way")
        other.sendall(b"interrupting you\n")
        term.wait_for(b"guest1: interrupting you")
        term.wait_for(b"half way", after=b"interrupting you")  # drawn again below it
        term.type(b" and done\r")
        assert read_line(other, pending) == f"{name}: half way and done"

        term.type(b"/quit\r")
        term.wait_for(b"* bye")
        assert term.close() == 0
        assert read_line(other, pending) == f"* {name} left"
    finally:
        other.close()
        if term.proc.poll() is None:
            term.proc.kill()


# --- the client's look: colours, timestamps, the nick in the prompt; Ctrl-C; --nick -----------

SGR = re.compile(rb"\x1b\[([0-9;]*)m")  # Select Graphic Rendition: colours, bold, reset


def colours_in(screen: bytes) -> set[int]:
    """The foreground and background colour codes the program sent (30-49, 90-107)."""
    codes = {int(p) for params in SGR.findall(screen) for p in params.split(b";") if p}
    return {c for c in codes if 30 <= c <= 49 or 90 <= c <= 107}


def chat_env(loop: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return {**env, "TERM": "xterm", "AIOMSG_LOOP": loop, "PROMPT_TOOLKIT_NO_CPR": "1", **extra}


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_terminal_client_shows_colours_times_and_the_nick_prompt(chat_port: int, loop: str) -> None:
    other = connect_blocking(("127.0.0.1", chat_port))
    pending = [b""]
    assert read_line(other, pending).startswith("* welcome")
    command = [sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(chat_port)]
    term = Terminal([*command, "--nick", "alice", "-v"], chat_env(loop))
    try:
        screen = term.wait_for(b"alice>", after=b"* you are now alice")  # --nick, then the prompt
        assert f"event loop {loop}".encode() in screen  # the banner (-v)
        # Incoming lines carry the time; notices are in a colour of their own.
        assert re.search(rb"\d\d:\d\d \* welcome to aiomsg chat, you are guest\d+", screen)
        assert re.search(rb"\x1b\[[0-9;]*3\dm\* you are now alice\x1b\[0m", term.screen)
        assert read_line(other, pending).endswith("joined")
        assert read_line(other, pending).endswith("is now alice")

        # Another member's message: the nick in a colour, the text as sent.
        other.sendall(b"hello alice\n")
        screen = term.wait_for(b"hello alice")
        assert re.search(rb"\d\d:\d\d guest\d+: hello alice", screen)
        assert re.search(rb"\x1b\[[0-9;]*3\dmguest\d+\x1b\[0m: hello alice", term.screen)

        # An error from the server: a colour again, not the notices' one.
        term.type(b"/dance\r")
        term.wait_for(b"! unknown command /dance")
        error = re.search(rb"\x1b\[([0-9;]*)m! unknown command", term.screen)
        notice = re.search(rb"\x1b\[([0-9;]*)m\* you are now", term.screen)
        assert error is not None and notice is not None
        assert error.group(1) != notice.group(1)

        # Ctrl-C leaves at once with status 130, without a traceback. Typed once the
        # prompt is back: between two prompts the terminal is not in raw mode, and
        # its line discipline, not the client, would take the key.
        term.wait_for(b"alice>", after=b"! unknown command /dance")
        term.type(b"\x03")
        assert term.close() == 130
        assert b"Traceback" not in term.screen
        assert read_line(other, pending) == "* alice left"
    finally:
        other.close()
        if term.proc.poll() is None:
            term.proc.kill()


def test_no_color_turns_the_colours_off(chat_port: int) -> None:
    command = [sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(chat_port)]
    term = Terminal([*command, "--nick", "bob"], chat_env("asyncio", NO_COLOR="1"))
    try:
        term.wait_for(b"bob>", after=b"* you are now bob")
        term.type(b"/dance\r")
        screen = term.wait_for(b"! unknown command /dance")
        assert re.search(rb"\d\d:\d\d ! unknown command /dance", screen)  # times stay
        assert colours_in(term.screen) == set()
        term.wait_for(b"bob>", after=b"! unknown command /dance")  # the prompt is back
        term.type(b"\x04")  # Ctrl-D: /quit, a normal end
        term.wait_for(b"* bye")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()


def test_piped_client_stays_plain_and_takes_nick(chat_port: int) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(chat_port), "--nick", "zed"],
        input=b"/who\n",
        capture_output=True,
        timeout=30,
        env=chat_env("uvloop"),
    )
    assert out.returncode == 0
    lines = out.stdout.decode().splitlines()
    assert lines[0].startswith("* welcome to aiomsg chat, you are guest")  # no time, no colour
    assert lines[1:] == [
        "* you are now zed",
        "* online: zed",
        "* bye",
        "* the server closed the connection",  # the client's own word, as before
    ]
    assert out.stderr == b""  # quiet by default; -v: tests/test_cli_quiet.py


def test_piped_client_ctrl_c_exits_130_without_a_traceback(chat_port: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(chat_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"* welcome")  # running; stdin still open
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
        assert proc.stderr.read() == b""  # quiet by default, and no traceback
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()


def test_colour_only_on_a_terminal_without_no_color() -> None:
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=False) as terminal, open(os.devnull, "w") as file:
            assert wants_colour(terminal, {})
            assert wants_colour(terminal, {"NO_COLOR": ""})  # set but empty: ignored (no-color.org)
            assert not wants_colour(terminal, {"NO_COLOR": "1"})
            assert not wants_colour(file, {})
    finally:
        os.close(slave)
        os.close(master)


def test_the_nick_comes_from_the_welcome_and_from_answers_to_our_own_nick_requests() -> None:
    me = Nick()
    me.heard("* welcome to aiomsg chat, you are guest3 (/nick NAME, /who, /me ACTION, /quit)")
    assert me.name == "guest3"
    # Another member named "you" doing "/me are now bob" prints the same words: ignored.
    me.heard("* you are now bob")
    me.heard("* welcome to aiomsg chat, you are mallory (fake)")  # not the first line
    assert me.name == "guest3"
    me.sent("/nick alice")
    me.heard("! nickname alice is taken")
    assert me.name == "guest3"
    me.sent("/nick alice2")
    me.heard("* you are now alice2")
    assert me.name == "alice2"
