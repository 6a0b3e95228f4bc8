"""What servers publish on a room's channel, and the check of everything heard there.

The channel is untrusted input: an older or newer server during a rolling upgrade, a
debugging ``redis-cli publish``, anyone with access to Redis can put anything on it.
:func:`decode_batch` never raises: it returns the events that are valid, and says how
many were not (and why the first was not), so the reader goes on with the next message.

A message is a JSON array of events (at most :data:`MAX_PAYLOAD` bytes)::

    {"v": 1, "from": "SERVER-ID", "line": "alice: hi" | null,
     "presence": ["join", NICK] | ["here", NICK, ...] | ["leave", NICK]
                 | ["rename", OLD, NEW] | null}

``v`` is the schema version (an event without one is version 1: servers before the
field was added published exactly this shape). Fields this version does not know are
ignored, so a newer server may add some; an event of another version is skipped (the
broker logs each such version once). Anything else is invalid and dropped: a message
that is not a JSON array, an event that is not an object, a field of the wrong type or
size, a nickname that a server would not give.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_PAYLOAD", "SCHEMA_VERSION", "Batch", "Event", "decode_batch", "event"]

#: The version of the events this server publishes and understands.
SCHEMA_VERSION = 1
#: The largest message read from the channel, in bytes; larger ones are dropped unread.
MAX_PAYLOAD = 8 << 20
#: The longest server id accepted (servers use 12 hex digits).
MAX_SERVER_ID = 64
# Nicknames as servers give them: 1-24 letters, digits, _ or -; guests that joined
# while Redis was away carry a tag (guest12-5a14).
_NICK = re.compile(r"[A-Za-z0-9_-]{1,40}")
_PRESENCE_SIZES = {"join": (1, 1), "leave": (1, 1), "rename": (2, 2), "here": (1, 100_000)}


@dataclass(frozen=True)
class Event:
    """One valid event heard on the channel."""

    origin: str
    line: str | None
    presence: tuple[str, ...] | None


@dataclass
class Batch:
    """What one message from the channel held."""

    events: list[Event] = field(default_factory=list)
    #: Events (or the whole message) dropped as invalid, and why the first was.
    invalid: int = 0
    reason: str | None = None
    #: Schema versions of skipped events this server does not speak.
    versions: set[int] = field(default_factory=set)

    def drop(self, reason: str) -> None:
        self.invalid += 1
        if self.reason is None:
            self.reason = reason


def event(origin: str, line: str | None, presence: Sequence[str] | None) -> dict[str, Any]:
    """The event a server publishes (as JSON, in an array of events)."""
    return {"v": SCHEMA_VERSION, "from": origin, "line": line, "presence": presence}


def decode_batch(data: object, max_line: int) -> Batch:
    """Check one message heard on the channel; never raises.

    ``max_line``: the longest line accepted, in characters.
    """
    batch = Batch()
    if not isinstance(data, (bytes, str)):
        batch.drop(f"a message of type {type(data).__name__}")
        return batch
    if len(data) > MAX_PAYLOAD:
        batch.drop(f"a message of {len(data)} bytes (the limit is {MAX_PAYLOAD})")
        return batch
    try:
        events = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, bad UTF-8, too deep, a huge number
        batch.drop("a message that is not JSON")
        return batch
    if not isinstance(events, list):
        batch.drop(f"a JSON {type(events).__name__}, not an array of events")
        return batch
    for item in events:
        _check(item, max_line, batch)
    return batch


def _check(item: object, max_line: int, batch: Batch) -> None:
    if not isinstance(item, dict):
        batch.drop(f"an event that is a JSON {type(item).__name__}, not an object")
        return
    version = item.get("v", 1)
    if type(version) is not int or version < 1:
        batch.drop(f"an event with schema version {version!r}")
        return
    if version != SCHEMA_VERSION:
        batch.versions.add(version)
        return
    origin = item.get("from")
    if not isinstance(origin, str) or not 0 < len(origin) <= MAX_SERVER_ID:
        batch.drop("an event without a valid 'from'")
        return
    line = item.get("line")
    if line is not None and (not isinstance(line, str) or len(line) > max_line):
        batch.drop("an event whose 'line' is not a string of a valid length")
        return
    presence = item.get("presence")
    if presence is not None:
        presence = _presence(presence)
        if presence is None:
            batch.drop("an event whose 'presence' is not valid")
            return
    batch.events.append(Event(origin, line, presence))


def _presence(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        return None
    kind, *nicks = value
    sizes = _PRESENCE_SIZES.get(kind)
    if sizes is None or not sizes[0] <= len(nicks) <= sizes[1]:
        return None
    if not all(isinstance(nick, str) and _NICK.fullmatch(nick) for nick in nicks):
        return None
    return (kind, *nicks)
