"""A server of one's own run as workers (``python tests/workers_app.py COUNT``), for the tests.

Each line a client sends is answered with ``ID PID LINE``: the worker's id, its pid, the
line. A line ``slow N`` is answered after N seconds (a request in flight). ``fail`` as the
first argument makes every worker fail before it is ready. The parent prints ``port N``
on stdout once every worker listens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import aiomsg

FRAMING = aiomsg.Lines()


async def main(worker: aiomsg.Worker, fail: bool) -> None:
    if fail:
        raise OSError("no port for this worker")

    async def answer(conn: aiomsg.Connection) -> None:
        async for line in conn:
            text = line.decode()
            if text.startswith("slow "):
                await asyncio.sleep(float(text.split()[1]))
            await conn.send(f"{worker.id} {os.getpid()} {text}".encode())

    logging.getLogger("app").info("serving on port %d", worker.port)
    server = aiomsg.serve(answer, worker.host, worker.port, framing=FRAMING, reuse_port=True)
    await worker.serve(server, drain_timeout=5)
    logging.getLogger("app").info("drained")


if __name__ == "__main__":
    count, fail = int(sys.argv[1]), sys.argv[2:] == ["fail"]
    try:
        status = aiomsg.run_workers(
            main,
            count,
            args=(fail,),
            on_ready=lambda port: print(f"port {port}", flush=True),
            start_timeout=20,
            stop_timeout=10,
        )
    except aiomsg.WorkerStartError as exc:
        print(f"not started: {exc}", file=sys.stderr, flush=True)
        status = 3
    sys.exit(status)
