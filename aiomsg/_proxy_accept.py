"""The PROXY protocol on a server's accept path: whom to trust, and reading the header.

Every aiomsg server with ``proxy_protocol=`` set hands each accepted socket to one
:class:`ProxyGate` before anything else happens to it:

* A peer outside ``proxy_trusted`` is closed at once, before a byte is read (one
  WARNING per address per minute: :data:`REPORT_INTERVAL`).
* At most ``max_pending`` connections wait for their header at once: a new one
  beyond it evicts (closes) the one that has waited longest, the likeliest to be
  stalling, so a flood of half-sent headers cannot lock the balancer's real
  connections out (one WARNING a minute, with a count).
* A trusted peer then has ``timeout`` seconds to send a complete, valid header;
  one that does not (garbage, a stall, a header cut short) is closed, reported
  in at most one WARNING a minute with a count and no traceback. A peer that
  closes or resets before sending a byte (a port probe, a health check that
  gave up) is not an error: DEBUG.

:func:`read_available` reads the header from the raw, non-blocking socket with
``MSG_PEEK`` and consumes only bytes that are surely the header's (see
:meth:`~aiomsg.ProxyHeaderParser.header_bytes`), so the client's first bytes (AWS
NLB sends them in the header's segment) and a TLS ClientHello stay in the socket
for the transport that takes it over: there is no leftover to hand on.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import math
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from .framing.proxy_protocol import ProxyHeader, ProxyHeaderParser, ProxyVersion

__all__ = [
    "DEFAULT_PROXY_MAX_PENDING",
    "DEFAULT_PROXY_TIMEOUT",
    "ProxyGate",
    "ProxySettings",
    "ProxyTrusted",
    "proxy_settings",
    "read_available",
]

logger = logging.getLogger("aiomsg")

#: Seconds a trusted peer has to send its whole PROXY header, by default.
DEFAULT_PROXY_TIMEOUT = 5.0
#: Connections that may wait for their header at once, by default (more are closed).
DEFAULT_PROXY_MAX_PENDING = 1024
#: Seconds between two log lines about the same kind of refusal.
REPORT_INTERVAL = 60.0
# Untrusted addresses remembered for rate-limiting their log lines.
_MAX_REMEMBERED = 4096

_Entry: TypeAlias = (
    str | ipaddress.IPv4Network | ipaddress.IPv6Network | ipaddress.IPv4Address
    | ipaddress.IPv6Address
)  # fmt: skip
#: What ``proxy_trusted=`` takes: networks (``"10.0.0.0/8"``), addresses (a /32 or
#: /128), as text or :mod:`ipaddress` objects, and ``"unix"`` (every peer of a Unix
#: socket; the socket file's permissions decide who can connect).
ProxyTrusted: TypeAlias = _Entry | Iterable[_Entry]

_Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
_ONE_ENTRY = (
    str,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
)


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """A server's validated PROXY settings (made by :func:`proxy_settings`)."""

    version: ProxyVersion
    networks: tuple[_Network, ...]
    unix: bool
    timeout: float
    max_pending: int

    def trusts(self, address: Any) -> bool:
        """Whether the peer at ``address`` (as ``accept()`` returns it) may send a header."""
        if not isinstance(address, tuple):
            return self.unix  # a Unix socket's peer: "" or a path
        try:
            ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket's IPv4 client
        return any(ip in network for network in self.networks)


