"""Run your own server as N supervised processes on one port: :func:`run_workers`.

Each worker is a fresh Python process (nothing of the parent's event loop or
threads is inherited) that runs ``main(worker, *args)`` on :func:`aiomsg.run`.
Every worker listens on the same ``host:port`` with ``SO_REUSEPORT``
(``reuse_port=True``), and the kernel spreads new connections over them. The
parent process only supervises:

* it restarts a worker that dies, after a back-off (0.5 s, doubling up to 30 s
  while workers keep dying early; back to 0.5 s once one has run for a minute);
* on SIGTERM (``docker stop``, systemd, Kubernetes) or Ctrl-C it asks every
  worker to stop (SIGTERM); each drains (see :meth:`Worker.serve`) and exits;
  one still running after ``stop_timeout`` seconds is killed;
* no worker outlives it: a worker's stdin is a pipe whose other end only the
  parent holds, so when the parent ends, however it ends (SIGKILL included),
  stdin reads EOF and the worker stops as if asked (on Linux the kernel also
  sends it SIGTERM: ``PR_SET_PDEATHSIG``). So ``main`` must not read stdin.

Workers log with their id: each one's root logger writes ``[worker ID] LEVEL
name: message`` on stderr (unless ``main`` configures logging itself), and
every record carries the attribute ``worker_id`` for formats of your own.

Example (the module must be importable by the workers: guard the call with
``if __name__ == "__main__":``)::

    async def main(worker: aiomsg.Worker) -> None:
        server = aiomsg.serve(echo, worker.host, worker.port, framing=FRAMING,
                              reuse_port=True)
        await worker.serve(server)   # listen, tell the parent, drain on SIGTERM

    if __name__ == "__main__":
        raise SystemExit(aiomsg.run_workers(main, 4, host="0.0.0.0", port=9000))
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import logging
import os
import pickle
import runpy
import select
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

from .asyncio.server import Server

__all__ = ["Worker", "WorkerStartError", "run_workers"]

logger = logging.getLogger("aiomsg.workers")

#: Seconds to wait before restarting a worker that died: the first, and the most.
RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
#: A worker that ran this long before dying was healthy: the back-off starts over.
HEALTHY_AFTER = 60.0

#: What :func:`run_workers` runs in each worker: ``main(worker, *args)``.
WorkerMain = Callable[..., Awaitable[None]]


class WorkerStartError(RuntimeError):
    """A worker exited, or did not call :meth:`Worker.ready`, within ``start_timeout``
    when the workers first started. Every worker has been stopped when it is raised."""


class Worker:
    """What a worker knows about itself; handed to ``main`` by :func:`run_workers`.

    ``id`` is the worker's number, ``0`` to ``count - 1``; a restarted worker keeps
    its predecessor's. ``host`` and ``port`` are where to listen (with
    ``reuse_port=True``: the other workers listen there too).
    """

    def __init__(
        self, id: int, count: int, host: str, port: int, ready_fd: int | None = None
    ) -> None:
        """Internal: :func:`run_workers` makes it (``ready_fd``: the pipe to the parent)."""
        self.id = id
        self.count = count
        self.host = host
        self.port = port
        self._ready_fd = ready_fd
        self._stop = asyncio.Event()
        self._told = False

    def __repr__(self) -> str:
        return f"Worker(id={self.id}, count={self.count}, host={self.host!r}, port={self.port})"

    def ready(self) -> None:
        """Tell the parent this worker listens (call it once ``main`` is serving).

        :func:`run_workers` waits for every worker's call before it reports the
        workers as started; a worker that never calls it is a
        :class:`WorkerStartError` at start-up. Later calls do nothing.
        """
        if self._told or self._ready_fd is None:
            return
        self._told = True
        with contextlib.suppress(OSError):
            os.write(self._ready_fd, b"ready\n")
            os.close(self._ready_fd)

    @property
    def stopping(self) -> bool:
        """Whether this worker was asked to stop (SIGTERM, SIGINT, or the parent is gone)."""
        return self._stop.is_set()

    async def wait_stopping(self) -> None:
        """Return once this worker is asked to stop; then finish (drain) and return from
        ``main``, which ends the process."""
        await self._stop.wait()

    def request_stop(self) -> None:
        """Ask this worker to stop, as SIGTERM does (``main`` sees :meth:`wait_stopping` return)."""
        self._stop.set()

    async def serve(self, server: Server, *, drain_timeout: float | None = None) -> None:
        """Start ``server`` (an :class:`aiomsg.Server`, not yet started), call
        :meth:`ready`, wait until asked to stop, then :meth:`~aiomsg.Server.drain`
        it (up to ``drain_timeout`` seconds; ``None``: the server's
        ``Options.drain_timeout``) and return.

        Raises:
            OSError: the server could not listen (the worker then exits with status 1,
                and at start-up :func:`run_workers` raises :class:`WorkerStartError`).
        """
        await server.start()
        self.ready()
        try:
            await self.wait_stopping()
        finally:
            await server.drain(drain_timeout)


# --- the parent ------------------------------------------------------------------


class _Stop(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(0 if signum == signal.SIGTERM else 130)


@dataclass
class _Slot:
    """One worker's place: its current process, its ready pipe, its restart back-off."""

    id: int
    process: subprocess.Popen[bytes] | None = None
    ready_fd: int | None = None  # closed once the worker said it is ready
    started: float = 0.0
    delay: float = RESTART_DELAY
    restart_at: float | None = None

    def close_ready(self) -> None:
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None


