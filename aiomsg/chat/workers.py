"""``aiomsg chat-server --workers N``: N server processes on one port, one room through a broker.

Each worker is an ordinary ``aiomsg chat-server`` process listening with
``SO_REUSEPORT``, so the kernel spreads new connections over them; the broker
(Redis) makes their rooms one. This parent process only starts them, restarts
one that dies (at most once a second), and on Ctrl-C or SIGTERM stops them all:
each says goodbye to the broker, so its members leave the room cleanly.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

__all__ = ["run_workers"]

#: Seconds a worker has to start listening, and to stop when asked.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_reusable_port(host: str) -> socket.socket:
    """A socket bound with SO_REUSEPORT to a free port of ``host``, not listening.

    Kept open while the workers start, so that no other program takes the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


class _Stop(Exception):
    pass


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run_workers(
    count: int, worker_args: Sequence[str], host: str, port: int, *, quiet: bool = False
) -> int:
    """Run ``count`` workers (``aiomsg chat-server`` with ``worker_args``) on ``host:port``.

    Prints one line when all listen (not when ``quiet``); returns 0 after SIGTERM (a clean stop, as
    ``docker stop`` and systemd ask for it), 130 after Ctrl-C (every worker stopped
    either way), or 1 if a worker could not start.
    """
    placeholder = free_reusable_port(host) if port == 0 else None
    if placeholder is not None:
        port = placeholder.getsockname()[1]
    command = [
        sys.executable, "-m", "aiomsg", "chat-server", *worker_args,
        "--host", host, "--port", str(port), "--reuse-port", "--workers", "1",
        "--report-port", "--exit-with-stdin",
    ]  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for _ in range(count):
            workers.append(_start(command))
        for worker in workers:
            if not _ready(worker):
                print(
                    f"aiomsg chat-server: a worker did not start (exit code {worker.poll()})",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        if placeholder is not None:
            placeholder.close()
        if not quiet:
            print(
                f"aiomsg chat-server: listening on {host}:{port} ({count} workers, SO_REUSEPORT)",
                file=sys.stderr,
                flush=True,
            )
        _supervise(workers, command)  # until Ctrl-C or SIGTERM raises
    except _Stop:
        return 0  # asked to stop: a clean stop, as one process makes it
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_all(workers)
        if placeholder is not None:
            placeholder.close()


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    # stdout is the readiness pipe (the worker prints its port there); stderr is shared.
    # stdin is a pipe that only closes when this process ends, however it ends: the
    # worker stops then (--exit-with-stdin), so no worker outlives its parent.
    # A new session: Ctrl-C on a terminal reaches the parent only, which stops the
    # workers in order, rather than every process at once.
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )


def _ready(worker: subprocess.Popen[bytes]) -> bool:
    assert worker.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = worker.stdout.readline()  # the worker prints one line when it listens
        if line:
            return True
        if worker.poll() is not None:
            return False
    return False


def _supervise(workers: list[subprocess.Popen[bytes]], command: list[str]) -> NoReturn:
    while True:
        time.sleep(1.0)
        for i, worker in enumerate(workers):
            code = worker.poll()
            if code is not None:
                print(
                    f"aiomsg chat-server: worker {worker.pid} exited with code {code}; "
                    "starting another",
                    file=sys.stderr,
                    flush=True,
                )
                workers[i] = _start(command)


def _stop_all(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            # SIGTERM, not SIGINT: a parent started in the background hands its workers
            # SIGINT ignored, and they would wait STOP_TIMEOUT to be killed.
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for worker in workers:
        try:
            worker.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