def proxy_settings(
    proxy_protocol: ProxyVersion | None,
    proxy_trusted: ProxyTrusted | None,
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT,
    proxy_max_pending: int = DEFAULT_PROXY_MAX_PENDING,
    *,
    unix: bool = False,
) -> ProxySettings | None:
    """Check a server's PROXY keywords; ``None`` when ``proxy_protocol`` is ``None`` (off).

    Raises:
        ValueError: ``proxy_protocol`` is not ``"v1"``, ``"v2"`` or ``"any"``; it is
            set without ``proxy_trusted`` (or ``proxy_trusted`` without it); an entry
            of ``proxy_trusted`` is not a network, an address or ``"unix"`` (a
            network with host bits set, ``"10.0.0.1/8"``, is refused as a likely
            typo); a Unix-socket server whose list lacks ``"unix"``, or a TCP server
            whose list has only ``"unix"`` (no peer could ever be trusted);
            ``proxy_timeout`` is not a positive number of seconds or
            ``proxy_max_pending`` not a positive int.
    """
    if proxy_protocol is None:
        if proxy_trusted is not None:
            raise ValueError("proxy_trusted is set but proxy_protocol is not: set both or neither")
        return None
    if proxy_protocol not in ("v1", "v2", "any"):
        raise ValueError(
            f"proxy_protocol must be 'v1', 'v2', 'any' or None, not {proxy_protocol!r}"
        )
    if proxy_trusted is None:
        raise ValueError(
            "proxy_protocol is set without proxy_trusted: say which peers (your load "
            "balancers) may send a PROXY header, e.g. proxy_trusted=['10.0.0.0/8']"
            + (" or ['unix'] for a Unix socket" if unix else "")
        )
    entries: Iterable[Any] = (
        [proxy_trusted] if isinstance(proxy_trusted, _ONE_ENTRY) else proxy_trusted
    )
    networks: list[_Network] = []
    trust_unix = False
    for entry in entries:
        if entry == "unix":
            trust_unix = True
            continue
        if not isinstance(entry, _ONE_ENTRY):
            raise ValueError(f"proxy_trusted: {entry!r} is not a network, an address or 'unix'")
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as exc:
            raise ValueError(f"proxy_trusted: {exc}") from None
    if not networks and not trust_unix:
        raise ValueError("proxy_trusted is empty: no peer could ever send a PROXY header")
    if unix and not trust_unix:
        raise ValueError(
            "a Unix-socket server trusts its peers for PROXY headers only with 'unix' in "
            "proxy_trusted (who may connect is the socket file's permissions' business)"
        )
    if not unix and not networks:
        raise ValueError("proxy_trusted has no network: no TCP peer could ever be trusted")
    if (
        isinstance(proxy_timeout, bool)
        or not isinstance(proxy_timeout, (int, float))
        or not (proxy_timeout > 0 and math.isfinite(proxy_timeout))
    ):
        raise ValueError(
            f"proxy_timeout must be a positive number of seconds, not {proxy_timeout!r}"
        )
    if (
        isinstance(proxy_max_pending, bool)
        or not isinstance(proxy_max_pending, int)
        or proxy_max_pending < 1
    ):
        raise ValueError(f"proxy_max_pending must be a positive int, not {proxy_max_pending!r}")
    return ProxySettings(
        proxy_protocol, tuple(networks), trust_unix, float(proxy_timeout), proxy_max_pending
    )


class _Report:
    """At most one WARNING a :data:`REPORT_INTERVAL`, the later ones with a count."""

    __slots__ = ("_next", "_unreported")

    def __init__(self) -> None:
        self._next = 0.0
        self._unreported = 0

    def due(self) -> int | None:
        """Count one event; the events since the last line when a line is due, else None."""
        self._unreported += 1
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + REPORT_INTERVAL
        count, self._unreported = self._unreported, 0
        return count


