"""aiomsg's own accept loop for asyncio (uvloop included): :class:`Listener`.

``loop.create_server`` cannot be told what to do when ``accept()`` fails for want of
file descriptors: CPython's selector loop logs a traceback and schedules a retry per
attempt, up to ``backlog`` attempts per wake-up (tens of thousands of lines a
second, most of a core), and uvloop says nothing at all (libuv accepts and closes
the waiting clients). So aiomsg's servers bind their sockets here, accept with a
reader of their own, and hand each accepted socket to the loop with
:meth:`asyncio.loop.connect_accepted_socket` (public on both loops, TLS included).
On exhaustion the reader is removed for :data:`~aiomsg._accept_guard.ACCEPT_BACKOFF`
seconds and one line is logged (:class:`~aiomsg._accept_guard.AcceptGuard`); the
clients wait in the listen queue meanwhile.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import functools
import itertools
import logging
import os
import socket
import ssl as _ssl
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .._accept_guard import AcceptGuard
from .._proxy_accept import ProxyGate, ProxySettings, read_available
from .._unix_socket import bind_unix
from ..framing.proxy_protocol import ProxyHeader, ProxyHeaderParser, ProxyProtocolError

__all__ = ["Listener", "bind_tcp", "listen_tcp", "listen_unix"]

logger = logging.getLogger("aiomsg")

# Accepts per wake-up of the listening socket: a burst is taken in batches, so that
# other callbacks run in between (CPython's loop takes up to ``backlog``).
_ACCEPTS_PER_WAKEUP = 128


async def bind_tcp(
    host: str | Iterable[str] | None,
    port: int | None,
    *,
    family: int = socket.AF_UNSPEC,
    flags: int = socket.AI_PASSIVE,
    reuse_address: bool | None = None,
    reuse_port: bool | None = None,
) -> list[socket.socket]:
    """Bound (not yet listening) TCP sockets, as :meth:`asyncio.loop.create_server` makes
    them: one per address ``host`` resolves to (every interface for ``None`` or ``""``).

    Raises:
        OSError: an address could not be resolved or bound (the message names it).
    """
    loop = asyncio.get_running_loop()
    if reuse_address is None:
        reuse_address = os.name == "posix" and sys.platform != "cygwin"
    if host == "" or host is None:
        hosts: list[str | None] = [None]
    elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
        hosts = [host]
    else:
        hosts = list(host)
    infos = await asyncio.gather(
        *(
            loop.getaddrinfo(h, port, family=family, type=socket.SOCK_STREAM, flags=flags)
            for h in hosts
        )
    )
    sockets: list[socket.socket] = []
    try:
        for af, kind, proto, _, address in set(itertools.chain.from_iterable(infos)):
            try:
                sock = socket.socket(af, kind, proto)
            except OSError:  # a family this system lacks (IPv6 off, say)
                continue
            sockets.append(sock)
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, True)
            if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                # One socket per family, as asyncio does (Linux would otherwise
                # make the IPv6 socket take IPv4 as well, and the IPv4 bind fail).
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
            try:
                sock.bind(address)
            except OSError as err:
                raise OSError(
                    err.errno, f"error while attempting to bind on address {address!r}: {err}"
                ) from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(f"no address to listen on for host {host!r}, port {port!r}")
    return sockets


class Listener:
    """Listening sockets served by aiomsg's accept loop; stands in for :class:`asyncio.Server`.

    Each accepted socket becomes a transport and a protocol from ``factory`` through
    :meth:`asyncio.loop.connect_accepted_socket` (with ``ssl``: after its handshake,
    which must end within ``ssl_handshake_timeout``; a failed handshake is logged at
    DEBUG level). ``on_close`` runs once when it closes (a Unix socket's file is
    removed there); ``name`` is how log lines name it. :meth:`close` stops
    accepting and closes the sockets; the connections already made are their
    protocols' to close.

    With ``proxy`` (see :mod:`aiomsg._proxy_accept`), each accepted socket first
    goes through a :class:`~aiomsg._proxy_accept.ProxyGate` and, in a task of its
    own, has its PROXY header read off the raw socket (before TLS, before the
    transport exists); the protocol gets it as its ``proxy_header`` attribute
    before ``connection_made``. Without it, accepting does nothing more.
    """

    def __init__(
        self,
        sockets: list[socket.socket],
        factory: Callable[[], asyncio.BaseProtocol],
        *,
        backlog: int,
        ssl: _ssl.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
        on_close: Callable[[], None] | None = None,
        name: str | None = None,
        proxy: ProxySettings | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sockets = sockets
        self._factory = factory
        self._ssl = ssl
        self._ssl_handshake_timeout = ssl_handshake_timeout if ssl is not None else None
        self._on_close = on_close
        self._closed = False
        self._retries: dict[int, asyncio.TimerHandle] = {}
        self._handshakes: set[asyncio.Task[None]] = set()
        self._closed_event = asyncio.Event()
        try:
            for sock in sockets:
                sock.setblocking(False)
                sock.listen(backlog)
        except BaseException:
            self.close()
            raise
        self._name = name or ", ".join(_name(sock) for sock in sockets)
        self._guard = AcceptGuard(self._name)
        self._proxy = ProxyGate(proxy, self._name) if proxy is not None else None
        for sock in sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty once closed)."""
        return () if self._closed else tuple(self._sockets)

    def is_serving(self) -> bool:
        """Whether it still accepts (also while backing off)."""
        return not self._closed

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # the queue is empty
            except ConnectionAbortedError:
                continue  # the client left while queued
            except OSError as exc:
                # Out of descriptors or memory (or anything else accept() can raise
                # on a listening socket): one line, a pause, and try again.
                backoff = self._guard.failed(exc)
                self._pause(sock, backoff)
                return
            self._guard.accepted()
            conn.setblocking(False)
            if self._proxy is None:
                task = self._loop.create_task(self._connect(conn))
            elif self._proxy.admit(address):
                task = self._loop.create_task(self._connect_proxied(conn, address, self._proxy))
                # Evicted before it ran, the coroutine never gets to close the socket.
                task.add_done_callback(functools.partial(_close_if_cancelled, conn))
                self._proxy.wait(task, task.cancel)
            else:
                conn.close()  # untrusted, or too many waiting: before reading a byte
                continue
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    def _pause(self, sock: socket.socket, seconds: float) -> None:
        # The listening socket stays readable while the queue holds clients: stop
        # watching it for a while instead of spinning (the clients stay queued).
        fd = sock.fileno()
        self._loop.remove_reader(fd)
        self._retries[fd] = self._loop.call_later(seconds, self._resume, sock)

    def _resume(self, sock: socket.socket) -> None:
        self._retries.pop(sock.fileno(), None)
        if not self._closed:
            self._loop.add_reader(sock.fileno(), self._accept, sock)
            self._accept(sock)

    async def _connect_proxied(self, conn: socket.socket, address: Any, gate: ProxyGate) -> None:
        try:
            async with asyncio.timeout(gate.settings.timeout):
                header = await _read_header(self._loop, conn, gate.settings.version)
        except (ProxyProtocolError, EOFError, OSError) as exc:  # TimeoutError included
            gate.failed(address, exc)
            conn.close()
            return
        except BaseException:  # evicted (see ProxyGate.wait), or the server closes
            conn.close()
            raise
        finally:
            gate.release(asyncio.current_task())
        await self._connect(conn, header)

    async def _connect(self, conn: socket.socket, header: ProxyHeader | None = None) -> None:
        factory = self._factory
        if header is not None:

            def factory() -> asyncio.BaseProtocol:
                protocol = self._factory()
                # Before connection_made: the server's handler sees the client's address.
                with contextlib.suppress(AttributeError):  # a protocol with __slots__
                    protocol.proxy_header = header  # type: ignore[attr-defined]
                return protocol

        try:
            await self._loop.connect_accepted_socket(
                factory,
                conn,
                ssl=self._ssl,
                ssl_handshake_timeout=self._ssl_handshake_timeout,
            )
        except (Exception, asyncio.CancelledError) as exc:
            # A failed TLS handshake (a scanner, a plaintext client, one that gave up)
            # or a peer that reset at once: that client's business, not the server's.
            logger.debug("connection not set up: %r", exc)
            conn.close()

    def close(self) -> None:
        """Stop accepting and close the listening sockets (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for timer in self._retries.values():
            timer.cancel()
        self._retries.clear()
        if self._on_close is not None:
            self._on_close()  # while the sockets are open (see _unix_socket)
        for sock in self._sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
                sock.close()
        for task in self._handshakes:
            task.cancel()
        self._closed_event.set()

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` was called and pending TLS handshakes are over."""
        await self._closed_event.wait()
        if self._handshakes:
            await asyncio.wait(list(self._handshakes))

    async def serve_forever(self) -> None:
        """Wait until closed (accepting goes on meanwhile); close it when cancelled."""
        try:
            await self._closed_event.wait()
        finally:
            self.close()


