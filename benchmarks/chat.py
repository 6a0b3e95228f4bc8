"""The chat servers under a crowd: ``python3 dev.py bench benchmarks/chat.py``.

Each row of ``ROWS`` is a server started from its command line, in a process of
its own, listening on 127.0.0.1 (``{port}`` is replaced by a free port): adding a
row is adding a command line. The baseline is the chat server people write from
the asyncio docs (``benchmarks/handwritten_chat.py``), on the same event loop.

Clients live in two other processes (``--client``, asyncio Protocols on uvloop,
doing as little as possible per line): 500 clients (``--clients 1000`` for the
larger crowd), all reading; 5 of them talk. Each talker keeps at most ``WINDOW``
of its lines on their way (sent, not yet seen by a reading client of its own
process), so the server runs flat out without any client falling behind. Every
line carries its send time (``time.monotonic()``, one clock for all processes on
Linux); every 8th line is marked for the latency sample.

After ``WARMUP`` seconds of talk, ``MEASURE`` seconds are measured:

* delivered lines/s: lines received by all clients, divided by the time;
* p99 latency: 99th percentile of receive time minus send time over the sample;
* server CPU per line: the server process's user + system CPU time
  (``/proc/PID/stat``) divided by the lines delivered (for comparing a server
  of several worker processes with one process, sum their CPU).

Rows are measured in turns, ``--repeats`` times (3): the table shows each row's
best run, and its ratio to the baseline as the median over the rounds of the
ratio within each round (the busier the shared machine, the more this matters).
Prints the table and saves
``benchmarks/results/chat.json``. Every wait is bounded; a row that fails is
reported as such and the run goes on. ``--only`` takes a comma-separated list of
row names (or parts of them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
# Talkers are not flooders here: lift the flood limit of the aiomsg servers.
AIOMSG = [PY, "-m", "aiomsg", "chat-server", "--host", HOST, "--port", "{port}"]
AIOMSG_FLAGS = ["--flood-rate", "1e9"]
BROKER = ["--broker", "{redis}", "--room", "bench-{port}"]
HANDWRITTEN = [PY, str(ROOT / "benchmarks" / "handwritten_chat.py"), "--port", "{port}"]

# (name, command line). The first row is the baseline of the ratios.
ROWS: list[tuple[str, list[str]]] = [
    ("hand-written asyncio (uvloop)", [*HANDWRITTEN, "--loop", "uvloop"]),
    ("aiomsg streams", [*AIOMSG, "--impl", "streams", *AIOMSG_FLAGS]),
    ("aiomsg protocol", [*AIOMSG, "--impl", "protocol", *AIOMSG_FLAGS]),
    ("aiomsg anyio", [*AIOMSG, "--impl", "anyio", *AIOMSG_FLAGS]),
    ("hand-written asyncio (stdlib loop)", [*HANDWRITTEN, "--loop", "asyncio"]),
    # Scale-out: the room shared through a Redis that the benchmark starts ({redis});
    # its CPU counts as the server's. Compare with the one-process rows above.
    (
        "aiomsg protocol, 2 workers + Redis",
        [*AIOMSG, "--impl", "protocol", *AIOMSG_FLAGS, *BROKER, "--workers", "2"],
    ),
    (
        "aiomsg streams, 2 workers + Redis",
        [*AIOMSG, "--impl", "streams", *AIOMSG_FLAGS, *BROKER, "--workers", "2"],
    ),
]
TARGET = 5.0  # each aiomsg server >= 5x the baseline's delivered lines/s

CLIENT_PROCESSES = 2  # and the talkers are shared between them
TALKERS = 5
WINDOW = 8  # lines per talker on their way (--window)
SAMPLE_EVERY = 8
WARMUP = 2.0
MEASURE = 5.0
START_TIMEOUT = 30.0
CONNECT_TIMEOUT = 60.0
STEP_TIMEOUT = 30.0
WELCOME = b"* welcome to aiomsg chat, you are "
SAMPLE = re.compile(rb"!(\d+\.\d+)!")


# --- a client process: many clients, some of them talkers, driven through stdin/stdout ----


def say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


class Client(asyncio.Protocol):
    """Counts lines; records the latency of marked lines while measuring."""

    def __init__(self, proc: ClientProcess) -> None:
        self.proc = proc
        self.transport: asyncio.Transport | None = None
        self.nick = b""
        self.rest = b""
        self.welcomed = asyncio.get_running_loop().create_future()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        proc = self.proc
        proc.lines += data.count(b"\n")
        if proc.measuring:
            now = time.monotonic()
            proc.latencies.extend(now - float(t) for t in SAMPLE.findall(data))
        if not self.nick:
            self.rest += data
            if b"\n" in self.rest:
                first = self.rest.split(b"\n", 1)[0]
                self.nick = first[len(WELCOME) :].split()[0] if first.startswith(WELCOME) else b"?"
                self.rest = b""
                self.welcomed.set_result(None)
        elif self is proc.probe:
            self.probe(data)

    def probe(self, data: bytes) -> None:
        """The probe parses every line: it paces the talkers of its process."""
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            sender, _, text = line.partition(b": ")
            talker = self.proc.talkers.get(sender)
            if talker is not None:
                talker.seen = int(text.split(b" ", 1)[0])
                talker.wake.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError("closed before the welcome"))


class Talker:
    def __init__(self, client: Client, window: int) -> None:
        self.client = client
        self.window = window
        self.seen = -1
        self.wake = asyncio.Event()

    async def talk(self) -> None:
        transport = self.client.transport
        assert transport is not None
        seq = 0
        while not transport.is_closing():
            while seq - self.seen > self.window:
                self.wake.clear()
                await self.wake.wait()
            now = time.monotonic()
            if seq % SAMPLE_EVERY == 0:
                transport.write(b"%d !%.6f! hello everyone\n" % (seq, now))
            else:
                transport.write(b"%d %.6f hello everyone\n" % (seq, now))
            seq += 1
            if seq % 4 == 0:
                await asyncio.sleep(0)  # let the probe read


class ClientProcess:
    def __init__(self) -> None:
        self.lines = 0
        self.measuring = False
        self.latencies: list[float] = []
        self.clients: list[Client] = []
        self.talkers: dict[bytes, Talker] = {}
        self.probe: Client | None = None

    async def run(self, port: int, count: int, talkers: int, window: int) -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[str] = asyncio.Queue()
        threading.Thread(target=read_commands, args=(loop, commands), daemon=True).start()
        for start in range(0, count, 100):  # batches below the listen backlog
            batch = await asyncio.gather(
                *(
                    loop.create_connection(lambda: Client(self), HOST, port)
                    for _ in range(min(100, count - start))
                )
            )
            self.clients += [client for _, client in batch]
            await asyncio.gather(*(c.welcomed for c in self.clients[start:]))
        self.probe = self.clients[-1]
        for client in self.clients[:talkers]:
            self.talkers[client.nick] = Talker(client, window)
        say({"ready": len(self.clients)})
        tasks = []
        while True:
            command = await commands.get()
            if command == "talk":
                tasks = [asyncio.create_task(t.talk()) for t in self.talkers.values()]
                say({"talking": True})
            elif command in ("mark", "measure"):
                self.measuring = command == "measure"
                say({"lines": self.lines, "cpu": time.process_time(), "time": time.monotonic()})
            elif command == "report":
                self.measuring = False
                lost = sum(c.lost for c in self.clients)
                say({"latencies": self.latencies, "lost": lost})
            else:
                for task in tasks:
                    task.cancel()
                for client in self.clients:
                    if client.transport is not None:
                        client.transport.abort()
                return


def read_commands(loop: asyncio.AbstractEventLoop, commands: asyncio.Queue[str]) -> None:
    for line in sys.stdin:
        loop.call_soon_threadsafe(commands.put_nowait, line.strip())
    loop.call_soon_threadsafe(commands.put_nowait, "stop")


def run_client(port: int, count: int, talkers: int, window: int) -> None:
    import uvloop

    raise_fd_limit()
    uvloop.run(ClientProcess().run(port, count, talkers, window))


# --- the driver -------------------------------------------------------------------------


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid``, from ``/proc/PID/stat`` (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_sum(pid: int, reading: Callable[[int], float]) -> float:
    """``reading(pid)`` summed over ``pid`` and its children (the workers of ``--workers``),
    recursively."""
    total = reading(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(tree_sum(int(child), reading) for child in children)


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and of its children."""
    return tree_sum(pid, cpu_seconds)


