"""Scaling out behind HAProxy: ``python3 dev.py bench benchmarks/scale_out.py``.

What one aiomsg server process carries, alone and through a real HAProxy (``mode
tcp``, Debian's ``haproxy``), against 2 worker processes of :func:`aiomsg.run_workers`
sharing one port behind it; and what the PROXY protocol costs per connection.

Targets (each a fresh set of processes, on 127.0.0.1):

* ``alone``: one server process, the clients connect to it directly;
* ``haproxy -> 1``: the same server behind HAProxy;
* ``haproxy -> 2 workers``: ``run_workers(..., 2)`` on one port (``SO_REUSEPORT``)
  behind HAProxy (one ``server`` line; the kernel spreads HAProxy's connections);
* ``alone, PROXY v2``: one server with ``proxy_protocol="v2"``; each client
  connection starts with a v2 header (what HAProxy's ``send-proxy-v2`` sends).

Workloads (the clients are separate processes, on uvloop, so that the server's
CPU, not theirs, is what is measured where it can be):

* *messages/s*: ``CONNECTIONS`` persistent connections per client process, each
  pipelining a window of ``WINDOW`` 32-byte messages (``LengthPrefixed(4)``); the
  server does ``--work`` iterations of a small pure-Python loop per message (an
  application's work: without it, HAProxy's copying and the clients are the
  bottleneck, not the server) and answers 8 bytes;
* *connections/s*: each client task connects, sends one message, reads the answer,
  closes; again and again.

And, in this process, the sans-I/O cost of parsing one PROXY header
(``ProxyHeaderParser.feed`` of a whole v1 line and a whole v2 header).

Options: ``--seconds S`` per measurement (default 3), ``--work N`` (default 2000),
``--clients P`` client processes (default 2). Prints a table and saves
``benchmarks/results/scale_out.json``. The machine's other load shows in the
figures: read them as ratios between rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomsg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/haproxy.py: the HAProxy the tests run

FRAMING = aiomsg.LengthPrefixed(4)
CONNECTIONS = 16  # per client process, for messages/s
WINDOW = 16  # messages in flight per connection
CONNECTORS = 8  # tasks per client process, for connections/s
MESSAGE = b"m" * 32
PROXY_V2 = aiomsg.encode_proxy_header(("192.0.2.1", 56324), ("198.51.100.7", 443), version=2)
PROXY_V1 = aiomsg.encode_proxy_header(("192.0.2.1", 56324), ("198.51.100.7", 443), version=1)


def work(message: bytes, iterations: int) -> bytes:
    """An application's work per message: a small loop, pure Python (holds the core)."""
    x = len(message)
    for _ in range(iterations):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x.to_bytes(8, "big")


# --- the server processes ------------------------------------------------------------


def _server(iterations: int, proxy: bool) -> tuple[Any, dict[str, Any]]:
    async def handler(conn: aiomsg.Connection) -> None:
        async for message in conn:
            await conn.send(work(message, iterations))

    keywords: dict[str, Any] = {}
    if proxy:
        keywords = {"proxy_protocol": "v2", "proxy_trusted": ["127.0.0.1/32"]}
    return handler, keywords


async def _serve_one(port: int, iterations: int, proxy: bool) -> None:
    handler, keywords = _server(iterations, proxy)
    server = aiomsg.serve(handler, "127.0.0.1", port, framing=FRAMING, **keywords)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        print(f"port {server.port}", flush=True)
        await stop.wait()
        server.close()


async def _worker(worker: aiomsg.Worker, iterations: int) -> None:
    handler, _ = _server(iterations, False)
    server = aiomsg.serve(handler, worker.host, worker.port, framing=FRAMING, reuse_port=True)
    await worker.serve(server, drain_timeout=1)


def serve_main(args: argparse.Namespace) -> None:
    if args.serve_workers > 1:
        aiomsg.run_workers(
            _worker,
            args.serve_workers,
            port=args.port,
            args=(args.work,),
            on_ready=lambda port: print(f"port {port}", flush=True),
            log_level=40,
        )
    else:
        aiomsg.run(_serve_one(args.port, args.work, args.proxy))


@contextlib.contextmanager
def server_process(work_iterations: int, workers: int = 1, proxy: bool = False) -> Iterator[int]:
    command = [sys.executable, __file__, "--serve", "--work", str(work_iterations)]
    command += ["--serve-workers", str(workers)] + (["--proxy"] if proxy else [])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"the server did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the client processes ------------------------------------------------------------