async def _read_header(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, version: Any
) -> ProxyHeader:
    """The PROXY header off ``sock``, read with the loop's readiness callbacks, no byte more."""
    parser = ProxyHeaderParser(version)
    fd = sock.fileno()
    while True:
        header = read_available(sock, parser)
        if header is not None:
            return header
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _wake, readable)
        try:
            await readable
        finally:
            loop.remove_reader(fd)


def _close_if_cancelled(conn: socket.socket, task: asyncio.Task[None]) -> None:
    if task.cancelled():
        conn.close()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _name(sock: socket.socket) -> str:
    try:
        address: Any = sock.getsockname()
    except OSError:
        return "a closed socket"
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address) or "an unnamed socket"


# The keywords of loop.create_server that aiomsg's TCP servers pass on to bind_tcp.
_BIND_KEYWORDS = frozenset({"family", "flags", "reuse_address", "reuse_port"})


async def listen_tcp(
    factory: Callable[[], asyncio.BaseProtocol],
    host: str | Iterable[str] | None,
    port: int | None,
    *,
    backlog: int,
    ssl: _ssl.SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    sock: socket.socket | None = None,
    proxy: ProxySettings | None = None,
    **kwargs: Any,
) -> Listener | asyncio.Server:
    """A :class:`Listener` on ``host``/``port`` (or an already bound ``sock``); on
    Windows' proactor loop, which cannot watch a socket, the loop's own server.

    ``kwargs`` are those of :meth:`asyncio.loop.create_server` that choose the
    sockets: ``family``, ``flags``, ``reuse_address``, ``reuse_port``. ``proxy``:
    read a PROXY header first (see :class:`Listener`).

    Raises:
        NotImplementedError: ``proxy`` on Windows' proactor loop.
        TypeError: another keyword.
        ValueError: both ``sock`` and ``host``/``port``, or neither.
        OSError: binding failed.
    """
    loop = asyncio.get_running_loop()
    if isinstance(loop, getattr(asyncio, "ProactorEventLoop", ())):
        # Windows' proactor loop has no add_reader: its own accept loop it is.
        if proxy is not None:
            raise NotImplementedError("the PROXY protocol needs a selector loop or uvloop")
        create: Any = loop.create_server  # typeshed's overloads split host and sock
        server: asyncio.Server = await create(
            factory,
            host,
            port,
            sock=sock,
            backlog=backlog,
            ssl=ssl,
            ssl_handshake_timeout=ssl_handshake_timeout,
            **kwargs,
        )
        return server
    unknown = sorted(set(kwargs) - _BIND_KEYWORDS)
    if unknown:
        raise TypeError(
            f"unexpected keyword arguments for a server: {', '.join(unknown)} (it takes "
            f"sock, ssl and {', '.join(sorted(_BIND_KEYWORDS))} of loop.create_server)"
        )
    if sock is not None:
        if host is not None or port is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"a stream socket was expected, not {sock!r}")
        sockets = [sock]
    elif host is None and port is None:
        raise ValueError("neither host/port nor sock were given")
    else:
        sockets = await bind_tcp(host, port, **kwargs)
    return Listener(
        sockets,
        factory,
        backlog=backlog,
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        proxy=proxy,
    )


def listen_unix(
    factory: Callable[[], asyncio.BaseProtocol],
    path: str | os.PathLike[str],
    *,
    backlog: int,
    mode: int,
    ssl: _ssl.SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    proxy: ProxySettings | None = None,
) -> Listener:
    """A :class:`Listener` on a Unix socket at ``path`` (see :func:`aiomsg._unix_socket.bind_unix`
    for what happens to a file already there, and what it raises); the socket file
    gets ``mode`` and is removed when the listener closes."""
    sock, created = bind_unix(path, mode=mode, backlog=backlog)
    return Listener(
        [sock],
        factory,
        backlog=backlog,
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        on_close=created.remove,
        name=created.path,
        proxy=proxy,
    )
