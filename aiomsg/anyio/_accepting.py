"""The anyio listeners of ``serve_framed``/``serve_framed_unix`` on trio: :class:`GuardedListener`.

anyio turns an ``accept()`` that fails with EMFILE (out of file descriptors) into
``BrokenResourceError``, and ``Listener.serve`` lets it out: the server would exit
and drop every client. This listener's ``serve`` hands such a failure to an
:class:`~aiomsg._accept_guard.AcceptGuard` (one log line, then one a minute with
a count), sleeps for the backoff and accepts again; the clients wait in the
listen queue meanwhile.

With a :class:`~aiomsg._proxy_accept.ProxySettings`, each accepted stream first
passes the server's :class:`~aiomsg._proxy_accept.ProxyGate` (an untrusted peer,
or one too many waiting for a header, is closed at once) and then, in its own
task, has its PROXY header read off the raw socket before the handler (and a
TLSListener's handshake above this listener) sees a byte; the handler gets a
:class:`~aiomsg.anyio.proxied.ProxiedStream` carrying it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio.abc import ByteStream, Listener, SocketAttribute, SocketListener, TaskGroup

from .._accept_guard import AcceptGuard
from .._proxy_accept import ProxyGate, ProxySettings
from ..framing.proxy_protocol import ProxyProtocolError
from .proxied import ProxiedStream, read_header

__all__ = ["GuardedListener"]


class GuardedListener(Listener[ByteStream]):
    """``listener``, whose :meth:`serve` outlives failed accepts; ``on_close`` runs
    once, before the listener is closed (a Unix socket's file is removed there)."""

    def __init__(
        self,
        listener: SocketListener,
        name: str,
        on_close: Callable[[], None] | None = None,
        proxy: ProxySettings | None = None,
    ) -> None:
        self._listener = listener
        self._guard = AcceptGuard(name)
        self._proxy = ProxyGate(proxy, name) if proxy is not None else None
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
                if self._proxy is None:
                    task_group.start_soon(handler, stream)
                elif self._proxy.admit(stream.extra(SocketAttribute.remote_address, None)):
                    task_group.start_soon(self._proxied, handler, stream, self._proxy)
                else:
                    await anyio.aclose_forcefully(stream)  # before reading a byte

    @staticmethod
    async def _proxied(
        handler: Callable[[ByteStream], Any], stream: ByteStream, gate: ProxyGate
    ) -> None:
        address = stream.extra(SocketAttribute.remote_address, None)
        header = None
        try:
            with anyio.CancelScope() as evicted:  # see ProxyGate.wait
                gate.wait(evicted, evicted.cancel)
                with anyio.fail_after(gate.settings.timeout):
                    header = await read_header(
                        stream.extra(SocketAttribute.raw_socket), gate.settings.version
                    )
        except (ProxyProtocolError, EOFError, OSError) as exc:  # TimeoutError included
            gate.failed(address, exc)
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        finally:
            gate.release(evicted)
        if header is None:  # failed, or evicted
            await anyio.aclose_forcefully(stream)
            return
        await handler(ProxiedStream(stream, header))

    async def aclose(self) -> None:
        if not self._closing:
            self._closing = True
            if self._on_close is not None:
                self._on_close()  # while the socket is open (see aiomsg._unix_socket)
        await self._listener.aclose()
