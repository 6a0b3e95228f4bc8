"""``aiomsg serve``: an echo (or print) server for any framing.

``--mode print`` writes each message on stdout as ``PEER MESSAGE``: the
client's ``HOST:PORT`` (``[HOST]:PORT`` for IPv6; no spaces), one space, then
the message in ``--format`` (text, hex or a JSON string), one line each. With
``--proxy-protocol`` the client is the one the load balancer's header names.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

import aiomsg
from aiomsg.framing import Framing
from aiomsg.framing.spec import parse_framing
from aiomsg.workers import Worker, WorkerStartError, run_workers

from . import _args
from ._args import Command, Say
from ._errors import address, connection_error, mismatch_hint
from ._proxy_args import add_proxy_arguments, proxy_keywords


def _add_arguments(p: argparse.ArgumentParser) -> None:
    _args.add_host_port(p, server=True)
    _args.add_framing(p)
    p.add_argument(
        "--mode",
        choices=("echo", "print"),
        default="echo",
        help="send each message back, or print it on stdout as 'HOST:PORT MESSAGE'",
    )
    _args.add_format(p)
    add_proxy_arguments(p)
    _add_worker_arguments(p)


def _add_worker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=_args.count,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT), restarted if they die; "
        "SIGTERM drains them all",
    )


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, say: Say) -> int:
    chosen = _args.framing(args, parser)
    proxy = proxy_keywords(args, parser)
    if args.workers > 1:
        return _run_workers(args, say, proxy)
    aiomsg.run(
        run_framing_server(
            args.host,
            args.port,
            chosen,
            spec=args.framing,
            mode=args.mode,
            fmt=args.format,
            say=say,
            proxy=proxy,
        )
    )
    return 0


def _run_workers(args: argparse.Namespace, say: Say, proxy: dict[str, Any]) -> int:
    """``--workers N``: N processes, each a server as without it; this one supervises."""
    host, count = args.host, args.workers
    worker_args = (args.framing, args.max_size, args.mode, args.format, args.level, proxy)

    def ready(port: int) -> None:
        say.notice(f"listening on {address(host, port)} ({count} workers, SO_REUSEPORT)")

    try:
        return run_workers(
            _serve_worker,
            count,
            host=host,
            port=args.port,
            args=worker_args,
            on_ready=ready,
            log_level=_args.LOG_LEVELS[args.level],
        )
    except WorkerStartError as exc:
        say.error(f"{exc}; not serving")
        return 1


async def _serve_worker(
    worker: Worker,
    spec: str,
    max_size: int,
    mode: str,
    fmt: str,
    level: int,
    proxy: dict[str, Any],
) -> None:
    """One worker of ``--workers``: the server, on the shared port, until asked to stop."""
    framing = parse_framing(spec, max_size=max_size)
    say = Say(f"serve: worker {worker.id}", level)
    await run_framing_server(
        worker.host,
        worker.port,
        framing,
        spec=spec,
        mode=mode,
        fmt=fmt,
        say=say,
        worker=worker,
        proxy=proxy,
    )


def peer_name(remote: Any) -> str:
    """A TCP peer as ``HOST:PORT`` (``[HOST]:PORT`` for IPv6)."""
    if isinstance(remote, tuple) and len(remote) >= 2:
        return address(str(remote[0]), int(remote[1]))
    return str(remote)


async def run_framing_server(
    host: str,
    port: int,
    framing: Framing,
    *,
    spec: str,
    mode: str,
    fmt: str,
    say: Say,
    worker: Worker | None = None,
    proxy: dict[str, Any] | None = None,
) -> None:
    """Serve ``framing`` on ``host:port`` until cancelled or SIGTERM: echo or print each
    message. SIGTERM (or, as a ``worker``, being asked to stop) drains the server
    (:meth:`aiomsg.Server.drain`): each message received is answered, then EOF.

    Says ``listening on HOST:PORT`` (unless ``-q``; a worker only with ``-v``); with
    ``-v`` each connection and its end. A client that breaks the framing gets one
    line on stderr, which adds that it may use another framing when nothing of it
    had parsed. ``proxy``:
    the PROXY keywords of :func:`aiomsg.serve`; the peer printed is then the client
    the load balancer names.
    """
    out = sys.stdout.buffer

    async def handler(conn: aiomsg.Connection) -> None:
        peer = peer_name(conn.remote_address)
        prefix = peer.encode() + b" "
        say.chatter(f"{peer} connected")
        received = 0
        try:
            async for message in conn:
                received += 1
                if mode == "print":
                    out.write(prefix + _args.render(message, fmt))
                    out.flush()
                else:
                    await conn.send(message)
        except (aiomsg.FramingError, aiomsg.ConnectionTimeout) as exc:
            hint = "" if received else f" {mismatch_hint(spec, 'client')}"
            say.notice(f"{connection_error(exc, peer)}{hint}")
        except (aiomsg.ConnectionClosed, OSError) as exc:
            say.chatter(connection_error(exc, peer))
        else:
            say.chatter(f"{peer} closed the connection after {received} messages")

    reuse_port = worker is not None
    server = aiomsg.serve(
        handler, host, port, framing=framing, reuse_port=reuse_port, **(proxy or {})
    )
    async with server:
        listening = f"listening on {address(host, server.port)}"
        if worker is None:
            say.notice(listening)
        else:  # the parent says it once for all
            say.chatter(listening)
        say.chatter(f"{mode} server, {framing!r}, event loop {aiomsg.loop_name()}")
        if worker is not None:
            worker.ready()
            await worker.wait_stopping()
        else:
            stop = asyncio.Event()
            with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals on Windows
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
        say.chatter("stopping: draining the connections")
        await server.drain()


COMMAND = Command(
    name="serve",
    help="an echo (or print) server for any framing",
    description=(
        "Serve any framing: send each message back (--mode echo), or print it on stdout "
        "(--mode print) as 'HOST:PORT MESSAGE', the client's address, one space, then the "
        "message in --format, one line each. Says 'listening on HOST:PORT' on stderr "
        "(-q: not even that); a client that breaks the framing gets one line there too."
    ),
    add_arguments=_add_arguments,
    run=_run,
    failure=_args.server_failure,
)