def free_reusable_port(host: str) -> socket.socket:
    """A socket bound with ``SO_REUSEPORT`` to a free port of ``host``, not listening.

    Kept open while the workers start, so that no other program takes the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


def run_workers(
    main: WorkerMain,
    count: int,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    args: Sequence[Any] = (),
    on_ready: Callable[[int], None] | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 40.0,
    log_level: int = logging.INFO,
) -> int:
    """Run ``main(worker, *args)`` in ``count`` worker processes on ``host:port``, and
    supervise them until SIGTERM or Ctrl-C (SIGINT). Blocks the calling thread (the
    main thread: it sets signal handlers, and puts the old ones back on return).

    ``main`` and ``args`` must be picklable (``main`` a module-level function; a
    script's module is run again in each worker under the name ``__mp_main__``, so
    guard the call with ``if __name__ == "__main__":``, as for
    :mod:`multiprocessing`). Port 0 picks a free port, the same for every worker:
    it is ``worker.port`` and what ``on_ready(port)`` gets, called once every
    worker has called :meth:`Worker.ready`. A worker that dies later is restarted
    (see the module's docstring); ``log_level`` is the workers' root logging level.
    On SIGTERM or SIGINT every worker is sent SIGTERM and given ``stop_timeout``
    seconds to drain and exit (keep it above ``Options.drain_timeout``), then
    killed.

    Returns:
        0 after SIGTERM (a clean stop, as ``docker stop`` and systemd ask for it),
        130 after Ctrl-C; every worker has exited either way.

    Raises:
        ValueError: ``count`` is below 1.
        pickle.PicklingError, TypeError, AttributeError: ``main`` or ``args`` cannot
            be pickled; nothing was started.
        WorkerStartError: a worker exited or did not call :meth:`Worker.ready`
            within ``start_timeout`` seconds at start-up (its log lines on stderr say
            why: it could not listen, say); every worker is stopped first.
        OSError: ``port`` 0 and no free port could be bound on ``host``.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a whole number of workers, at least 1, not {count!r}")
    payload = _payload(main, tuple(args))
    placeholder = free_reusable_port(host) if port == 0 else None
    if placeholder is not None:
        port = placeholder.getsockname()[1]
    slots = [_Slot(i) for i in range(count)]

    def start(slot: _Slot) -> None:
        reader, writer = os.pipe()
        settings = (slot.id, count, host, port, writer, log_level, os.getpid())
        data = pickle.dumps(settings) + payload
        # stdin: the settings, then a pipe that only closes when this process ends,
        # however it ends: the worker stops then, so no worker outlives its parent.
        # A new session: Ctrl-C on a terminal reaches the parent only, which stops
        # the workers in order, rather than every process at once.
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", "from aiomsg.workers import _bootstrap; _bootstrap()"],
                stdin=subprocess.PIPE,
                pass_fds=(writer,),
                start_new_session=True,
            )
        finally:
            os.close(writer)
        assert process.stdin is not None
        try:
            process.stdin.write(len(data).to_bytes(8, "big") + data)
            process.stdin.flush()
        except OSError:
            pass  # it died at once: the supervisor sees its exit code
        slot.close_ready()
        slot.process, slot.ready_fd = process, reader
        slot.started, slot.restart_at = time.monotonic(), None

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in slots:
            start(slot)
        _wait_ready(slots, start_timeout)
        if placeholder is not None:
            placeholder.close()
            placeholder = None
        if on_ready is not None:
            on_ready(port)
        _supervise(slots, start)  # returns only by a signal's _Stop
    except _Stop as stop:
        return stop.code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all(slots, stop_timeout)
        if placeholder is not None:
            placeholder.close()


def _payload(main: WorkerMain, args: tuple[Any, ...]) -> bytes:
    """``main`` and ``args`` pickled, with what a worker needs to unpickle them."""
    script = None
    if getattr(main, "__module__", None) == "__main__":
        script = getattr(sys.modules["__main__"], "__file__", None)
    return pickle.dumps((list(sys.path), script)) + pickle.dumps((main, args))


