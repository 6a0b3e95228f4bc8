"""The interactive chat client under a pseudo-terminal, as a person would use it."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

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
        line = proc.stderr.readline()  # "... on 127.0.0.1:PORT ..."
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match is not None, line
        yield int(match[1])
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
    term = Terminal([*command, "--nick", "alice"], chat_env(loop))
    try:
        screen = term.wait_for(b"alice>", after=b"* you are now alice")  # --nick, then the prompt
        banner = re.search(rb"event loop (\w+)", screen)  # the banner, if the CLI prints it
        assert banner is None or banner[1] == loop.encode()
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
    ]  # stdout carries the server's lines only: the client's own words go to stderr
    said = out.stderr.decode().splitlines()  # at most the banner: the end was ours
    assert [line for line in said if "connected to 127.0.0.1" not in line] == [], said


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
        said = proc.stderr.read().splitlines()  # at most the banner
        assert [line for line in said if b"connected to 127.0.0.1" not in line] == [], said
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


# --- a hostile or failing server -----------------------------------------------------------


class RawServer:
    """A listening socket on loopback whose one connection ``script`` serves, in a thread."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.port: int = self.listener.getsockname()[1]
        self.script = script
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(30)
            with conn:
                self.script(conn)
        except BaseException as exc:  # reported by close()
            self.error = exc

    def close(self) -> None:
        self.thread.join(30)
        self.listener.close()
        assert not self.thread.is_alive(), "the script never ended"
        if self.error is not None:
            raise self.error


def reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def drain(conn: socket.socket) -> None:
    """Read what the client sends until it closes (bounded by the socket's timeout)."""
    with contextlib.suppress(OSError):
        while conn.recv(65536):
            pass


WELCOME = b"* welcome to aiomsg chat, you are guest1 (/nick NAME, /who, /me ACTION, /quit)\n"
KICK = "! flooding (over 20 lines/s): goodbye"


def closes(conn: socket.socket) -> None:
    conn.sendall(WELCOME)


def resets(conn: socket.socket) -> None:
    conn.sendall(WELCOME)
    time.sleep(0.2)  # the welcome is read before the reset
    reset(conn)


def breaks_the_framing(conn: socket.socket) -> None:
    conn.sendall(WELCOME + b"half a line and no end")


def kicks(conn: socket.socket) -> None:
    conn.sendall(WELCOME + KICK.encode() + b"\n")


def closes_while_the_client_writes(conn: socket.socket) -> None:
    conn.sendall(WELCOME)
    conn.recv(10)  # the client is writing
    conn.shutdown(socket.SHUT_WR)
    drain(conn)  # the client must go, on its own


ENDINGS = {
    "close": (closes, "the server closed the connection"),
    "reset": (resets, "the server reset the connection"),
    "framing": (breaks_the_framing, "the server broke the framing: "),
    "kick": (kicks, f"you were disconnected: {KICK}"),
    "close while writing": (closes_while_the_client_writes, "the server closed the connection"),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_piped_client_exits_when_the_server_ends_the_connection(ending: str, loop: str) -> None:
    """``tail -f log | aiomsg chat ...``: stdin never ends, the client must still exit."""
    script, words = ENDINGS[ending]
    server = RawServer(script)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(server.port)],
        stdin=subprocess.PIPE,  # kept open: the input has not ended
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=chat_env(loop),
    )
    try:
        assert proc.stdin is not None
        if ending == "close while writing":
            proc.stdin.write(b"a line\n" * 1000)
            proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("the client did not exit when the connection ended") from None
    finally:
        server.close()
    assert proc.returncode == 1
    assert out.decode().splitlines()[0] == WELCOME.decode().strip()
    said = [line for line in err.decode().splitlines() if "connected to 127.0.0.1" not in line]
    assert len(said) == 1, err  # one line: no traceback, no "cannot connect"
    assert said[0].startswith(f"aiomsg chat: {words}"), said


def test_piped_client_exits_0_after_its_input_ends_and_quit_is_answered() -> None:
    def answers_quit(conn: socket.socket) -> None:
        conn.sendall(WELCOME)
        received = b""
        while b"/quit\n" not in received:
            chunk = conn.recv(4096)
            assert chunk, "the client left without /quit"
            received += chunk
        conn.sendall(b"* bye\n")

    server = RawServer(answers_quit)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(server.port)],
            input=b"hello\n",
            capture_output=True,
            timeout=30,
            env=chat_env("asyncio"),
        )
    finally:
        server.close()
    assert out.returncode == 0
    assert out.stdout.decode().splitlines()[-1] == "* bye"
    said = out.stderr.decode().splitlines()
    assert [line for line in said if "connected to 127.0.0.1" not in line] == []


