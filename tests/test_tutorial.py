"""The tutorial's programs (docs/tutorial/, examples/tutorial/) run and show what the pages say:
each does the job the blocking-socket way and the aiomsg way, with the same result."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "examples" / "tutorial"


def run(name: str, timeout: float = 30) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(TUTORIAL / name)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_every_chapter_has_its_program_and_every_program_its_chapter() -> None:
    pages = "".join(p.read_text() for p in (ROOT / "docs" / "tutorial").glob("[0-9]*.md"))
    for program in TUTORIAL.glob("*.py"):
        assert f"examples/tutorial/{program.name}" in pages, program.name


def test_partial_reads() -> None:
    out = run("partial_reads.py")
    blocking = [line for line in out if line.startswith("blocking:")]
    # However the bytes were cut, together they are the line; aiomsg gives the line whole.
    chunks = [ast.literal_eval(line.split("returned ", 1)[1]) for line in blocking]
    assert b"".join(chunks) == b"hello world\n"
    assert out[len(blocking) :] == ["aiomsg: receive() returned b'hello world'"]


def test_fixed_length() -> None:
    messages = ["b'reading1'", "b'reading2'", "b'reading3'"]
    assert run("fixed_length.py") == [
        f"{way}: {m}" for way in ("blocking", "aiomsg") for m in messages
    ]


def test_delimiters_split_across_reads() -> None:
    messages = ["b'one'", "b'two'", "b'three'"]
    assert run("delimiters.py") == [
        f"{way}: {m}" for way in ("blocking", "aiomsg") for m in messages
    ]


def test_length_prefixes_binary_and_ascii() -> None:
    both = [
        f"{way}: {line}"
        for way in ("blocking", "aiomsg")
        for line in ("5 bytes b'hello'", "0 bytes b''", "70000 bytes b'xxxxx'")
    ]
    assert run("length_prefix.py") == [
        "-- binary, network byte order",
        *both,
        "-- ASCII digits",
        *both,
    ]


def test_type_prefix() -> None:
    said = ["reading 21.5", "note 'sensor restarted'", "reading 22.0", "note 'all good'"]
    assert run("type_prefix.py") == [f"{way}: {s}" for way in ("blocking", "aiomsg") for s in said]


def test_leftovers() -> None:
    assert run("leftovers.py") == [
        "blocking: b'first' - kept 19 bytes for what follows",
        "blocking: b'second' - kept 9 bytes for what follows",
        "blocking: b'third' - kept 0 bytes for what follows",
        "decoder: b'first'",
        "decoder: b'second'",
        "decoder: b'third'",
        "aiomsg: b'first'",
        "aiomsg: b'second'",
        "aiomsg: b'third'",
    ]


def test_half_close_interoperates_both_ways() -> None:
    assert run("half_close.py") == [
        "blocking client, blocking server: b'HEY'",
        "aiomsg client, blocking server: b'HI'",
        "blocking client, aiomsg server: b'HELLO'",
    ]


def test_dead_peers_are_found_by_timeouts() -> None:
    assert run("dead_peers.py") == [
        "blocking: recv() timed out; give up on this peer",
        "aiomsg: a message began and did not finish within message_timeout",
        "aiomsg: nothing arrived within idle_timeout",
    ]


def test_select_and_asyncio_serve_two_clients_at_once() -> None:
    out = run("select_to_asyncio.py")
    assert out[0] == "-- the select() server" and out[3] == "-- the aiomsg server"
    for part in (out[1:3], out[4:6]):  # the two clients finish in either order
        assert sorted(part) == [
            "alice got alice 0, alice 1, alice 2",
            "bob got bob 0, bob 1, bob 2",
        ]


@pytest.mark.skipif(not hasattr(__import__("socket"), "AF_UNIX"), reason="no Unix sockets")
def test_unix_sockets() -> None:
    assert run("unix_sockets.py") == ["blocking server: b'17'", "aiomsg server: b'17'"]
