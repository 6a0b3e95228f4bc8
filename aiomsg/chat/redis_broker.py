"""A chat room shared by server processes through Redis (``--broker redis://HOST:PORT/DB``).

Every server subscribes to one channel per room and publishes there what its
own members say; what it hears from the others it delivers to its members.
One connection publishes, in order, so each sender's lines stay in order
everywhere. What Redis holds, under ``aiomsg:chat:ROOM:``:

``nicks``
    a hash, nickname -> id of the server its member is on. ``HSETNX`` makes a
    ``/nick`` claim atomic across servers.
``guests``
    a counter; servers take guest numbers from it in blocks.
``servers``, ``alive:ID``
    the set of servers, and each one's heartbeat key, which expires unless its
    server refreshes it. A server whose key expired is presumed dead: the first
    other server to remove it from ``servers`` (an atomic ``SREM``) removes its
    members from ``nicks`` and announces that they left, once.
``events`` (channel)
    batches of ``{"v": 1, "from": ID, "line": ..., "presence": [...]}``; what is
    heard there is checked before use (:mod:`aiomsg.chat.broker_events`): an invalid
    message is dropped and counted (one log line a minute at most), never fatal.

When Redis goes away the room goes on with this server's members only: one
log line, one notice to each client, reconnection with exponential back-off and
jitter. On return the server registers its members again (Redis may have
restarted empty) and tells its clients the room is whole. The same happens if the
session fails for any other reason (a bug included): the room is degraded, not split
in silence. The URL's password is never printed (:func:`aiomsg._redact.redact_url`).

Needs the ``redis`` package (``pip install 'aiomsg-framing[redis]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as redis
from redis.exceptions import AuthenticationError, RedisError

from aiomsg._redact import redact_url

from .broker import Presence
from .broker_events import SCHEMA_VERSION, Event, decode_batch, event
from .room import DEGRADED, WHOLE, ChatRoom
from .text import neutralise

__all__ = ["RedisBroker"]

logger = logging.getLogger("aiomsg.chat")

#: Guest numbers taken from Redis at a time, and the stock below which more are taken.
GUEST_BLOCK = 100
GUEST_LOW = 20
#: Messages from Redis delivered together at most.
MAX_BATCH = 256
#: Events published in one message at most, and the line characters it carries at most
#: (past either, the next events go in another message: receivers bound what they read).
PUBLISH_EVENTS = 256
PUBLISH_CHARS = 1 << 20
#: Seconds between two log lines about invalid messages on the channel (with a count).
DROP_REPORT_INTERVAL = 60.0
#: Unknown schema versions logged once each, at most this many (then only counted).
MAX_VERSIONS_LOGGED = 8

# Delete the nicknames a server holds; return them. Atomic: a nickname another
# server claims meanwhile is not touched.
_RELEASE_ALL = """
local gone = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    table.insert(gone, all[i])
  end
end
return gone
"""
# Delete one nickname if this server holds it.
_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
# Claim ARGV[2] for the member called ARGV[1] on server ARGV[3]: 1 if it is now theirs.
_CLAIM = """
if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 1 then
  if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[3] then
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
  return 1
end
return 0
"""
# Raise the guest counter past every guest number in use (Redis may have restarted
# empty while the servers' guests kept their names): past ARGV[1], this server's
# highest, and past every guestN in the nicknames; then take a block of ARGV[2].
_SEED = """
local highest = tonumber(ARGV[1])
for _, nick in ipairs(redis.call('HKEYS', KEYS[2])) do
  local n = tonumber(string.match(nick, '^guest(%d+)$'))
  if n and n > highest then highest = n end
end
if tonumber(redis.call('GET', KEYS[1]) or '0') < highest then
  redis.call('SET', KEYS[1], highest)
end
return redis.call('INCRBY', KEYS[1], ARGV[2])
"""


class BrokerLost(Exception):
    """The session with Redis must start again (it fell behind, or Redis forgot us)."""


class _Drops:
    """Invalid messages heard on the channel: counted, logged at most once per interval."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.interval = interval
        self.clock = clock
        self.count = 0
        self.total = 0
        self.reason: str | None = None
        self.next_report = -float("inf")

    def add(self, count: int, reason: str | None) -> None:
        self.count += count
        self.total += count
        self.reason = self.reason or reason
        self.report()

    def report(self) -> None:
        """Log the count, if there is one and the last report is old enough."""
        now = self.clock()
        if self.count and now >= self.next_report:
            logger.warning(
                "chat broker: dropped %d invalid event(s) heard on the room's channel "
                "(the first: %s); at most one such line every %g s",
                self.count,
                self.reason,
                self.interval,
            )
            self.count, self.reason = 0, None
            self.next_report = now + self.interval


