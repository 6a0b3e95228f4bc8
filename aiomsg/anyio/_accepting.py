"""The anyio listeners of ``serve_framed``/``serve_framed_unix`` on trio: :class:`GuardedListener`.

anyio turns an ``accept()`` that fails with EMFILE (out of file descriptors) into
``BrokenResourceError``, and ``Listener.serve`` lets it out: the server would exit
and drop every client. This listener's ``serve`` hands such a failure to an
:class:`~aiomsg._accept_guard.AcceptGuard` (one log line, then one a minute with
a count), sleeps for the backoff and accepts again; the clients wait in the
listen queue meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio.abc import ByteStream, Listener, SocketListener, TaskGroup

from .._accept_guard import AcceptGuard

__all__ = ["GuardedListener"]


class GuardedListener(Listener[ByteStream]):
    """``listener``, whose :meth:`serve` outlives failed accepts; ``on_close`` runs
    once, before the listener is closed (a Unix socket's file is removed there)."""

    def __init__(
        self,
        listener: SocketListener,
        name: str,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._listener = listener
        self._guard = AcceptGuard(name)
        self._on_close = on_close
        self._closing = False

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._listener.extra_attributes

    async def serve(
        self, handler: Callable[[ByteStream], Any], task_group: TaskGroup | None = None
    ) -> None:
        """Accept until cancelled or closed, each client in a task of ``task_group``."""
        async with AsyncExitStack() as stack:
            if task_group is None:
                task_group = await stack.enter_async_context(anyio.create_task_group())
            while True:
                try:
                    stream = await self._listener.accept()
                except (anyio.BrokenResourceError, OSError) as exc:
                    # anyio's BrokenResourceError wraps an OSError from accept() (EMFILE,
                    # ENFILE, ENOBUFS, ENOMEM...): not the end of the listener.
                    cause = exc if isinstance(exc, OSError) else exc.__cause__
                    if self._closing or not isinstance(cause, OSError):
                        raise
                    if isinstance(cause, ConnectionAbortedError):
                        continue  # that client left while queued
                    await anyio.sleep(self._guard.failed(cause))
                    continue
                self._guard.accepted()
                task_group.start_soon(handler, stream)

    async def aclose(self) -> None:
        if not self._closing:
            self._closing = True
            if self._on_close is not None:
                self._on_close()  # while the socket is open (see aiomsg._unix_socket)
        await self._listener.aclose()
