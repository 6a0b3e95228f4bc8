"""Memory per idle connection on each front: ``python3 dev.py bench benchmarks/connections.py``.

What a server pays, in resident memory (RSS), for each connection that is open
but silent: the objects of the loop's transport, of the front, and whatever
buffers they allocate up front. Candidates, each on uvloop and on stdlib asyncio:

* ``raw asyncio.Protocol``: a Protocol whose ``data_received`` does nothing (the floor).
* ``aiomsg MessageProtocol``: a ``LengthPrefixed(4)`` subclass served with
  ``loop.create_server``; ``message_received`` does nothing.
* ``aiomsg Streams``: ``aiomsg.serve`` with a handler doing ``async for m in conn: pass``.
* ``aiomsg FramedStream (anyio)``: ``aiomsg.serve_framed`` in an anyio task group,
  with a handler doing ``async for m in stream: pass``.

How: every server runs in a fresh process of its own (this file with the hidden
``--serve``), listening on 127.0.0.1, port 0; the client is another process
(``--client``) of plain blocking sockets; this process drives both through their
stdin/stdout, one JSON line per request and per answer. Both raise
RLIMIT_NOFILE to its hard limit (N is lowered, with a note, when that is too low).
The steps, for each server:

1. warm-up: 100 connections opened, accepted, closed, seen closed by the server;
2. ``gc.collect()`` in the server, then its RSS: *before*;
3. N connections opened in batches smaller than the listen backlog, each batch
   accepted by the server before the next (it counts ``connection_made``, or
   handler starts, and its open file descriptors); then a short settle,
   ``gc.collect()`` and RSS again: *open*;
4. the client closes them all; once the server has seen every one closed and its
   descriptors are back to where they were, settle, ``gc.collect()``, RSS: *closed*.

Reported: (open - before) / N in KiB per connection, its ratio to the raw
Protocol on the same loop, and how much of the growth is still resident after
every connection closed. RSS is the process's user-space memory only: the
kernel's socket buffers are not in it. Every wait is bounded by a timeout; a
candidate that fails is reported as such and the run goes on.

Options: ``--connections N`` (default 10,000), ``--loops uvloop,asyncio``,
``--only raw,aiomsg-protocol,aiomsg-streams,aiomsg-anyio``. Prints a table and the
target (Streams and MessageProtocol at most 16 KiB per idle connection), and saves
``benchmarks/results/connections.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import functools
import gc
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
CANDIDATES = {
    "raw asyncio.Protocol": "raw",
    "aiomsg MessageProtocol": "aiomsg-protocol",
    "aiomsg Streams": "aiomsg-streams",
    "aiomsg FramedStream (anyio)": "aiomsg-anyio",
}
BASELINE = "raw"
TARGET_KIB = 16.0
TARGET_IMPLS = ("aiomsg-protocol", "aiomsg-streams")
WARMUP = 100
# Below asyncio's (and uvloop's) default listen backlog of 100: a batch never
# overruns the accept queue, so no SYN is dropped and retried a second later.
BATCH = 50
FD_MARGIN = 100  # descriptors each process needs besides the N connections
SETTLE = 0.5  # seconds of quiet before each RSS reading
POLL = 0.002  # seconds between two status requests while waiting
START_TIMEOUT = 30.0
STEP_TIMEOUT = 30.0  # one batch, one measurement request
ALL_TIMEOUT = 120.0  # all N accepted, all N seen closed
CONNECT_TIMEOUT = 10.0
KiB = 1024


# --- both sides ---------------------------------------------------------------------------


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes() -> int:
    """This process's resident set size, from ``/proc/self/statm`` (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def malloc_trim() -> bool:
    """Ask glibc to hand its free memory back to the OS; False where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


def reply(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


# --- the server process: one candidate, answering the driver's requests on stdin -----------


@dataclass
class Tally:
    """Connections the server has taken on, and those it has seen end."""

    made: int = 0
    ended: int = 0

    def state(self) -> dict[str, Any]:
        return {"made": self.made, "ended": self.ended, "fds": open_fds()}


def raw_protocol(tally: Tally) -> asyncio.Protocol:
    class Raw(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            tally.made += 1

        def data_received(self, data: bytes) -> None:
            pass

        def connection_lost(self, exc: Exception | None) -> None:
            tally.ended += 1

    return Raw()


def aiomsg_protocol(tally: Tally) -> asyncio.BaseProtocol:
    import aiomsg

    class Idle(aiomsg.MessageProtocol):
        framing = aiomsg.LengthPrefixed(4)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            tally.made += 1

        def message_received(self, message: bytes) -> None:
            pass

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            tally.ended += 1

    return Idle()


def library_info() -> dict[str, Any]:
    """Which aiomsg this server imported, and its default read size where it has one."""
    import aiomsg

    return {
        "aiomsg_path": str(Path(aiomsg.__file__).parent),
        "read_size": getattr(aiomsg.MessageProtocol, "read_size", None),
    }


async def answer_requests(port: int, tally: Tally) -> None:
    """Announce the port, then answer ``status``/``measure``/``trim`` until ``quit`` or EOF."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    reply({"port": port, **tally.state(), **library_info()})
    while line := await reader.readline():
        request = json.loads(line)["cmd"]
        if request == "status":
            reply(tally.state())
        elif request == "measure":
            gc.collect()
            reply({**tally.state(), "rss": rss_bytes()})
        elif request == "trim":
            gc.collect()
            trimmed = malloc_trim()
            reply({**tally.state(), "rss": rss_bytes() if trimmed else None})
        elif request == "quit":
            return
        else:
            reply({"error": f"unknown request {request!r}"})


