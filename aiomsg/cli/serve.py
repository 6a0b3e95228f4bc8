"""``aiomsg serve``: an echo (or print) server for any framing.

``--mode print`` writes each message on stdout as ``PEER MESSAGE``: the
client's ``HOST:PORT`` (``[HOST]:PORT`` for IPv6; no spaces), one space, then
the message in ``--format`` (text, hex or a JSON string), one line each. With
``--proxy-protocol`` the client is the one the load balancer's header names.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import aiomsg
from aiomsg.framing import Framing

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


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, say: Say) -> int:
    chosen = _args.framing(args, parser)
    proxy = proxy_keywords(args, parser)
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
    proxy: dict[str, Any] | None = None,
) -> None:
    """Serve ``framing`` on ``host:port`` until cancelled: echo or print each message.

    Says ``listening on HOST:PORT`` (unless ``-q``); with ``-v`` each connection
    and its end. A client that breaks the framing gets one line on stderr, which
    adds that it may use another framing when nothing of it had parsed. ``proxy``:
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

    async with aiomsg.serve(handler, host, port, framing=framing, **(proxy or {})) as server:
        say.notice(f"listening on {address(host, server.port)}")
        say.chatter(f"{mode} server, {framing!r}, event loop {aiomsg.loop_name()}")
        await server.serve_forever()


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
