"""``aiomsg.run_workers``: N supervised processes of one's own server on one port.

Real processes on loopback: the app in ``tests/workers_app.py`` run as a script (so its
``main`` is pickled from ``__main__``), and ``aiomsg serve --workers 2``. The worker
processes run the loop the test runs on (``AIOMSG_LOOP``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

import aiomsg

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT, /proc"),
]

WAIT = 20.0  # seconds: a bound that only a broken supervisor reaches
APP = Path(__file__).with_name("workers_app.py")
ROOT = APP.parent.parent


def _env() -> dict[str, str]:
    return {**os.environ, "AIOMSG_LOOP": aiomsg.loop_name(), "PYTHONPATH": str(ROOT)}


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "zombie" not in status


def _listening(port: int) -> int:
    """How many sockets listen on TCP ``port`` (IPv4), as the kernel lists them."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A"
    )


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


class App:
    """``tests/workers_app.py COUNT`` as a subprocess: its port, its stderr lines."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    @classmethod
    async def start(cls, count: int, *extra: str) -> App:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(APP), str(count), *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
        )  # fmt: skip
        assert process.stdout is not None
        async with asyncio.timeout(WAIT):
            line = (await process.stdout.readline()).decode()
        assert line.startswith("port "), line
        return cls(process, int(line.split()[1]))

    async def ask(self, line: str) -> tuple[int, int, str]:
        """One line on a new connection: (worker id, worker pid, the echo)."""
        async with asyncio.timeout(WAIT):
            async with aiomsg.connect("127.0.0.1", self.port, framing=aiomsg.Lines()) as conn:
                await conn.send(line.encode())
                worker, pid, echo = (await conn.receive()).decode().split(" ", 2)
        return int(worker), int(pid), echo

    async def pids(self, count: int) -> dict[int, int]:
        """Each worker's pid, as its answers tell (connections until all have answered)."""
        seen: dict[int, int] = {}
        for _ in range(200):  # the kernel spreads connections: all answer long before
            worker, pid, _ = await self.ask("who")
            seen[worker] = pid
            if len(seen) == count:
                return seen
        raise AssertionError(f"only workers {sorted(seen)} answered")

    async def stop(self) -> str:
        """SIGKILL what is left; the whole stderr."""
        if self.process.returncode is None:
            self.process.kill()
        assert self.process.stderr is not None and self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            err = await self.process.stderr.read()
            await self.process.stdout.read()  # to its end: the transport closes with the loop
            await self.process.wait()
        return err.decode()


async def test_a_sigkilled_worker_is_restarted_and_the_others_serve_meanwhile() -> None:
    app = await App.start(2)
    try:
        before = await app.pids(2)
        os.kill(before[0], signal.SIGKILL)
        async with asyncio.timeout(WAIT):
            # Its listening socket goes with it, a little after the process (a client
            # the kernel had just handed that socket is reset: it would ask again).
            while _alive(before[0]) or _listening(app.port) > 1:
                await asyncio.sleep(0.01)
        assert (await app.ask("still here"))[2] == "still here"  # worker 1 (or 0's successor)
        after: dict[int, int] = {}
        async with asyncio.timeout(WAIT):
            for _ in range(2000):  # worker 0 comes back, as a new process
                worker, pid, _ = await app.ask("who")
                after[worker] = pid
                if 0 in after:
                    break
                await asyncio.sleep(0.01)
        assert after[0] != before[0]
        assert after.get(1, before[1]) == before[1]  # the other one was left alone
        assert not _alive(before[0])
    finally:
        err = await app.stop()
    assert f"worker 0 (pid {before[0]}) exited with code -9" in err
    assert "restarting it in 0.5 s" in err


async def test_sigterm_drains_every_worker_then_all_exit_cleanly() -> None:
    app = await App.start(2)
    try:
        pids = await app.pids(2)
        framing = aiomsg.Lines()
        conns: list[tuple[int, aiomsg.Connection]] = []
        for _ in range(200):  # a connection to each worker, each with a request in flight
            conn = await aiomsg.connect("127.0.0.1", app.port, framing=framing)
            await conn.send(b"which")
            worker = int((await conn.receive()).split()[0])
            if worker in {w for w, _ in conns}:
                await conn.aclose()
                continue
            conns.append((worker, conn))
            if len(conns) == 2:
                break
        assert len(conns) == 2
        for _, conn in conns:
            await conn.send(b"slow 1")
        await asyncio.sleep(0.3)  # the requests have arrived (the answers take 1 s)
        app.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            for worker, conn in conns:  # answered, then EOF (not a reset)
                assert await conn.receive() == f"{worker} {pids[worker]} slow 1".encode()
                assert await conn.receive_or_none() is None
                await conn.aclose()
            assert await app.process.wait() == 0
        assert not any(_alive(pid) for pid in pids.values())
    finally:
        err = await app.stop()
    # Each worker logs with its id: its start and the end of its drain.
    for worker in (0, 1):
        assert f"[worker {worker}] INFO app: serving on port {app.port}" in err
        assert f"[worker {worker}] INFO app: drained" in err