async def _messages(port: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    counted = 0

    async def one() -> None:
        nonlocal counted
        async with aiomsg.connect("127.0.0.1", port, framing=FRAMING) as conn:
            batch = [MESSAGE] * WINDOW
            await conn.send_many(batch)
            while time.monotonic() < deadline:
                for _ in range(WINDOW // 2):  # keep the window full: answers in, more out
                    await conn.receive()
                counted += WINDOW // 2
                await conn.send_many(batch[: WINDOW // 2])
            for _ in range(WINDOW):
                await conn.receive()

    await asyncio.gather(*(one() for _ in range(CONNECTIONS)))
    return counted


async def _connections(port: int, seconds: float, header: bytes | None) -> int:
    deadline = time.monotonic() + seconds
    counted = 0

    async def one() -> None:
        nonlocal counted
        while time.monotonic() < deadline:
            conn = await aiomsg.connect("127.0.0.1", port, framing=FRAMING, proxy_header=header)
            async with conn:
                await conn.send(MESSAGE)
                await conn.receive()
            counted += 1

    await asyncio.gather(*(one() for _ in range(CONNECTORS)))
    return counted


def client_main(args: argparse.Namespace) -> None:
    header = PROXY_V2 if args.proxy else None
    if args.client == "messages":
        count = aiomsg.run(_messages(args.port, args.seconds))
    else:
        count = aiomsg.run(_connections(args.port, args.seconds, header))
    print(json.dumps({"count": count}), flush=True)


def measure(kind: str, port: int, seconds: float, clients: int, proxy: bool = False) -> float:
    """``kind`` per second, summed over ``clients`` client processes run at once."""
    command = [sys.executable, __file__, "--client", kind, "--port", str(port)]
    command += ["--seconds", str(seconds)] + (["--proxy"] if proxy else [])
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(clients)
    ]
    total = 0
    for process in processes:
        out, _ = process.communicate(timeout=seconds + 60)
        total += json.loads(out)["count"]
    return total / seconds


# --- the parent ----------------------------------------------------------------------


def parse_cost(header: bytes, rounds: int = 20_000) -> float:
    """Microseconds to parse one whole ``header`` with a fresh parser (sans-I/O)."""
    start = time.perf_counter()
    for _ in range(rounds):
        aiomsg.ProxyHeaderParser("any").feed(header)
    return (time.perf_counter() - start) / rounds * 1e6


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.haproxy import HAProxy

    seconds, clients, iterations = args.seconds, args.clients, args.work
    rows: dict[str, dict[str, float]] = {}

    def both(name: str, port: int) -> None:
        rows[name] = {
            "messages/s": measure("messages", port, seconds, clients),
            "connections/s": measure("connections", port, seconds, clients),
        }
        print(f"{name:24} {rows[name]['messages/s']:12,.0f} {rows[name]['connections/s']:12,.0f}")

    print(f"{'target':24} {'messages/s':>12} {'connections/s':>12}  (work {iterations}/message)")
    with server_process(iterations) as port:
        both("alone", port)
        with HAProxy([("127.0.0.1", port)], send_proxy=None, check=False) as proxy:
            both("haproxy -> 1", proxy.port)
    with server_process(iterations, workers=2) as port:
        with HAProxy([("127.0.0.1", port)], send_proxy=None, check=False) as proxy:
            both("haproxy -> 2 workers", proxy.port)
        both("2 workers alone", port)
    with server_process(iterations, proxy=True) as port:
        rows["alone, PROXY v2"] = {
            "connections/s": measure("connections", port, seconds, clients, proxy=True)
        }
        print(f"{'alone, PROXY v2':24} {'':>12} {rows['alone, PROXY v2']['connections/s']:12,.0f}")
    costs = {"v1 µs/header": parse_cost(PROXY_V1), "v2 µs/header": parse_cost(PROXY_V2)}
    print(f"PROXY header parse (sans-I/O): v1 {costs['v1 µs/header']:.2f} µs, "
          f"v2 {costs['v2 µs/header']:.2f} µs")  # fmt: skip
    per_work = {"µs of work per message": 1e6 * _time_work(iterations)}
    print(f"work per message: {per_work['µs of work per message']:.1f} µs")
    return {
        "rows": rows,
        "proxy_parse": costs,
        "work": per_work,
        "settings": {
            "seconds": seconds,
            "clients": clients,
            "work_iterations": iterations,
            "connections": CONNECTIONS,
            "window": WINDOW,
            "connectors": CONNECTORS,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "loop": _loop_name(),
    }


def _loop_name() -> str:
    loop = aiomsg.new_event_loop()
    try:
        return aiomsg.loop_name(loop)
    finally:
        loop.close()


def _time_work(iterations: int, rounds: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        work(MESSAGE, iterations)
    return (time.perf_counter() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--work", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=("messages", "connections"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--proxy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_main(args)
        return
    if args.client:
        client_main(args)
        return
    results = run(args)
    out = ROOT / "benchmarks" / "results" / "scale_out.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