class ProxyGate:
    """One server's PROXY bookkeeping: trust, the connections waiting, the log lines."""

    __slots__ = ("_crowded", "_failed", "_untrusted", "_untrusted_logged", "pending", "settings",
                 "where")  # fmt: skip

    def __init__(self, settings: ProxySettings, where: object) -> None:
        self.settings = settings
        self.where = where
        # The connections waiting for their header, oldest first: key -> how to evict it.
        self.pending: dict[object, Callable[[], object]] = {}
        self._untrusted_logged: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._untrusted = _Report()  # when too many addresses to remember each
        self._crowded = _Report()
        self._failed = _Report()

    def admit(self, address: Any) -> bool:
        """Whether to read a header from this new connection (else: close it at once)."""
        if self.settings.trusts(address):
            return True
        self._log_untrusted(address)
        return False

    def wait(self, key: object, evict: Callable[[], object]) -> None:
        """``key``'s connection now waits for its header; ``evict()`` closes it early
        (it runs when ``max_pending`` others arrive meanwhile). Call :meth:`release`
        once its header is read or it failed."""
        pending = self.pending
        if len(pending) >= self.settings.max_pending:
            oldest = next(iter(pending))
            pending.pop(oldest)()
            count = self._crowded.due()
            if count is not None:
                logger.warning(
                    "server on %s: %d connections wait for their PROXY header already; "
                    "closed %d that had waited longest (at most one line a minute)",
                    self.where, len(pending) + 1, count,
                )  # fmt: skip
        pending[key] = evict

    def release(self, key: object) -> None:
        self.pending.pop(key, None)

    def _log_untrusted(self, address: Any) -> None:
        host = str(address[0]) if isinstance(address, tuple) else "a Unix-socket peer"
        now = time.monotonic()
        last = self._untrusted_logged.get(host)
        if last is not None and now - last < REPORT_INTERVAL:
            return
        while self._untrusted_logged:
            oldest, when = next(iter(self._untrusted_logged.items()))
            if now - when < REPORT_INTERVAL and len(self._untrusted_logged) < _MAX_REMEMBERED:
                break
            del self._untrusted_logged[oldest]
        if len(self._untrusted_logged) >= _MAX_REMEMBERED:
            count = self._untrusted.due()  # too many addresses: one summary line a minute
            if count is not None:
                logger.warning(
                    "server on %s closed %d connection(s) from peers not in proxy_trusted",
                    self.where, count,
                )  # fmt: skip
            return
        self._untrusted_logged[host] = now
        self._untrusted_logged.move_to_end(host)
        logger.warning(
            "server on %s closed a connection from %s: not in proxy_trusted (a PROXY "
            "protocol server takes connections from its load balancers only; logged once "
            "a minute per address)",
            self.where, host,
        )  # fmt: skip

    def failed(self, address: Any, exc: BaseException) -> None:
        """A trusted peer did not send a valid header in time: it is being closed."""
        if isinstance(exc, (EOFError, OSError)) and not isinstance(exc, TimeoutError):
            logger.debug("connection from %r left before its PROXY header: %r", address, exc)
            return
        count = self._failed.due()
        if count is not None:
            reason = (
                f"no complete header within {self.settings.timeout:g} s"
                if isinstance(exc, TimeoutError)
                else str(exc)
            )
            logger.warning(
                "server on %s closed %d connection(s) without a valid PROXY header (at "
                "most one line a minute); the latest from %r: %s",
                self.where, count, address, reason,
            )  # fmt: skip


def read_available(sock: socket.socket, parser: ProxyHeaderParser) -> ProxyHeader | None:
    """Read what has arrived of the header from non-blocking ``sock``, never a byte more.

    Returns the header once complete, ``None`` when the socket has nothing more
    now (wait until it is readable and call again).

    Raises:
        ~aiomsg.ProxyProtocolError: the bytes are not a valid header, or the peer closed
            inside one.
        EOFError: the peer closed before sending a byte.
        OSError: the socket failed (a reset).
    """
    for _ in range(64):  # each round consumes a byte at least; a header takes two or three
        wanted = parser.wanted
        try:
            upcoming = sock.recv(wanted, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return None
        if not upcoming:
            if not parser.buffered:
                raise EOFError("the peer closed before sending a PROXY header")
            parser.feed_eof()
        taken = sock.recv(parser.header_bytes(upcoming))
        header = parser.feed(taken)
        if header is not None:
            return header
    return None