async def test_no_worker_outlives_a_sigkilled_parent() -> None:
    app = await App.start(3)
    try:
        pids = await app.pids(3)
        assert sorted(_children(app.process.pid)) == sorted(pids.values())
        app.process.kill()
        await app.process.wait()
        async with asyncio.timeout(WAIT):
            while any(_alive(pid) for pid in pids.values()):
                await asyncio.sleep(0.05)
    finally:
        await app.stop()
        for pid in pids.values():
            if _alive(pid):  # only if the test failed: leave nothing behind
                os.kill(pid, signal.SIGKILL)


async def test_a_worker_that_cannot_start_is_a_worker_start_error_and_nothing_is_left() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(APP), "2", "fail",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
    )  # fmt: skip
    async with asyncio.timeout(WAIT):
        out, err = await process.communicate()
    assert process.returncode == 3
    assert out == b""  # never ready: no port line
    text = err.decode()
    assert re.search(r"not started: worker \d \(pid \d+\) exited with code 1 before it was", text)
    assert "OSError: no port for this worker" in text  # the worker's own log says why


async def test_bad_counts_are_refused_before_anything_starts() -> None:
    async def main(worker: aiomsg.Worker) -> None: ...

    with pytest.raises(ValueError, match="at least 1"):
        aiomsg.run_workers(main, 0)
    with pytest.raises(ValueError, match="at least 1"):
        aiomsg.run_workers(main, True)


async def test_aiomsg_serve_with_two_workers_echoes_on_both_and_stops_on_sigterm() -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiomsg", "serve", "127.0.0.1", "0", "--framing", "lines",
        "--workers", "2", "-v", stderr=asyncio.subprocess.PIPE, env=_env(),
    )  # fmt: skip
    assert parent.stderr is not None
    stderr = parent.stderr

    async def line_with(pattern: str) -> re.Match[str]:
        async with asyncio.timeout(WAIT):
            while True:
                line = (await stderr.readline()).decode()
                assert line, "the parent exited"
                if found := re.search(pattern, line):
                    return found

    try:
        port = int((await line_with(r"listening on 127\.0\.0\.1:(\d+) \(2 workers"))[1])
        served: set[int] = set()
        for i in range(200):  # until both workers have served a client
            async with asyncio.timeout(WAIT):
                async with aiomsg.connect("127.0.0.1", port, framing=aiomsg.Lines()) as conn:
                    await conn.send(f"hello {i}".encode())
                    assert await conn.receive() == f"hello {i}".encode()
                    local = conn.local_address[1]
            closed = await line_with(rf"worker (\d): 127\.0\.0\.1:{local} closed .* 1 messages")
            served.add(int(closed[1]))
            if served == {0, 1}:
                break
        assert served == {0, 1}
        workers = _children(parent.pid)
        assert len(workers) == 2
        parent.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            assert await parent.wait() == 0
            rest = (await stderr.read()).decode()
        assert rest.count("stopping: draining the connections") == 2
        assert not any(_alive(pid) for pid in workers)
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()
        async with asyncio.timeout(WAIT):
            await stderr.read()  # to its end: the transport closes with the loop


async def test_the_workers_example_echoes_and_stops_cleanly_on_sigterm() -> None:
    example = ROOT / "examples" / "workers_echo.py"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(example), "--port", "0", "--workers", "2",
        stdout=asyncio.subprocess.PIPE, env=_env(),
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(WAIT):
            first = (await process.stdout.readline()).decode()
            assert " on 127.0.0.1:" in first, first
            port = int(first.split("127.0.0.1:")[1].split()[0])
            framing = aiomsg.LengthPrefixed(4)
            async with aiomsg.connect("127.0.0.1", port, framing=framing) as conn:
                await conn.send(b"hello")
                assert await conn.receive() == b"hello"
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        async with asyncio.timeout(WAIT):
            await process.stdout.read()  # to its end: the transport closes with the loop