#: Lines a hostile server (or a member it relays raw) sends; each between unique markers.
HOSTILE = [
    b"\x1b]52;c;aGVsbG8=\x07",  # OSC 52: write the clipboard
    b"\x1b]0;pwned\x07",  # OSC 0: the window title
    b"\x1b]0;pwned\x1b\\",  # OSC 0 ended by ST
    b"\x1b[2J\x1b[H",  # clear the screen
    b"\x1b[1A\x1b[2K",  # cursor up, erase the line
    b"\r\x1b[2Kbob: send me your password",  # forge a line
    b"\x1b[8mhidden\x1b[0m",  # SGR 8
    b"\x07" * 40,  # BEL flood
    "\x9b2J".encode(),  # C1 CSI, as UTF-8
    b"\x9b2J",  # C1 CSI, the raw byte (invalid UTF-8)
    "\u202etxt.exe".encode(),  # right-to-left override
    "\u2066isolate\u2069".encode(),
]
C1_UTF8 = re.compile(b"\xc2[\x80-\x9f]")
BIDI_UTF8 = re.compile(b"\xe2\x80[\x8e\x8f\xaa-\xae]|\xe2\x81[\xa6-\xa9]|\xd8\x9c")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_terminal_client_writes_no_received_control_sequence(loop: str) -> None:
    def hostile(conn: socket.socket) -> None:
        lines = [WELCOME]
        for i, payload in enumerate(HOSTILE):
            lines.append(b"bob: <%d<" % i + payload + b">%d>\n" % i)
            lines.append(b"* bob <%d<" % i + payload + b">%d>\n" % i)  # a /me
        lines.append(b"* bob <end<done>end>\n")
        conn.sendall(b"".join(lines))
        conn.recv(10)  # until the client goes (the test types /quit)

    server = RawServer(hostile)
    command = [sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(server.port)]
    # NO_COLOR: the client's own colours off, so an SGR on screen could only be received.
    term = Terminal(command, chat_env(loop, NO_COLOR="1"))
    try:
        term.wait_for(b"<end<done>end>")
        term.wait_for(b"guest1>", after=b"<end<done>end>")
        term.type(b"/quit\r")
        assert term.close() == 1  # the raw server does not answer /quit: it just closes
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        server.close()
    screen = term.screen
    for i, payload in enumerate(HOSTILE):
        # Nothing of the payload reached the terminal raw...
        assert b"<%d<" % i + payload not in screen
        # ...it was shown, as visible markers, on both lines.
        shown = re.findall(rb"<%d<(.*?)>%d>" % (i, i), screen)
        assert len(shown) == 2, (payload, shown)
        for text in shown:
            assert b"\x1b" not in text and b"\x07" not in text and b"\r" not in text
    # And none of the payloads' controls anywhere (prompt_toolkit draws its prompt with
    # cursor moves and SGR resets of its own, never with these).
    for code in (b"\x1b]", b"\x07", b"\x1b[8m", b"\x1b[2J", b"\x1b[1A"):
        assert code not in screen, code
    assert not C1_UTF8.search(screen) and b"\x9b" not in screen
    assert not BIDI_UTF8.search(screen)
    assert b"^[]52;c;aGVsbG8=^G" in screen and b"<U+202E>txt.exe" in screen


def test_piped_client_whose_stdout_closes_says_so_not_that_the_connection_was_lost() -> None:
    """``aiomsg chat HOST PORT | head -1``: the reader went away, not the server."""
    reader_gone = threading.Event()

    def talks(conn: socket.socket) -> None:
        conn.sendall(WELCOME)
        reader_gone.wait(30)
        with contextlib.suppress(OSError):
            for i in range(200):  # more than a pipe holds: the client's print must fail
                conn.sendall(b"bob: line %d %s\n" % (i, b"x" * 1000))
        drain(conn)

    server = RawServer(talks)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(server.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=chat_env("asyncio"),
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == WELCOME
        proc.stdout.close()  # as head does
        reader_gone.set()
        assert proc.wait(30) == 1
        said = [
            line for line in proc.stderr.read().decode().splitlines()
            if "connected to 127.0.0.1" not in line
        ]  # fmt: skip
        assert said == ["aiomsg chat: stdout was closed"], said
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.close()
        proc.stderr.close()
        server.close()


def test_a_kick_followed_by_a_reset_is_worded_by_the_kick() -> None:
    """A client still writing when it is kicked gets a reset after the goodbye line."""

    def kicks_then_resets(conn: socket.socket) -> None:
        conn.sendall(WELCOME + KICK.encode() + b"\n")
        time.sleep(0.3)  # both lines read by the client
        reset(conn)

    server = RawServer(kicks_then_resets)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(server.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=chat_env("uvloop"),
    )
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.close()
    assert proc.returncode == 1
    assert out.decode().splitlines()[-1] == KICK
    said = [line for line in err.decode().splitlines() if "connected to 127.0.0.1" not in line]
    assert said == [f"aiomsg chat: you were disconnected: {KICK}"]


@pytest.mark.parametrize(("loop", "runs"), [("uvloop", 20), ("asyncio", 10)])
def test_a_flooding_piped_client_prints_the_servers_goodbye_every_time(
    chat_port: int, loop: str, runs: int
) -> None:
    """``yes hi | head -200 | aiomsg chat ...``: the server kicks the flooder while the client
    is still writing; the client's next write fails, and the goodbye that had arrived must
    still be printed (it used to be lost to the broken pipe most times)."""
    kicked = 0
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-m", "aiomsg", "chat", "127.0.0.1", str(chat_port)],
            input=b"hi\n" * 200,
            capture_output=True,
            env=chat_env(loop),
            timeout=20,
        )
        out = done.stdout.decode()
        if "! flooding" in out and "goodbye" in out:
            kicked += 1
        assert done.returncode == 1, done.stderr
        assert "you were disconnected: ! flooding" in done.stderr.decode(), done.stderr
    assert kicked == runs