async def serve_protocol(factory: Callable[[Tally], asyncio.BaseProtocol]) -> None:
    tally = Tally()
    server = await asyncio.get_running_loop().create_server(lambda: factory(tally), HOST, 0)
    try:
        await answer_requests(server.sockets[0].getsockname()[1], tally)
    finally:
        server.close()


async def serve_streams() -> None:
    import aiomsg

    tally = Tally()

    async def handle(conn: aiomsg.Connection) -> None:
        tally.made += 1
        try:
            async for _ in conn:
                pass
        finally:
            tally.ended += 1

    async with aiomsg.serve(handle, HOST, 0, framing=aiomsg.LengthPrefixed(4)) as server:
        await answer_requests(server.port, tally)


async def serve_anyio() -> None:
    import anyio

    import aiomsg

    tally = Tally()

    async def handle(stream: aiomsg.FramedStream) -> None:
        tally.made += 1
        try:
            async for _ in stream:
                pass
        finally:
            tally.ended += 1

    serve = functools.partial(aiomsg.serve_framed, framing=aiomsg.LengthPrefixed(4))
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, handle, HOST, 0)
        await answer_requests(port, tally)
        tg.cancel_scope.cancel()


def run_server(impl: str, loop_kind: str) -> None:
    import aiomsg

    raise_fd_limit()
    factory = aiomsg.loop_factory(loop_kind)
    if impl == "aiomsg-anyio":
        import anyio

        anyio.run(serve_anyio, backend="asyncio", backend_options={"loop_factory": factory})
        return
    if impl == "raw":
        main = serve_protocol(raw_protocol)
    elif impl == "aiomsg-protocol":
        main = serve_protocol(aiomsg_protocol)
    elif impl == "aiomsg-streams":
        main = serve_streams()
    else:
        raise SystemExit(f"unknown implementation {impl!r}")
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


# --- the client process: blocking sockets that connect and then say nothing ----------------


def run_client() -> None:
    raise_fd_limit()
    sockets: list[socket.socket] = []
    while line := sys.stdin.readline():
        request = json.loads(line)
        if request["cmd"] == "open":
            address = (HOST, request["port"])
            for _ in range(request["count"]):
                sockets.append(socket.create_connection(address, timeout=CONNECT_TIMEOUT))
            reply({"open": len(sockets)})
        elif request["cmd"] == "close":
            for sock in sockets:
                sock.close()
            sockets.clear()
            reply({"open": 0})
        elif request["cmd"] == "quit":
            return