def writes(pid: int) -> int:
    """System calls that wrote (``syscw`` of ``/proc/PID/io``): how well a server batches
    its output, which its CPU per line mostly pays for."""
    with open(f"/proc/{pid}/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("syscw:"))


def tree_writes(pid: int) -> float:
    """:func:`writes` of ``pid`` and of its children."""
    return tree_sum(pid, writes)


class Redis:
    """A redis-server on a free loopback port, for the rows that use ``{redis}``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_listening(self.port, self.proc)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not listen within {START_TIMEOUT:g} s")


class Driven:
    """A client process, spoken to in JSON lines with a timeout on every answer."""

    def __init__(self, port: int, count: int, talkers: int, window: int) -> None:
        argv = [PY, __file__, "--client", "--port", str(port), "--count", str(count)]
        argv += ["--talkers", str(talkers), "--window", str(window)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        assert self.proc.stdout is not None
        box: list[bytes] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not box or not box[0]:
            raise RuntimeError(f"a client process did not answer within {timeout:g} s")
        return dict(json.loads(box[0]))

    def close(self) -> None:
        try:
            self.send("stop")
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def measure(
    argv: list[str], clients: int, window: int, redis: Redis | None = None
) -> dict[str, Any]:
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    if redis is not None:
        argv = [arg.replace("{redis}", redis.url) for arg in argv]

    def cpu() -> float:
        return tree_cpu_seconds(server.pid) + (cpu_seconds(redis.proc.pid) if redis else 0.0)

    server = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.DEVNULL)
    drivers: list[Driven] = []
    try:
        wait_listening(port, server)
        per = clients // CLIENT_PROCESSES
        share = [
            TALKERS // CLIENT_PROCESSES + (i < TALKERS % CLIENT_PROCESSES)
            for i in range(CLIENT_PROCESSES)
        ]
        drivers = [Driven(port, per, share[i], window) for i in range(CLIENT_PROCESSES)]
        for d in drivers:
            d.answer(CONNECT_TIMEOUT)
        for d in drivers:
            d.send("talk")
        for d in drivers:
            d.answer()
        time.sleep(WARMUP)
        cpu0, writes0 = cpu(), tree_writes(server.pid)
        for d in drivers:
            d.send("measure")
        start = [d.answer() for d in drivers]
        time.sleep(MEASURE)
        cpu1, writes1 = cpu(), tree_writes(server.pid)
        for d in drivers:
            d.send("mark")
        end = [d.answer() for d in drivers]
        for d in drivers:
            d.send("report")
        reports = [d.answer() for d in drivers]
    finally:
        for d in drivers:
            d.close()
        server.kill()
        server.wait()
    lines = sum(e["lines"] - s["lines"] for s, e in zip(start, end, strict=True))
    seconds = statistics.mean(e["time"] - s["time"] for s, e in zip(start, end, strict=True))
    latencies = sorted(x for r in reports for x in r["latencies"])
    return {
        "clients": per * CLIENT_PROCESSES,
        "lines_per_s": lines / seconds,
        "p99_latency_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
        "median_latency_ms": 1000 * statistics.median(latencies) if latencies else None,
        "server_cpu_s": cpu1 - cpu0,
        "server_cpu_us_per_line": 1e6 * (cpu1 - cpu0) / lines if lines else None,
        # Lines per write() to a client, about: the server's writes (Redis's not counted)
        "lines_per_server_write": lines / (writes1 - writes0) if writes1 > writes0 else None,
        "client_cpu_s": [e["cpu"] - s["cpu"] for s, e in zip(start, end, strict=True)],
        "clients_lost": sum(r["lost"] for r in reports),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--talkers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=500, help="clients in all (500)")
    parser.add_argument(
        "--window", type=int, default=WINDOW, help=f"lines per talker on their way ({WINDOW})"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per row, best kept (3)")
    parser.add_argument("--only", default="", help="comma-separated parts of row names")
    args = parser.parse_args()
    if args.client:
        run_client(args.port, args.count, args.talkers, args.window)
        return
    raise_fd_limit()
    only = [part for part in args.only.split(",") if part]
    rows = [(name, argv) for name, argv in ROWS if not only or any(p in name for p in only)]
    print(
        f"{args.clients} clients in {CLIENT_PROCESSES} processes, {TALKERS} talking "
        f"({args.window} lines each on their way), {WARMUP:g} s warm-up, {MEASURE:g} s measured",
        flush=True,
    )
    # In turns, `--repeats` times, keeping each row's best run: a burst of load from
    # elsewhere on the machine then hits every row alike instead of ruining one.
    redis = Redis() if any("{redis}" in " ".join(argv) for _, argv in rows) else None
    best: dict[str, dict[str, Any]] = {}
    rounds: list[dict[str, float]] = []  # each round's lines/s per row
    for _ in range(args.repeats):
        rounds.append({})
        for name, argv in rows:
            row: dict[str, Any] = {"name": name, "argv": argv}
            try:
                uses_redis = "{redis}" in " ".join(argv)
                row |= measure(argv, args.clients, args.window, redis if uses_redis else None)
            except (OSError, RuntimeError, ValueError, KeyError) as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
                print(f"{name:<36} failed: {row['error']}", flush=True)
            else:
                print(
                    f"{name:<36} {row['lines_per_s']:>11,.0f} lines/s"
                    f"  p99 {row['p99_latency_ms']:7.1f} ms"
                    f"  {row['server_cpu_us_per_line']:6.2f} µs CPU/line"
                    f"  {row['lines_per_server_write'] or 0:5.1f} lines/write"
                    f"  lost {row['clients_lost']}",
                    flush=True,
                )
                rounds[-1][name] = row["lines_per_s"]
            kept = best.get(name)
            if kept is None or row.get("lines_per_s", 0) > kept.get("lines_per_s", 0):
                best[name] = row
    if redis is not None:
        redis.close()
    results = [best[name] for name, _ in rows]
    # The ratio to the baseline within each round (rows measured back to back), then the
    # median over the rounds: a quiet moment that favoured one run of the baseline does
    # not decide every ratio, as the best runs alone would let it.
    base = ROWS[0][0]
    for row in results:
        ratios = [r[row["name"]] / r[base] for r in rounds if row["name"] in r and base in r]
        row["ratio"] = statistics.median(ratios) if ratios else None
        row["ratios_per_round"] = ratios
    print(f"\n{'server':<36} {'lines/s':>11} {'ratio':>7} {'p99 ms':>8} {'µs CPU/line':>12}")
    for row in results:
        if "error" in row:
            print(f"{row['name']:<36} failed")
            continue
        ratio = f"{row['ratio']:.1f}x" if row["ratio"] else "-"
        verdict = ""
        if row["ratio"] and row["name"].startswith("aiomsg"):
            verdict = (
                "  (target met)" if row["ratio"] >= TARGET else f"  (target {TARGET:g}x MISSED)"
            )
        print(
            f"{row['name']:<36} {row['lines_per_s']:>11,.0f} {ratio:>7} "
            f"{row['p99_latency_ms']:>8.1f} {row['server_cpu_us_per_line']:>12.2f}{verdict}"
        )
    # What the broker costs: each workers row against the one-process row of its front.
    by_name = {row["name"]: row for row in results if "error" not in row}
    for row in by_name.values():
        name = row["name"]
        if "workers" not in name:
            continue
        single = by_name.get(name.split(",")[0])
        if single is None:
            continue
        cpu = row["server_cpu_us_per_line"] / single["server_cpu_us_per_line"]
        speed = row["lines_per_s"] / single["lines_per_s"]
        row["cpu_per_line_vs_one_process"] = cpu
        row["lines_per_s_vs_one_process"] = speed
        print(
            f"{name}: CPU per line {cpu:.2f}x one process (target <= 1.5x), "
            f"lines/s {speed:.2f}x (target >= 1.0x)"
        )
    out = ROOT / "benchmarks" / "results" / "chat.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "python": sys.version,
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "clients": args.clients,
                "talkers": TALKERS,
                "window": args.window,
                "measure_s": MEASURE,
                "repeats": args.repeats,
                "rounds": rounds,
                "rows": results,
            },
            indent=2,
        )
    )
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
