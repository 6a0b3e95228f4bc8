"""The interactive chat client under a pseudo-terminal, as a person would use it."""

from __future__ import annotations

import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

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
        line = proc.stderr.readline()  # "chat server (streams front) on 127.0.0.1:PORT, ..."
        yield int(line.split("127.0.0.1:")[1].split(",")[0])
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
        while text not in self._text().rpartition(after)[2] if after else text not in self._text():
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never appeared; screen: {self._text()!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:  # the program exited
                    break
        return self._text()

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