class RedisBroker:
    """Share ``room`` with every server that uses the same Redis and room name.

    ``await broker.start()`` before serving (it returns after the first attempt
    to reach Redis, successful or not: the server serves either way), and
    ``await broker.aclose()`` after the server stopped (it gives up this server's
    members and says goodbye). ``heartbeat`` seconds: how often this server says
    it is alive; one that stays silent for ``3 * heartbeat`` is presumed dead and
    its members leave the room for everyone within ``4 * heartbeat``.
    ``max_pending``: published events that may wait for Redis; beyond that the
    broker has fallen behind and starts a new session (memory stays bounded).
    """

    def __init__(
        self,
        url: str,
        room: ChatRoom,
        *,
        room_name: str = "lobby",
        heartbeat: float = 1.0,
        max_pending: int = 10_000,
        max_backoff: float = 30.0,
    ) -> None:
        self._url = url
        self._shown_url = redact_url(url)
        self._secrets = _secrets(url)
        self.room = room
        self.heartbeat = heartbeat
        self.max_pending = max_pending
        self.max_backoff = max_backoff
        self.server_id = uuid.uuid4().hex[:12]
        prefix = f"aiomsg:chat:{room_name}:"
        self._nicks_key = prefix + "nicks"
        self._guests_key = prefix + "guests"
        self._servers_key = prefix + "servers"
        self._alive_prefix = prefix + "alive:"
        self._channel = prefix + "events"
        self._degraded = True  # until the first session is up
        self._told_degraded = False
        self._remote: dict[str, str] = {}  # nickname -> server, for the members elsewhere
        self._guests: deque[int] = deque()
        self._highest_guest = 0
        self._local_guests = 0
        self._pending: deque[tuple[str, Any]] = deque()
        self._overflowed = False
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._first_attempt: asyncio.Future[None] | None = None
        self._drops = _Drops(DROP_REPORT_INTERVAL, time.monotonic)
        self._versions_logged: set[int] = set()
        # Remote lines: as long as a server's longest line, once its markers are in.
        self._max_line = max(65536, 8 * room.limits.max_line + 64)
        room.broker = self

    def __repr__(self) -> str:
        return f"RedisBroker({self._shown_url!r}, room={self._channel!r}, id={self.server_id})"

    @property
    def url(self) -> str:
        """The broker's URL with its password hidden: the one to show."""
        return self._shown_url

    @property
    def dropped(self) -> int:
        """Invalid events heard on the channel since the start, and dropped."""
        return self._drops.total

    # --- the Broker interface (called by the room) --------------------------------------

    @property
    def degraded(self) -> bool:
        return self._degraded

    def guest_name(self) -> str:
        if self._guests and not self._degraded:
            number = self._guests.popleft()
            self._highest_guest = max(self._highest_guest, number)
            if len(self._guests) < GUEST_LOW:
                self._queue("guests", None)
            return f"guest{number}"
        # Redis is away: a name no other server can give (it carries this server's id).
        self._local_guests += 1
        return f"guest{self._local_guests}-{self.server_id[:4]}"

    def publish(self, line: str | None, presence: Presence | None = None) -> None:
        if not self._degraded:
            self._queue("event", event(self.server_id, line, presence))

    def claim(self, old: str, new: str, done: Callable[[bool], None]) -> None:
        if self._degraded:
            done(False)
        else:
            self._queue("claim", (old, new, done))

    def remote_nicknames(self) -> Collection[str]:
        return self._remote.keys()

    # --- running ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the broker's task; return after its first attempt to reach Redis."""
        self._first_attempt = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(), name="aiomsg chat broker")
        await asyncio.shield(self._first_attempt)

    async def aclose(self, timeout: float = 2.0) -> None:
        """Give up this server's members in Redis, tell the others they left, and stop."""
        runner = self._runner
        if runner is not None:
            # Cancel until it ends: redis-py can swallow a cancellation that arrives
            # mid-command, and the task would then go on as if nothing happened.
            for _ in range(int(timeout / 0.05) + 1):
                runner.cancel()
                await asyncio.wait([runner], timeout=0.05)
                if runner.done():
                    break
        if self._degraded:
            return
        client = self._client()
        try:
            async with asyncio.timeout(timeout):
                gone = await client.eval(_RELEASE_ALL, 1, self._nicks_key, self.server_id)
                await self._send_events(client, [self._leave_event(n) for n in _strs(gone)])
                await client.srem(self._servers_key, self.server_id)
                await client.delete(self._alive_prefix + self.server_id)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.info(
                "chat broker: could not say goodbye to %s (%s)", self._shown_url, self._hide(exc)
            )
        finally:
            await client.aclose()

    async def _run(self) -> None:
        backoff = 0.25
        while True:
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await self._session()
            except (RedisError, OSError, TimeoutError, BrokerLost) as exc:
                self._go_degraded(exc)
            except Exception as exc:  # a bug: the room must not split in silence
                logger.error(
                    "chat broker %s: the session failed; reconnecting",
                    self._shown_url,
                    exc_info=exc,
                )
                self._go_degraded(exc)
            finally:
                if self._first_attempt is not None and not self._first_attempt.done():
                    self._first_attempt.set_result(None)
            if loop.time() - started > 10 * self.heartbeat:
                backoff = 0.25  # it was up a while: this is a new outage
            # Full jitter: servers that lost Redis together do not come back together.
            await asyncio.sleep(random.uniform(0, backoff))
            backoff = min(backoff * 2, self.max_backoff)

    def _client(self) -> redis.Redis:
        timeout = max(2.0, 3 * self.heartbeat)
        return redis.Redis.from_url(
            self._url, socket_connect_timeout=timeout, socket_timeout=timeout
        )

    async def _session(self) -> None:
        client = self._client()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            self._whole()  # from here on, what the room publishes is queued for Redis
            await self._rejoin(client)
            if self._first_attempt is not None and not self._first_attempt.done():
                self._first_attempt.set_result(None)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._listen(pubsub))
                tg.create_task(self._publish_pending(client))
                tg.create_task(self._keep_alive(client))
        except BaseExceptionGroup as group:  # one failed: the others were cancelled
            raise _first_cause(group) from None
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _rejoin(self, client: redis.Redis) -> None:
        """Register this server and its members (again), take guest numbers, learn who is where."""
        local = self.room.local_nicknames()
        pipe = client.pipeline(transaction=False)
        pipe.set(self._alive_prefix + self.server_id, 1, px=int(3000 * self.heartbeat))
        pipe.sadd(self._servers_key, self.server_id)
        if local:
            pipe.hset(self._nicks_key, mapping={nick: self.server_id for nick in local})
        self._guests.clear()  # numbers taken before: Redis may have given them out again
        pipe.eval(_SEED, 2, self._guests_key, self._nicks_key, self._highest_guest, GUEST_BLOCK)
        pipe.hgetall(self._nicks_key)
        *_, last, everyone = await pipe.execute()
        self._add_guests(int(last))
        self._remote = {
            nick: server for nick, server in _str_pairs(everyone) if server != self.server_id
        }
        if local:  # silent: the others learn where these members are, nobody is announced
            await self._send_events(client, [event(self.server_id, None, ["here", *local])])

    # --- the session's three tasks -----------------------------------------------------

    async def _listen(self, pubsub: Any) -> None:
        while True:
            # A bounded wait: the connection's socket_timeout would count a quiet channel
            # as a dead Redis.
            batch = [await pubsub.get_message(timeout=self.heartbeat)]
            # Then whatever else has arrived, delivered together: the servers write each
            # client's waiting lines once per loop iteration, so a line delivered alone
            # would cost every client a write of its own.
            while batch[-1] is not None and len(batch) < MAX_BATCH:
                batch.append(await pubsub.get_message(timeout=0))
            for message in batch:
                if message is not None and message.get("type") == "message":
                    self._received(message["data"])

    def _received(self, data: object) -> None:
        """Apply what one message from the channel holds; never raises (see the module
        :mod:`~aiomsg.chat.broker_events`): the reader must outlive any payload."""
        batch = decode_batch(data, self._max_line)
        invalid, reason = batch.invalid, batch.reason
        for heard in batch.events:
            if heard.origin == self.server_id:
                continue
            try:
                self._apply(heard)
            except Exception:  # a bug, not the payload's fault: the next one still counts
                logger.debug("chat broker: applying an event failed", exc_info=True)
                invalid += 1
                reason = reason or "an event this server failed to apply"
        for version in sorted(batch.versions):
            if version in self._versions_logged:
                continue
            if len(self._versions_logged) < MAX_VERSIONS_LOGGED:
                self._versions_logged.add(version)
                logger.warning(
                    "chat broker: skipping events of schema version %d (this server speaks "
                    "version %d): a server of another version shares the room",
                    version,
                    SCHEMA_VERSION,
                )
            else:
                invalid += 1
                reason = reason or f"an event of schema version {version}"
        if invalid:
            self._drops.add(invalid, reason)

    def _apply(self, heard: Event) -> None:
        if heard.presence:
            kind, *nicks = heard.presence
            if kind in ("join", "here"):
                for nick in nicks:
                    self._remote[nick] = heard.origin
            elif kind == "leave":
                self._remote.pop(nicks[0], None)
            elif kind == "rename":
                self._remote.pop(nicks[0], None)
                self._remote[nicks[1]] = heard.origin
        if heard.line:
            self.room.deliver_here(neutralise(heard.line))

    async def _publish_pending(self, client: redis.Redis) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._overflowed:
                raise BrokerLost(f"Redis fell behind (over {self.max_pending} events waiting)")
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                await self._execute(client, batch)

    async def _execute(self, client: redis.Redis, batch: list[tuple[str, Any]]) -> None:
        """Run ``batch`` in one round trip, in order (consecutive events in one PUBLISH)."""
        pipe = client.pipeline(transaction=False)
        callbacks: list[Callable[[Any], None] | None] = []
        events: list[dict[str, Any]] = []

        chars = 0

        def flush_events() -> None:
            nonlocal chars
            if events:
                pipe.publish(self._channel, json.dumps(events))
                callbacks.append(None)
                events.clear()
                chars = 0

        for kind, item in batch:
            if kind == "event":
                if len(events) >= PUBLISH_EVENTS or chars > PUBLISH_CHARS:
                    flush_events()  # receivers bound what they read: stay well below
                events.append(item)
                chars += len(item["line"] or "")
                presence = item["presence"]
                if presence is None:
                    continue
                if presence[0] == "join":
                    pipe.hset(self._nicks_key, presence[1], self.server_id)
                    callbacks.append(None)
                elif presence[0] == "leave":
                    pipe.eval(_RELEASE, 1, self._nicks_key, presence[1], self.server_id)
                    callbacks.append(None)
                # a rename was claimed before it was published
                continue
            flush_events()
            if kind == "claim":
                old, new, done = item
                pipe.eval(_CLAIM, 1, self._nicks_key, old, new, self.server_id)
                callbacks.append(_claimed(done))
            elif kind == "guests":
                pipe.incrby(self._guests_key, GUEST_BLOCK)
                callbacks.append(lambda result: self._add_guests(int(result)))
        flush_events()
        try:
            results = await pipe.execute()
        except BaseException:
            for kind, item in batch:  # nobody waits for an answer forever
                if kind == "claim":
                    item[2](False)
            raise
        for callback, result in zip(callbacks, results, strict=True):
            if callback is not None:
                callback(result)

    async def _keep_alive(self, client: redis.Redis) -> None:
        """Say this server is alive; remove the servers that stopped saying so."""
        while True:
            await asyncio.sleep(self.heartbeat)
            self._drops.report()  # the count of the last minute, if any
            pipe = client.pipeline(transaction=False)
            pipe.set(self._alive_prefix + self.server_id, 1, px=int(3000 * self.heartbeat))
            pipe.sadd(self._servers_key, self.server_id)
            pipe.smembers(self._servers_key)
            _, added, servers = await pipe.execute()
            if added:  # Redis forgot us (a restart, or we were presumed dead): start over
                raise BrokerLost("Redis no longer knew this server")
            others = [s for s in _strs(servers) if s != self.server_id]
            if not others:
                continue
            alive = await client.exists(*(self._alive_prefix + s for s in others))
            if alive < len(others):
                for server in others:
                    if not await client.exists(self._alive_prefix + server):
                        await self._reap(client, server)

    async def _reap(self, client: redis.Redis, server: str) -> None:
        if not await client.srem(self._servers_key, server):
            return  # another server reaped it first: it announces the leaves
        gone = _strs(await client.eval(_RELEASE_ALL, 1, self._nicks_key, server))
        logger.info("chat broker: server %s is gone; %d member(s) left with it", server, len(gone))
        events = [self._leave_event(nick, " (server lost)") for nick in gone]
        for leave in events:  # we do not hear our own publications
            self._apply(Event(server, leave["line"], tuple(leave["presence"])))
        await self._send_events(client, events)

    # --- helpers ----------------------------------------------------------------------

    def _leave_event(self, nick: str, why: str = "") -> dict[str, Any]:
        line = f"* {nick} left{why}" if self.room.announces() else None
        return event(self.server_id, line, ["leave", nick])

    async def _send_events(self, client: redis.Redis, events: list[dict[str, Any]]) -> None:
        if events:
            await client.publish(self._channel, json.dumps(events))

    def _queue(self, kind: str, item: Any) -> None:
        if self._overflowed:
            return
        if len(self._pending) >= self.max_pending:
            # Redis cannot keep up: rather than grow, the session ends (the publisher
            # raises) and a new one registers everyone again.
            self._overflowed = True
        else:
            self._pending.append((kind, item))
        self._wakeup.set()

    def _add_guests(self, last: int) -> None:
        self._guests.extend(range(last - GUEST_BLOCK + 1, last + 1))

    def _go_degraded(self, exc: BaseException) -> None:
        self._degraded = True
        pending, self._pending = self._pending, deque()
        self._overflowed = False
        for kind, item in pending:  # nobody waits for an answer forever
            if kind == "claim":
                item[2](False)
        self._remote.clear()  # whoever is elsewhere is out of reach now
        if self._told_degraded:
            return
        self._told_degraded = True
        logger.warning(
            "chat broker %s %s: the room goes on with this server's members; reconnecting",
            self._shown_url,
            self._why(exc),
        )
        self.room.deliver_here(DEGRADED)

    def _whole(self) -> None:
        was_degraded = self._told_degraded
        self._degraded = False
        self._told_degraded = False
        if was_degraded:
            logger.warning("chat broker %s is back: the room is whole again", self._shown_url)
            self.room.deliver_here(WHOLE)

    def _hide(self, exc: BaseException) -> str:
        """``exc`` as text, without the URL's password (should a library quote it)."""
        text = str(exc) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _why(self, exc: BaseException) -> str:
        """Why the session ended, in words, for the one log line of an outage."""
        if isinstance(exc, AuthenticationError):
            why = self._hide(exc).rstrip(".")
            return f"refused this server's login ({why}; check the user and password in the URL)"
        if isinstance(exc, BrokerLost):
            return f"lost ({self._hide(exc)})"
        if isinstance(exc.__cause__ or exc.__context__, ssl.SSLError) or "[SSL" in str(exc):
            why = self._hide(exc).rstrip(".")
            return f"failed the TLS handshake ({why}; check the CA file: ssl_ca_certs= in the URL)"
        if isinstance(exc, (RedisError, OSError, TimeoutError)):
            return f"unreachable ({self._hide(exc)})"
        return f"failed ({type(exc).__name__}: {self._hide(exc)})"


def _secrets(url: str) -> list[str]:
    """The password of ``url`` (userinfo or ``password=`` query), as written and unquoted."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        passwords = [parts.password or "", *parse_qs(parts.query).get("password", [])]
    except ValueError:
        return found
    for password in passwords:
        for form in (password, unquote(password)):
            if form and form not in found:
                found.append(form)
    return found


def _claimed(done: Callable[[bool], None]) -> Callable[[Any], None]:
    """The callback that turns the claim script's answer into ``done(True/False)``."""
    return lambda result: done(int(result) == 1)


def _strs(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values or ()]


def _str_pairs(mapping: Any) -> list[tuple[str, str]]:
    return [
        (k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
        for k, v in (mapping or {}).items()
    ]


def _first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_cause(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
