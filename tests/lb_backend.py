"""One aiomsg backend behind HAProxy for the tests: ``python tests/lb_backend.py PORT``.

A ``Lines`` echo server with the PROXY protocol (v2, from 127.0.0.1); each request line is
written to stdout (``PID LINE``) as it is handled, 5 ms before its answer (the work), so
that a test can count what every backend handled. SIGTERM drains
(:meth:`aiomsg.Server.drain`) and exits 0. Prints ``ready`` on stdout once it listens.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiomsg


async def main(port: int) -> None:
    out = sys.stdout
    pid = os.getpid()

    async def echo(conn: aiomsg.Connection) -> None:
        async for line in conn:
            out.write(f"{pid} {line.decode()}\n")
            await asyncio.sleep(0.005)  # some work: a stop may come between handling and answer
            await conn.send(line)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    server = aiomsg.serve(
        echo,
        "127.0.0.1",
        port,
        framing=aiomsg.Lines(),
        proxy_protocol="v2",
        proxy_trusted=["127.0.0.1/32"],
    )
    async with server:
        print("ready", flush=True)
        await stop.wait()
        await server.drain()
    out.flush()


if __name__ == "__main__":
    aiomsg.run(main(int(sys.argv[1])))
