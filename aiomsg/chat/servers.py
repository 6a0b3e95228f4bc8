"""Start any of the three chat servers by name: one entry point for the CLI, demo and tests."""

from __future__ import annotations

import asyncio

import anyio

from .room import ChatLimits

IMPLS = ("streams", "protocol", "anyio")


async def run_chat_server(
    impl: str,
    host: str,
    port: int,
    limits: ChatLimits | None = None,
    ready: asyncio.Future[int] | None = None,
) -> None:
    """Serve chat with the ``impl`` front until cancelled; report the bound port via ``ready``."""
    limits = limits or ChatLimits()

    def started(bound: int) -> None:
        if ready is not None:
            ready.set_result(bound)

    if impl == "streams":
        from .streams_server import serve_chat

        async with serve_chat(host, port, limits) as server:
            started(server.port)
            await server.serve_forever()
    elif impl == "protocol":
        from . import protocol_server

        listener = await protocol_server.serve_chat(host, port, limits)
        async with listener:
            started(listener.sockets[0].getsockname()[1])
            await listener.serve_forever()
    elif impl == "anyio":
        from . import anyio_server

        async with anyio.create_task_group() as tg:
            started(await tg.start(anyio_server.serve_chat, host, port, limits))
    else:
        raise ValueError(f"impl must be one of {IMPLS}, not {impl!r}")
