"""Start any of the three chat servers by name: one entry point for the CLI, demo and tests."""

from __future__ import annotations

import asyncio
import contextlib
import functools

import anyio

from .room import ChatLimits, ChatRoom

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
) -> None:
    """Serve chat with the ``impl`` front until cancelled; report the bound port via ``ready``.

    ``broker`` (``redis://HOST:PORT/DB``) shares the room ``room_name`` with every
    server using the same Redis (see :mod:`aiomsg.chat.redis_broker`); the server
    starts even while Redis is unreachable, and keeps trying. ``reuse_port``
    lets several processes listen on one port (``SO_REUSEPORT``).
    """
    room = ChatRoom(limits or ChatLimits())
    shared = None
    if broker is not None:
        from .redis_broker import RedisBroker

        shared = RedisBroker(broker, room, room_name=room_name, heartbeat=heartbeat)
        await shared.start()
    try:
        await _serve(impl, host, port, room, ready, reuse_port)
    finally:
        if shared is not None:
            # Shielded: the server is being cancelled, but its members' leaving must
            # still reach the others (it is bounded in time).
            await asyncio.shield(shared.aclose())


#: Seconds a stopping server still accepts, so that clients the kernel had queued before
#: it could accept them get the goodbye (from ChatRoom.join) instead of a reset.
BACKLOG_GRACE = 0.5


async def _say_goodbye_to_the_backlog() -> None:
    # Shielded: the stop that got us here was a cancellation of the task running this.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(asyncio.sleep(BACKLOG_GRACE))


async def _serve(
    impl: str,
    host: str,
    port: int,
    room: ChatRoom,
    ready: asyncio.Future[int] | None,
    reuse_port: bool,
) -> None:
    def started(bound: int) -> None:
        if ready is not None:
            ready.set_result(bound)

    if impl == "streams":
        from .streams_server import serve_chat

        async with serve_chat(host, port, room=room, reuse_port=reuse_port) as server:
            started(server.port)
            try:
                await asyncio.Future()  # until cancelled (serve_forever would cancel the
            finally:  # handlers first, and the goodbyes would find nobody)
                room.close_all()  # goodbyes; leaving the block closes what is left
                await _say_goodbye_to_the_backlog()
    elif impl == "protocol":
        from . import protocol_server

        listener = await protocol_server.serve_chat(host, port, room=room, reuse_port=reuse_port)
        async with listener:
            started(listener.sockets[0].getsockname()[1])
            try:
                await asyncio.Future()  # until cancelled (serve_forever would stop
            finally:  # accepting at once: the clients still queued would get a reset)
                members = room.close_all()  # goodbyes, then lingering closes
                await _say_goodbye_to_the_backlog()
                listener.close()
                try:  # uvloop waits here for every client to go: not for ever
                    await asyncio.wait_for(listener.wait_closed(), room.limits.linger + 1)
                except TimeoutError:
                    for member in members:
                        member.disconnect(None)
    elif impl == "anyio":
        from . import anyio_server

        serve = functools.partial(
            anyio_server.serve_chat, host, port, room=room, reuse_port=reuse_port
        )
        async with anyio.create_task_group() as tg:
            started(await tg.start(serve))
            try:
                await anyio.sleep_forever()
            finally:
                room.close_all()  # goodbyes; cancelling the handlers closes what is left
                with anyio.CancelScope(shield=True):  # the stop was a cancellation
                    await anyio.sleep(BACKLOG_GRACE)  # the queued clients: goodbyes too
    else:
        raise ValueError(f"impl must be one of {IMPLS}, not {impl!r}")
