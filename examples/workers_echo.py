"""An echo server run as N processes on one port: ``python examples/workers_echo.py``.

Each worker is a process of its own serving the port with ``SO_REUSEPORT``; the
parent restarts one that dies. Ctrl-C or SIGTERM stops them: each worker drains
(what it received is answered, then EOF) for up to 20 s, then exits.
"""

from __future__ import annotations

import argparse
import sys

import aiomsg

FRAMING = aiomsg.LengthPrefixed(4)
OPTIONS = aiomsg.Options(drain_timeout=20)  # what a stop may wait for answers in flight


async def echo(conn: aiomsg.Connection) -> None:
    async for message in conn:
        await conn.send(message)


async def main(worker: aiomsg.Worker) -> None:
    """One worker: listen on the shared port, tell the parent, drain when asked to stop."""
    server = aiomsg.serve(
        echo, worker.host, worker.port, framing=FRAMING, options=OPTIONS, reuse_port=True
    )
    await worker.serve(server)


if __name__ == "__main__":  # the workers import this file again: only the parent runs this
    parser = argparse.ArgumentParser(description="an echo server in N processes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    def ready(port: int) -> None:
        print(f"echo workers on {args.host}:{port} ({args.workers} processes)", flush=True)

    sys.exit(
        aiomsg.run_workers(
            main, args.workers, host=args.host, port=args.port, on_ready=ready, stop_timeout=30
        )
    )