# --- the driver: talks to both processes, every wait bounded --------------------------------


class Child:
    """A process running this file with a hidden sub-command; one JSON line per message."""

    def __init__(self, *args: str) -> None:
        self.name = " ".join(args)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self._pending = b""

    def read(self, timeout: float) -> dict[str, Any]:
        """Return the next JSON line, or raise if none came within ``timeout`` seconds."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError(f"no answer from {self.name} in {timeout:.0f} s")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                code = self.proc.wait(timeout=5)
                raise RuntimeError(f"{self.name} exited (code {code})")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise RuntimeError(message["error"])
        return message

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")

    def ask(self, request: dict[str, Any], timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        self.send(request)
        return self.read(timeout)

    def stop(self) -> None:
        """Ask it to quit; kill it if it has not exited within a few seconds."""
        try:
            self.send({"cmd": "quit"})
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def wait_for(
    server: Child, done: Callable[[dict[str, Any]], bool], what: str, timeout: float
) -> dict[str, Any]:
    """Poll the server's status until ``done(status)``; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        status = server.ask({"cmd": "status"})
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}; server status {status}")
        time.sleep(POLL)


def made_at_least(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda status: status["made"] >= count


def open_connections(server: Child, client: Child, port: int, count: int, made: int) -> None:
    """Open ``count`` connections in batches, each accepted by the server before the next."""
    opened = 0
    while opened < count:
        batch = min(BATCH, count - opened)
        client.ask({"cmd": "open", "port": port, "count": batch})
        opened += batch
        wait_for(server, made_at_least(made + opened), f"{made + opened} accepted", STEP_TIMEOUT)


def close_connections(server: Child, client: Child, ended: int, fds: int) -> None:
    """Close every client connection; wait until the server has seen them end and let go."""
    client.ask({"cmd": "close"})
    wait_for(
        server,
        lambda s: s["ended"] >= ended and s["fds"] <= fds,
        f"{ended} connections ended and descriptors back to {fds}",
        ALL_TIMEOUT,
    )


def warm_up(server: Child, client: Child, port: int, fds: int) -> None:
    """Open and close a few connections, so that first-use costs are not counted."""
    open_connections(server, client, port, WARMUP, 0)
    close_connections(server, client, WARMUP, fds)


def measure_rss(server: Child) -> dict[str, Any]:
    """Settle, then the server's RSS after ``gc.collect()``."""
    time.sleep(SETTLE)
    return server.ask({"cmd": "measure"})


def source_digest(package: str) -> str:
    """A digest of the library's source and compiled files: did it change during the run?"""
    digest = hashlib.sha256()
    for path in sorted(Path(package).rglob("*")):
        if path.suffix in (".py", ".c", ".so") and path.is_file():
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def measure(impl: str, loop_kind: str, count: int) -> dict[str, Any]:
    """Run one server and one client; return the server's RSS before, open and closed."""
    started = time.monotonic()
    server = Child("--serve", impl, "--loop", loop_kind)
    client: Child | None = None
    try:
        hello = server.read(START_TIMEOUT)
        port, base_fds = hello["port"], hello["fds"]
        digest = source_digest(hello["aiomsg_path"])
        client = Child("--client")
        warm_up(server, client, port, base_fds)
        before = measure_rss(server)
        open_connections(server, client, port, count, WARMUP)
        wait_for(
            server,
            lambda s: s["made"] == WARMUP + count and s["fds"] >= base_fds + count,
            f"all {count} connections accepted",
            ALL_TIMEOUT,
        )
        opened = measure_rss(server)
        close_connections(server, client, WARMUP + count, base_fds)
        closed = measure_rss(server)
        trimmed = server.ask({"cmd": "trim"})
    finally:
        if client is not None:
            client.stop()
        server.stop()
    return {
        "aiomsg_path": hello["aiomsg_path"],
        "aiomsg_digest": digest,
        "aiomsg_changed_during_measurement": source_digest(hello["aiomsg_path"]) != digest,
        "read_size": hello["read_size"],
        **figures(before, opened, closed, trimmed, count),
        "seconds": time.monotonic() - started,
    }


def figures(
    before: dict[str, Any],
    opened: dict[str, Any],
    closed: dict[str, Any],
    trimmed: dict[str, Any],
    count: int,
) -> dict[str, Any]:
    """The server's readings, and what they come to per connection."""
    growth = opened["rss"] - before["rss"]
    return {
        "rss_before": before["rss"],
        "rss_open": opened["rss"],
        "rss_closed": closed["rss"],
        "fds_open": opened["fds"] - before["fds"],
        "kib_per_connection": growth / count / KiB,
        "kib_per_connection_left_after_close": (closed["rss"] - before["rss"]) / count / KiB,
        "fraction_left_after_close": (closed["rss"] - before["rss"]) / growth if growth else None,
        # Diagnostic: what is left once glibc returned its free memory (malloc_trim(0)):
        # live objects, and pages of Python's own small-object arenas.
        "rss_trimmed": trimmed["rss"],
        "kib_per_connection_left_after_trim": (
            (trimmed["rss"] - before["rss"]) / count / KiB if trimmed["rss"] else None
        ),
    }


# --- the report ---------------------------------------------------------------------------------


def connections_allowed(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE; lower ``wanted`` (with a note) if the limit is short."""
    raise_fd_limit()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < wanted + FD_MARGIN:
        allowed = max(hard - FD_MARGIN, 1)
        print(f"note: RLIMIT_NOFILE hard limit is {hard}: {allowed:,} connections, not {wanted:,}")
        return allowed
    return wanted


def machine_info() -> dict[str, Any]:
    """What the other benchmarks record (Python, CPUs), and what the figures depend on here."""

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    def git(*args: str) -> str:
        # Read-only; --no-optional-locks: not even the index's stat cache is written.
        cmd = ["git", "--no-optional-locks", *args]
        root = Path(__file__).resolve().parent.parent
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=10)
        return done.stdout.rstrip()

    return {
        "python": sys.version,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "uvloop": version("uvloop"),
        "anyio": version("anyio"),
        # The checkout this file is in; the rows say which aiomsg each server imported.
        "aiomsg_commit": git("rev-parse", "HEAD"),
        "aiomsg_uncommitted_changes": git("status", "--porcelain", "--", "aiomsg").splitlines(),
        "page_size": os.sysconf("SC_PAGE_SIZE"),
    }


def print_table(rows: list[dict[str, Any]], loops: list[str]) -> None:
    """Per loop: KiB per idle connection, the ratio to the raw Protocol, what closing gave back."""
    header = f"{'implementation':<30}{'KiB/conn':>10}{'vs raw':>9}"
    header += f"{'left after close':>24}{'after malloc_trim':>19}"
    for lk in loops:
        print(f"\n{lk}\n{header}")
        for row in (r for r in rows if r["loop"] == lk):
            if "error" in row:
                print(f"{row['impl']:<30}  failed: {row['error']}")
                continue
            ratio = f"{row['ratio_to_raw']:.1f}x" if row["ratio_to_raw"] is not None else "-"
            left = f"{row['kib_per_connection_left_after_close']:.1f} KiB/conn"
            if row["fraction_left_after_close"] is not None:
                left += f" ({row['fraction_left_after_close']:.0%})"
            trimmed = row["kib_per_connection_left_after_trim"]
            trimmed_text = f"{trimmed:.1f} KiB/conn" if trimmed is not None else "-"
            print(
                f"{row['impl']:<30}{row['kib_per_connection']:>10.1f}{ratio:>9}"
                f"{left:>24}{trimmed_text:>19}"
            )
    print("\n(left after close: the growth still resident once every connection closed;")
    print(" after malloc_trim: the same once glibc returned its free memory to the OS)")


def check_target(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The target: Streams and MessageProtocol at most 16 KiB per idle connection."""
    checked = [r for r in rows if r["key"] in TARGET_IMPLS and "error" not in r]
    worst = max((r["kib_per_connection"] for r in checked), default=None)
    met = (
        worst is not None
        and worst <= TARGET_KIB
        and len(checked) == sum(r["key"] in TARGET_IMPLS for r in rows)
    )
    verdict = "met" if met else "not met"
    shown = f"worst {worst:.1f} KiB" if worst is not None else "nothing measured"
    print(
        f"\ntarget: Streams and MessageProtocol <= {TARGET_KIB:.0f} KiB per idle connection: ",
        end="",
    )
    print(f"{verdict} ({shown})")
    return {"target_kib": TARGET_KIB, "worst_kib": worst, "met": met}


def warn_if_library_changed(rows: list[dict[str, Any]]) -> None:
    """Say so when the figures of this run come from different versions of aiomsg."""
    measured = [r for r in rows if "error" not in r]
    versions = {(r["aiomsg_path"], r["aiomsg_digest"]) for r in measured}
    changed = [r for r in measured if r["aiomsg_changed_during_measurement"]]
    if len(versions) > 1 or changed:
        print(
            f"\nwarning: aiomsg changed during this run ({len(versions)} versions measured, "
            f"{len(changed)} measurements during a change): the figures mix versions"
        )


def run_all(candidates: dict[str, str], loops: list[str], count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for lk in loops:
        for name, impl in candidates.items():
            row: dict[str, Any] = {"loop": lk, "impl": name, "key": impl, "connections": count}
            try:
                row |= measure(impl, lk, count)
            except (OSError, RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
                print(f"{lk:<8} {name:<30} failed: {row['error']}", flush=True)
            else:
                print(
                    f"{lk:<8} {name:<30} {row['kib_per_connection']:8.1f} KiB/conn"
                    f"  (RSS {row['rss_before'] / KiB**2:.0f} -> {row['rss_open'] / KiB**2:.0f}"
                    f" -> {row['rss_closed'] / KiB**2:.0f} MiB, {row['seconds']:.1f} s)",
                    flush=True,
                )
            rows.append(row)
    add_ratios(rows)
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's KiB per connection over the raw Protocol's on the same loop."""
    raw = {
        r["loop"]: r["kib_per_connection"]
        for r in rows
        if r["key"] == BASELINE and "error" not in r
    }
    for row in rows:
        if "error" not in row:
            base = raw.get(row["loop"])
            row["ratio_to_raw"] = row["kib_per_connection"] / base if base else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="uvloop", help=argparse.SUPPRESS)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--loops", default="uvloop,asyncio")
    parser.add_argument("--only", default="", help="comma-separated implementation keys")
    args = parser.parse_args()
    if args.serve:
        run_server(args.serve, args.loop)
        return
    if args.client:
        run_client()
        return
    only = set(filter(None, args.only.split(",")))
    loops = args.loops.split(",")
    if only - set(CANDIDATES.values()) or set(loops) - {"uvloop", "asyncio"}:
        parser.error(f"--only takes {', '.join(CANDIDATES.values())}; --loops uvloop,asyncio")
    candidates = {name: key for name, key in CANDIDATES.items() if not only or key in only}
    count = connections_allowed(args.connections)
    print(f"{count:,} idle connections per server, {WARMUP} warm-up connections first", flush=True)
    rows = run_all(candidates, loops, count)
    print_table(rows, loops)
    target = check_target(rows)
    warn_if_library_changed(rows)
    results = {
        **machine_info(),
        "connections": count,
        "connections_asked": args.connections,
        "warmup": WARMUP,
        "rows": rows,
        "target": target,
    }
    out = Path(__file__).parent / "results" / "connections.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
