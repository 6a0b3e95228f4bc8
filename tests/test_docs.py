"""The documentation's code runs: every Python program a page shows is a file under examples/,
included into the page and run here (servers paired with clients, each bounded in time), and
every interactive example (``>>>``) in the pages passes as a doctest."""

from __future__ import annotations

import contextlib
import doctest
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)

# A fence that opens a code block, and the language it names.
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([^\s`]*)", re.MULTILINE)
INCLUDE = re.compile(r"^```\{literalinclude\}\s+(\S+)", re.MULTILINE)


def run_example(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``python examples/ARGS...`` as a user would; fail on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_python_in_the_docs_is_an_included_example_or_a_doctest(page: Path) -> None:
    # A ```python block would be code that nothing runs: show a file from examples/ with
    # {literalinclude} instead, or write a >>> session (```pycon), which the doctest below runs.
    languages = {m.group(2) for m in FENCE.finditer(page.read_text())}
    assert not languages & {"python", "py", "python3", "{code-block}"}, page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_docs_doctests_pass(page: Path) -> None:
    failures, _ = doctest.testfile(
        str(page), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False
    )
    assert failures == 0


def test_the_docstrings_doctests_pass() -> None:
    # The reference pages show the docstrings: their >>> examples run too.
    import importlib
    import pkgutil

    import aiomsg

    names = [m.name for m in pkgutil.walk_packages(aiomsg.__path__, "aiomsg.")]
    tested = 0
    for name in names:
        if name == "aiomsg.__main__":
            continue
        module = importlib.import_module(name)
        failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert failures == 0, name
        tested += attempted
    assert tested > 0


def test_every_example_is_shown_by_a_page_and_every_include_exists() -> None:
    included: set[Path] = set()
    for page in PAGES:
        for target in INCLUDE.findall(page.read_text()):
            path = (page.parent / target).resolve()
            assert path.is_file(), f"{page.name} includes a missing {target}"
            included.add(path)
    examples = {p.resolve() for p in EXAMPLES.rglob("*.py")}
    # The chat launchers are three lines each, documented in prose (docs/chat.md).
    prose_only = {EXAMPLES / n for n in ("chat_streams.py", "chat_protocol.py", "chat_anyio.py")}
    assert examples - included - {p.resolve() for p in prose_only} == set()


def test_the_reference_documents_every_public_name() -> None:
    import aiomsg.framing
    import aiomsg.testing

    reference = "".join(p.read_text() for p in (DOCS / "reference").glob("*.rst"))
    documented = set(re.findall(r"^\.\. auto\w+:: (\S+)", reference, re.MULTILINE))
    modules = {name for name in documented if name.startswith("aiomsg.")}  # automodule
    assert modules == {"aiomsg.limits", "aiomsg.testing", "aiomsg.framing.recipes"}
    wanted = set(aiomsg.__all__) - {"limits", "recipes"}
    wanted |= set(aiomsg.framing.__all__) - set(aiomsg.__all__)  # documented under aiomsg.framing
    assert wanted - documented == set()


@contextlib.contextmanager
def server(*args: str) -> Iterator[int]:
    """Run a server example on a free port; yield the port it prints on its first line."""
    proc = subprocess.Popen(
        [sys.executable, *args, "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "... on 127.0.0.1:PORT (uvloop)"
        assert " on 127.0.0.1:" in first, first
        yield int(first.split("127.0.0.1:")[1].split()[0])
    finally:
        proc.terminate()
        proc.wait(10)


def test_hello() -> None:
    out = run_example("examples/hello.py").stdout
    assert out.startswith("b'hello' on ")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_event_loop(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOMSG_LOOP", loop)
    out = run_example("examples/event_loop.py").stdout.splitlines()
    assert out == [f"aiomsg.run: {loop}", f"new_event_loop: {loop}", f"asyncio.Runner: {loop}"]


def test_echo_server_and_client() -> None:
    with server("examples/echo_server.py") as port:
        out = run_example("examples/echo_client.py", "--port", str(port), "hello", "world")
    assert out.stdout.splitlines() == ["b'hello'", "b'world'"]


def test_echo_server_with_netcat() -> None:
    netcat = shutil.which("nc")
    assert netcat, "netcat-openbsd is required (dev.py test installs it)"
    with server("examples/echo_server.py") as port:
        done = subprocess.run(
            [netcat, "-N", "127.0.0.1", str(port)],
            input=b"one\r\ntwo\n",
            capture_output=True,
            timeout=30,
        )
    assert done.stdout == b"one\ntwo\n"  # Lines() accepts \r\n and answers with \n


def test_serve_with_limits_refuses_a_line_over_max_size() -> None:
    done = run_example("examples/serve_with_limits.py")
    assert done.stdout.splitlines() == [
        "echoed: b'a short line'",
        "the server closed the connection: peer",
    ]
    assert "over max_size=4096" in done.stderr  # the server logged why, once


def test_heartbeat_keeps_a_quiet_connection_and_finds_a_hung_peer() -> None:
    out = run_example("examples/heartbeat.py").stdout.splitlines()
    assert out == ["quiet but alive: b'still there?'", "hung peer found: HeartbeatTimeout"]


def test_protocol_echo_server_with_both_blocking_clients() -> None:
    big = "x" * 100_000
    with server("examples/protocol_echo_server.py") as port:
        front = run_example("examples/blocking_front.py", "127.0.0.1", str(port), "a", big)
        page = run_example("examples/blocking_messages.py", "127.0.0.1", str(port), "b", big)
    assert front.stdout.splitlines() == ["a", big]
    assert page.stdout.splitlines() == ["b", big]


def test_protocol_client_against_the_protocol_server() -> None:
    with server("examples/protocol_echo_server.py") as port:
        out = run_example("examples/protocol_client.py", "--port", str(port), "a", "bb", "ccc")
    assert out.stdout.splitlines() == ["b'a'", "b'bb'", "b'ccc'"]


def test_trio_echo_serves_three_clients_at_once() -> None:
    assert run_example("examples/trio_echo.py").stdout.splitlines() == [
        "b'aiomsg' -> b'gsmoia'",
        "b'anyio' -> b'oiyna'",
        "b'trio' -> b'oirt'",
    ]


def test_tls_on_both_fronts() -> None:
    out = run_example("examples/tls_echo.py").stdout.splitlines()
    assert out[0].startswith("Streams over TLS: b'secret' TLSv1.")
    assert out[1:] == ["anyio over TLS: b'secret'", "anyio over TLS: no send_eof()"]


def test_switching_reads_raw_then_frames_then_tls() -> None:
    assert run_example("examples/switching.py").stdout.splitlines() == [
        "server: header b'DEMO\\x00\\x00\\t\\x01' then b'first frame'",
        "client: b'SECRET' over TLSv1.3",
    ]


def test_news_feed_broadcasts_and_its_subscriber_reconnects() -> None:
    assert run_example("examples/news_feed.py").stdout.splitlines() == [
        "subscriber: connected",
        "subscriber: got b'news 1'",
        "subscriber: got b'news 2'",
        "subscriber: the server went away; reconnecting",
        "subscriber: connected",
        "subscriber: got b'news 3'",
        'subscriber: got b"that\'s all"',
    ]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_echo(backend: str) -> None:
    assert run_example("examples/anyio_echo.py", "--backend", backend).stdout == "b'hi'\n"


def test_the_testing_example_passes_on_asyncio_and_trio() -> None:
    done = run_example(
        "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/testing_echo.py", timeout=60
    )
    assert "10 passed" in done.stdout  # five tests, each on asyncio and trio


def test_upper_server_with_the_client_and_netcat() -> None:
    netcat = shutil.which("nc")
    assert netcat, "netcat-openbsd is required (dev.py test installs it)"
    with server("examples/upper_server.py") as port:
        ours = run_example("examples/upper_client.py", "--port", str(port), "hello")
        theirs = subprocess.run(
            [netcat, "-N", "127.0.0.1", str(port)],
            input=b"hello",
            capture_output=True,
            timeout=30,
        )
    assert ours.stdout == "b'HELLO'\n"
    assert theirs.stdout == b"HELLO"