def _wait_ready(slots: list[_Slot], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = {slot.ready_fd: slot for slot in slots if slot.ready_fd is not None}
    while waiting:
        for slot in waiting.values():
            assert slot.process is not None
            code = slot.process.poll()
            if code is not None:
                raise WorkerStartError(
                    f"worker {slot.id} (pid {slot.process.pid}) exited with code {code} "
                    "before it was ready"
                )
        left = deadline - time.monotonic()
        if left <= 0:
            ids = ", ".join(str(slot.id) for slot in waiting.values())
            raise WorkerStartError(f"worker(s) {ids} not ready within {timeout:g} s")
        readable, _, _ = select.select(list(waiting), [], [], min(left, 0.1))
        for fd in readable:
            slot = waiting.pop(fd)
            if os.read(fd, 16).startswith(b"ready"):
                slot.close_ready()
            else:  # EOF: it died before it was ready; its exit code next turn
                waiting[fd] = slot
                assert slot.process is not None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    slot.process.wait(1.0)


def _supervise(slots: list[_Slot], start: Callable[[_Slot], None]) -> NoReturn:
    """Restart dead workers, with back-off, until a signal raises :class:`_Stop`."""
    while True:
        now = time.monotonic()
        for slot in slots:
            if slot.restart_at is not None:
                if now >= slot.restart_at:
                    start(slot)
                    logger.warning("worker %d restarted (pid %d)", slot.id, _pid(slot))
                continue
            assert slot.process is not None
            code = slot.process.poll()
            if code is None:
                continue
            slot.close_ready()
            ran = now - slot.started
            if ran >= HEALTHY_AFTER:
                slot.delay = RESTART_DELAY
            logger.warning(
                "worker %d (pid %d) exited with code %s after %.1f s; restarting it in %g s",
                slot.id,
                slot.process.pid,
                code,
                ran,
                slot.delay,
            )
            slot.restart_at = now + slot.delay
            slot.delay = min(slot.delay * 2, MAX_RESTART_DELAY)
        time.sleep(0.1)


def _pid(slot: _Slot) -> int:
    return slot.process.pid if slot.process is not None else -1


def _stop_all(slots: list[_Slot], timeout: float) -> None:
    running = [s.process for s in slots if s.process is not None and s.process.poll() is None]
    for process in running:
        with contextlib.suppress(OSError):
            process.terminate()  # SIGTERM: drain, then exit
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("worker pid %d did not stop in %g s: killing it", process.pid, timeout)
            process.kill()
            process.wait()
    for slot in slots:
        slot.close_ready()
        if slot.process is not None and slot.process.stdin is not None:
            with contextlib.suppress(OSError):
                slot.process.stdin.close()


# --- the worker ------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent ends (a second line behind stdin)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _log_with_id(worker_id: int, level: int) -> None:
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.worker_id = worker_id
        return record

    logging.setLogRecordFactory(factory)
    logging.basicConfig(
        level=level, format=f"[worker {worker_id}] %(levelname)s %(name)s: %(message)s"
    )


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError("the parent left before sending the worker's settings")
        data += chunk
    return data


def _bootstrap() -> None:
    """A worker process's entry point (``python -c``): settings from stdin, then ``main``."""
    _die_with_parent()
    size = int.from_bytes(_read_exactly(0, 8), "big")
    stream = memoryview(_read_exactly(0, size))
    source = io.BytesIO(stream)
    worker_id, count, host, port, ready_fd, log_level, parent = pickle.load(source)
    if os.getppid() != parent:  # the parent died before PR_SET_PDEATHSIG took effect
        return
    path, script = pickle.load(source)
    sys.path[:] = path
    if script is not None:  # main lives in the parent's script: run it, not as __main__
        module = types.ModuleType("__mp_main__")
        module.__dict__.update(runpy.run_path(script, run_name="__mp_main__"))
        sys.modules["__main__"] = sys.modules["__mp_main__"] = module
    main, args = pickle.load(source)
    _log_with_id(worker_id, log_level)
    from .loops import run

    worker = Worker(worker_id, count, host, port, ready_fd)
    try:
        run(_run_worker(worker, main, args))
    except Exception:
        logging.getLogger("aiomsg.workers").exception("worker %d failed", worker_id)
        sys.exit(1)


async def _run_worker(worker: Worker, main: WorkerMain, args: tuple[Any, ...]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)

    def parent_gone() -> None:
        if not os.read(0, 4096):
            loop.remove_reader(0)
            logger.warning("worker %d: the parent is gone; stopping", worker.id)
            worker.request_stop()

    loop.add_reader(0, parent_gone)
    await main(worker, *args)
