"""The chat rules, shared by the three chat servers (one per I/O front).

The wire protocol is text lines (``Lines`` framing, UTF-8), so ``nc`` and
``telnet`` are clients:

* on join you are given a nickname (``guest1``...) and told how to change it;
  everyone else sees ``* guest1 joined``;
* ``/nick NAME`` renames you, ``/who`` lists who is here, ``/me ACTION`` sends
  ``* NAME ACTION``, ``/quit`` says goodbye and disconnects;
* any other line goes to everyone else as ``NAME: text``;
* lines starting with ``*`` are notices, lines starting with ``!`` are errors.

Join and leave notices are skipped while the room has more than
``announce_limit`` members (default 100).

Members' text is untrusted: terminal control characters, escape sequences and bidi
overrides in lines and ``/me`` are replaced by visible markers (``ESC`` -> ``^[``;
see :mod:`aiomsg.chat.text`) before anyone else sees them.

Misbehaving clients: invalid UTF-8 gets an error line (the client stays); an
over-long line, or a flood of lines (over ``flood_rate`` per second beyond a
burst of ``flood_burst``), gets an error line and a disconnect. A client too
slow to read what it is sent (more than ``queue_lines`` lines waiting for it)
is disconnected at once, and the others are told; a client that does not read
would not read a notice either.

The room knows nothing of sockets or event loops: each server gives it a
:class:`Member` per connection. Given a :class:`~aiomsg.chat.broker.Broker`, the
room is shared with the rooms of other server processes: lines and joins travel
through the broker, ``/who`` lists everyone, and a nickname is unique everywhere.
Guest names (``guest`` and digits) are the server's to give.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .broker import Broker, Presence
from .text import neutralise

__all__ = ["ChatLimits", "ChatRoom", "Member"]

logger = logging.getLogger("aiomsg.chat")

_NICK = re.compile(r"[A-Za-z0-9_-]{1,24}")
_GUEST = re.compile(r"guest[0-9]+(-.*)?")
HELP = "/nick NAME, /who, /me ACTION, /quit"
DEGRADED = "* the room is degraded: only people on this server see your lines for now"
WHOLE = "* the room is whole again"
SHUTDOWN = "* the server is shutting down: goodbye"


@dataclass(frozen=True)
class ChatLimits:
    """Every limit of a chat server, with safe defaults."""

    #: Longest line, in bytes, without its end; longer ones disconnect.
    max_line: int = 4096
    #: Lines that may wait for a slow client before it is disconnected.
    queue_lines: int = 1000
    #: Sustained lines per second a client may send...
    flood_rate: float = 20.0
    #: ...after a burst of this many.
    flood_burst: int = 60
    #: Seconds a server waits for a client it is disconnecting to close its side.
    linger: float = 2.0
    #: Seconds a stopping server gives its members to receive what is queued for them
    #: and the goodbye, before it resets those still not reading.
    drain: float = 10.0
    #: Seconds a line that has begun may take to end (a client that sends half a
    #: line and stalls is disconnected); ``None``: no limit.
    message_timeout: float | None = 60.0
    #: Seconds a client may send nothing before it is disconnected; ``None``
    #: (default): a quiet reader may stay as long as it likes (TCP keepalive
    #: still finds one whose machine vanished).
    idle_timeout: float | None = None
    #: Seconds a client's lines may gather before the Protocol server writes them, while
    #: lines keep coming (the first line after a quiet spell goes out at once): one
    #: write per client per interval, not one per loop iteration. ``0``: every iteration.
    #: Split over worker processes, each sees fewer lines per iteration; this keeps their
    #: writes as full as one process's.
    flush_interval: float = 0.005
    #: Join and leave notices go out only while the room has at most this many
    #: members: in a room of thousands they would be most of the traffic, and each
    #: connection would cost work for everyone (an easy amplification attack).
    announce_limit: int = 100


class Member(Protocol):
    """One connected client, as a server front presents it to the room."""

    def drained(self) -> bool:
        """Whether everything queued for it, a goodbye included, has gone out (or it is gone)."""

    def deliver(self, line: bytes) -> bool:
        """Queue ``line`` (UTF-8, without its line end) for sending; return False if the
        client's queue is full. The same bytes object goes to every member a line is
        broadcast to: keep it, do not change it."""

    def disconnect(self, notice: str | None) -> None:
        """Send ``notice`` (if any) after what is queued, then close. ``None``: reset now."""


@dataclass
class _State:
    nick: str
    tokens: float
    stamp: float
    gone: bool = False
    renaming: bool = False  # a /nick claim is on its way to the broker


@dataclass
class ChatRoom:
    """The shared chat state and rules. Not thread-safe: call it from one event loop."""

    limits: ChatLimits = field(default_factory=ChatLimits)
    clock: Callable[[], float] = time.monotonic
    #: Shares the room with other servers; ``None``: this process is the whole room.
    broker: Broker | None = None
    _members: dict[Member, _State] = field(default_factory=dict)
    # The members who have not gone, in the order they joined: built once per change
    # of membership, not once per broadcast (a line to a thousand must not first make
    # a list of a thousand). None: to be built.
    _present: list[Member] | None = field(default=None, repr=False, compare=False)
    _guests: int = 0
    _stopping: bool = False  # close_all() ran: newcomers get the goodbye, not a welcome

    # --- what the servers call ----------------------------------------------------------

    def join(self, member: Member) -> str:
        """Admit a new client; return its nickname (``""`` when the server is stopping: the
        client is told goodbye and disconnected instead, see :meth:`close_all`)."""
        if self._stopping:
            member.disconnect(SHUTDOWN)
            return ""
        nick = self.broker.guest_name() if self.broker else self._new_guest_name()
        self._members[member] = _State(nick, self.limits.flood_burst, self.clock())
        self._present = None
        self._tell(member, f"* welcome to aiomsg chat, you are {nick} ({HELP})")
        if self.broker and self.broker.degraded:
            self._tell(member, DEGRADED)
        self._announce(f"* {nick} joined", ("join", nick), but=member)
        return nick

    def receive(self, member: Member, line: bytes) -> None:
        """Handle one line from ``member`` (without its line end)."""
        state = self._members.get(member)
        if state is None or state.gone:
            return
        if self._flooding(state):
            self._expel(member, f"! flooding (over {self.limits.flood_rate:g} lines/s): goodbye")
            return
        try:
            # Untrusted: control characters, escape sequences and bidi overrides become
            # visible markers (a stray \r before the line end is dropped, as nc sends it).
            text = neutralise(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError:
            self._tell(member, "! invalid UTF-8: line ignored")
            return
        if not text.strip():
            return
        if text.startswith("/"):
            self._command(member, state, text)
        else:
            self._broadcast(f"{state.nick}: {text}", but=member)

    def line_too_long(self, member: Member) -> None:
        """``member`` sent a line over ``max_line`` bytes: error line, then disconnect."""
        self._expel(member, f"! line too long (max {self.limits.max_line} bytes): goodbye")

    def leave(self, member: Member, why: str = "") -> None:
        """``member``'s connection ended; tell the others. Safe to call twice."""
        state = self._members.pop(member, None)
        if state is not None:
            self._present = None
            self._announce(f"* {state.nick} left{why}", ("leave", state.nick))

    def close_all(self, notice: str = SHUTDOWN) -> list[Member]:
        """The server is stopping: send ``notice`` to every member here and disconnect them
        (each leaves the room). Return them, for the server to reset any that lingers.

        Clients that connect afterwards (those the kernel had queued before the server
        could accept them) get ``SHUTDOWN`` at once, from :meth:`join`."""
        self._stopping = True
        members = list(self._members)
        for member in members:
            self._remove(member, notice, "")
        return members

    def nicknames(self) -> list[str]:
        """Everyone in the room, on this server and (with a broker) on the others."""
        here = self.local_nicknames()
        if self.broker:
            here.extend(self.broker.remote_nicknames())
        return sorted(here)

    def local_nicknames(self) -> list[str]:
        """The members connected to this server."""
        return [s.nick for s in self._members.values() if not s.gone]

    def announces(self) -> bool:
        """Whether joins and leaves are announced: the room, everywhere, is small enough."""
        size = len(self._members)
        if self.broker is not None:
            size += len(self.broker.remote_nicknames())
        return size <= self.limits.announce_limit

    # --- what a broker calls -----------------------------------------------------------

    def deliver_here(self, line: str) -> None:
        """Deliver ``line`` (from a member on another server, or a notice) to every member here."""
        self._broadcast_to(self._members_present(), line)

    # --- rules ------------------------------------------------------------------------

    def _command(self, member: Member, state: _State, text: str) -> None:
        command, _, argument = text.partition(" ")
        argument = argument.strip()
        if command == "/nick":
            self._rename(member, state, argument)
        elif command == "/who":
            self._tell(member, "* online: " + ", ".join(self.nicknames()))
        elif command == "/me":
            if argument:
                self._broadcast(f"* {state.nick} {argument}", but=member)
            else:
                self._tell(member, "! usage: /me ACTION")
        elif command == "/quit":
            state.gone = True
            self._present = None
            member.disconnect("* bye")
            self.leave(member)
        else:
            self._tell(member, f"! unknown command {command} (try {HELP})")

    def _rename(self, member: Member, state: _State, nick: str) -> None:
        if not _NICK.fullmatch(nick):
            self._tell(member, "! invalid nickname: use 1-24 letters, digits, _ or -")
        elif _GUEST.fullmatch(nick):
            self._tell(member, "! guest names are given by the server: choose another")
        elif nick in self.nicknames():
            self._tell(member, f"! nickname {nick} is taken")
        elif self.broker is None:
            self._renamed(member, state, nick)
        elif self.broker.degraded:
            self._tell(member, "! nicknames cannot change while the room is degraded")
        elif state.renaming:
            self._tell(member, "! a nickname change is already on its way: wait for its answer")
        else:
            old = state.nick
            state.renaming = True

            def decided(ok: bool) -> None:
                state.renaming = False
                if self._members.get(member) is not state or state.gone or state.nick != old:
                    if ok:  # the member left (or changed) while the claim was on its way
                        self._publish(None, ("leave", nick))
                elif ok:
                    self._renamed(member, state, nick)
                else:
                    self._tell(member, f"! nickname {nick} is taken")

            self.broker.claim(old, nick, decided)

    def _renamed(self, member: Member, state: _State, nick: str) -> None:
        old, state.nick = state.nick, nick
        self._tell(member, f"* you are now {nick}")
        self._broadcast(f"* {old} is now {nick}", but=member, presence=("rename", old, nick))

    def _flooding(self, state: _State) -> bool:
        # A token bucket: flood_rate tokens a second, at most flood_burst saved up.
        now = self.clock()
        limits = self.limits
        state.tokens = min(
            limits.flood_burst, state.tokens + (now - state.stamp) * limits.flood_rate
        )
        state.stamp = now
        state.tokens -= 1
        return state.tokens < 0

    def _new_guest_name(self) -> str:
        taken = set(self.nicknames())
        while True:
            self._guests += 1
            nick = f"guest{self._guests}"
            if nick not in taken:
                return nick

    # --- delivery ------------------------------------------------------------------

    def _tell(self, member: Member, line: str) -> None:
        self._broadcast_to([member], line)

    def _broadcast(
        self, line: str, but: Member | None = None, presence: Presence | None = None
    ) -> None:
        """Deliver ``line`` to every member here but ``but``, and to the other servers."""
        self._broadcast_to(self._members_present(), line, but)
        self._publish(line, presence)

    def _publish(self, line: str | None, presence: Presence | None) -> None:
        if self.broker is not None:
            self.broker.publish(line, presence)

    def _members_present(self) -> list[Member]:
        present = self._present
        if present is None:
            present = self._present = [m for m, s in self._members.items() if not s.gone]
        return present

    def _broadcast_to(self, members: list[Member], line: str, but: Member | None = None) -> None:
        """Deliver ``line`` to each of ``members`` but ``but``; one's failure is that one's
        only. ``members`` is not changed, and may be the cached :meth:`_members_present`."""
        data = line.encode()  # once, not once per member
        slow, broken = [], []
        for member in members:
            if member is but:
                continue
            try:
                if not member.deliver(data):
                    slow.append(member)
            except Exception:  # its connection broke under it (a reset): drop it
                logger.debug("dropping a chat member whose delivery failed", exc_info=True)
                broken.append(member)
        for member in broken:
            self._remove(member, None, "")
        if slow:
            self._drop_slow(slow)

    def _announce(self, line: str, presence: Presence, but: Member | None = None) -> None:
        """A join or leave: announced while the room is small, recorded by the broker always."""
        if self.announces():
            self._broadcast(line, but, presence)
        else:
            self._publish(None, presence)

    def _drop_slow(self, members: list[Member]) -> None:
        for member in members:
            self._remove(member, None, " (too slow)")

    def _expel(self, member: Member, notice: str) -> None:
        self._remove(member, notice, "")

    def _remove(self, member: Member, notice: str | None, why: str) -> None:
        """Disconnect ``member`` (``notice`` first, or a reset for ``None``) and tell the others."""
        state = self._members.get(member)
        if state is None or state.gone:
            return
        state.gone = True
        self._present = None
        try:
            member.disconnect(notice)
        except Exception:  # already broken: leaving is all that is left to do
            logger.debug("disconnecting a chat member failed", exc_info=True)
        self.leave(member, why)
