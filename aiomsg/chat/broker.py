"""What a chat room shared between server processes needs from its broker.

A :class:`~aiomsg.chat.room.ChatRoom` on its own holds the members of one
process. Given a broker, it also hears what members on other servers say,
knows their nicknames (for ``/who`` and for refusing a taken name) and claims
nicknames so that no two members anywhere share one. The room stays
synchronous: it hands work to the broker and is called back when a claim is
decided; the broker does its I/O in its own tasks.

:class:`~aiomsg.chat.redis_broker.RedisBroker` is the implementation (Redis
publish/subscribe and a hash of nicknames); this file is the seam, so the rules
in ``room.py`` never import Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol

__all__ = ["Broker", "Presence"]

#: A change of who is in the room, published along with (or instead of) a line:
#: ``("join", nick)``, ``("leave", nick)`` or ``("rename", old, new)``.
Presence = tuple[str, ...]


class Broker(Protocol):
    """The room's view of a broker. Every method returns at once; none raises."""

    @property
    def degraded(self) -> bool:
        """True while the broker is unreachable: the room serves this server's members only."""

    def guest_name(self) -> str:
        """A guest nickname no member on any server has."""

    def publish(self, line: str | None, presence: Presence | None = None) -> None:
        """Send ``line`` (if any) to the members on other servers, and record ``presence``.

        Lines are delivered in the order they were published. While the broker
        is degraded they are dropped: the room is local until it is back.
        """

    def claim(self, old: str, new: str, done: Callable[[bool], None]) -> None:
        """Atomically take nickname ``new`` for the member called ``old``, anywhere.

        ``done(True)`` once it is this member's (``old`` is given up), ``done(False)``
        when another member has it or the broker is away.
        """

    def remote_nicknames(self) -> Collection[str]:
        """Nicknames of the members on other servers, as last heard."""
