"""Start any of the three chat servers by name: one entry point for the CLI, demo and tests."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import anyio

from .._proxy_accept import ProxyTrusted, proxy_settings
from ..framing.proxy_protocol import ProxyVersion
from .room import ChatLimits, ChatRoom, Member

IMPLS = ("streams", "protocol", "anyio")


async def run_chat_server(
    impl: str,
    host: str,
    port: int,
    limits: ChatLimits | None = None,
    ready: asyncio.Future[int] | None = None,
    *,
    broker: str | None = None,
    room_name: str = "lobby",
    heartbeat: float = 1.0,
    reuse_port: bool = False,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
) -> None:
    """Serve chat with the ``impl`` front until cancelled; report the bound port via ``ready``.

    ``broker`` (``redis://HOST:PORT/DB``) shares the room ``room_name`` with every
    server using the same Redis (see :mod:`aiomsg.chat.redis_broker`); the server
    starts even while Redis is unreachable, and keeps trying. ``reuse_port``
    lets several processes listen on one port (``SO_REUSEPORT``).
    ``proxy_protocol``/``proxy_trusted``: behind a PROXY protocol load balancer (see
    :func:`aiomsg.serve`; a ``ValueError`` before listening when wrong).
    """
    proxy: dict[str, Any] = {"proxy_protocol": proxy_protocol, "proxy_trusted": proxy_trusted}
    proxy_settings(proxy_protocol, proxy_trusted)  # refused before the broker starts
    room = ChatRoom(limits or ChatLimits())
    shared = None
    if broker is not None:
        from .redis_broker import RedisBroker

        shared = RedisBroker(broker, room, room_name=room_name, heartbeat=heartbeat)
        await shared.start()
    try:
        await _serve(impl, host, port, room, ready, reuse_port, proxy)
    finally:
        if shared is not None:
            # Shielded: the server is being cancelled, but its members' leaving must
            # still reach the others (it is bounded in time).
            await asyncio.shield(shared.aclose())


#: Seconds a stopping server still accepts, so that clients the kernel had queued before
#: it could accept them get the goodbye (from ChatRoom.join) instead of a reset.
BACKLOG_GRACE = 0.5


async def _say_goodbye(room: ChatRoom) -> list[Member]:
    """Stop: goodbyes to every member (behind what is queued for each), a little time for the
    clients still in the accept queue, then up to ``drain`` seconds for it all to go out.

    Shielded: the stop that got us here is a cancellation of the task running this.
    """
    members = room.close_all()
    with anyio.CancelScope(shield=True):
        await anyio.sleep(BACKLOG_GRACE)  # newcomers get the goodbye from ChatRoom.join
        with anyio.move_on_after(room.limits.drain):
            while not all(member.drained() for member in members):
                await anyio.sleep(0.02)
    return members


async def _serve(
    impl: str,
    host: str,
    port: int,
    room: ChatRoom,
    ready: asyncio.Future[int] | None,
    reuse_port: bool,
    proxy: dict[str, Any],
) -> None:
    def started(bound: int) -> None:
        if ready is not None:
            ready.set_result(bound)

    if impl == "streams":
        from .streams_server import serve_chat

        async with serve_chat(host, port, room=room, reuse_port=reuse_port, **proxy) as server:
            started(server.port)
            try:
                await asyncio.Future()  # until cancelled (serve_forever would cancel the
            finally:  # handlers first, and the goodbyes would find nobody)
                await _say_goodbye(room)  # leaving the block then closes what is left
    elif impl == "protocol":
        from . import protocol_server

        listener = await protocol_server.serve_chat(
            host, port, room=room, reuse_port=reuse_port, **proxy
        )
        async with listener:
            started(listener.sockets[0].getsockname()[1])
            try:
                await asyncio.Future()  # until cancelled (serve_forever would stop
            finally:  # accepting at once: the clients still queued would get a reset)
                members = await _say_goodbye(room)  # goodbyes, then lingering closes
                listener.close()
                try:  # uvloop waits here for every client to go: not for ever
                    await asyncio.wait_for(listener.wait_closed(), room.limits.linger + 1)
                except TimeoutError:
                    for member in members:
                        member.disconnect(None)
    elif impl == "anyio":
        from . import anyio_server

        serve = functools.partial(
            anyio_server.serve_chat, host, port, room=room, reuse_port=reuse_port, **proxy
        )
        async with anyio.create_task_group() as tg:
            started(await tg.start(serve))
            try:
                await anyio.sleep_forever()
            finally:
                await _say_goodbye(room)  # cancelling the handlers then closes what is left
    else:
        raise ValueError(f"impl must be one of {IMPLS}, not {impl!r}")
