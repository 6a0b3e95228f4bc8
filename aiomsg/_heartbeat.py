"""The opt-in application-level heartbeat, shared by every front built on :class:`MessageProtocol`.

The heartbeat is an empty message: every framing that can carry one (length
prefixes, netstrings, varints, lines, delimiters) carries it without a new
message type, and a peer with the heartbeat on swallows it. A framing that
cannot (``FixedLength``, ``TypePrefixed``, ``UntilEOF``) is refused here, before
anything connects.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .errors import FramingError
from .framing import Framing
from .limits import DEFAULT_HEARTBEAT_TIMEOUT_FACTOR

__all__ = ["HeartbeatSettings", "heartbeat_settings"]


class HeartbeatSettings(NamedTuple):
    """A checked heartbeat: send ``wire`` after ``interval`` s of sending nothing; close
    after ``timeout`` s of receiving nothing."""

    interval: float
    timeout: float
    wire: bytes


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def heartbeat_settings(
    framing: Framing, heartbeat: float | None, heartbeat_timeout: float | None
) -> HeartbeatSettings | None:
    """Check the heartbeat knobs against ``framing``; ``None`` when the heartbeat is off.

    Raises:
        ValueError: ``heartbeat_timeout`` without ``heartbeat``, a value that is
            not a positive number of seconds, or a framing that cannot carry an
            empty message (so it cannot carry the heartbeat). Pick a framing that
            can, or use ``idle_timeout`` and TCP ``keepalive`` instead.
        TypeError: a value that is not a number.
    """
    if heartbeat is None:
        if heartbeat_timeout is not None:
            raise ValueError("heartbeat_timeout needs heartbeat (the interval) as well")
        return None
    interval = _positive("heartbeat", heartbeat)
    timeout = (
        interval * DEFAULT_HEARTBEAT_TIMEOUT_FACTOR
        if heartbeat_timeout is None
        else _positive("heartbeat_timeout", heartbeat_timeout)
    )
    try:
        wire = framing.encode(b"")
        # Some framings encode b"" to nothing at all (UntilEOF): check the round trip.
        carried = framing.decoder().feed(wire) == [b""]
    except FramingError:
        carried = False
    if not carried:
        raise ValueError(
            f"{framing!r} cannot carry an empty message, which is the heartbeat: use a "
            "framing that can (LengthPrefixed, Varint, Netstring, AsciiLengthPrefixed, "
            "Lines, Delimited), or idle_timeout and keepalive instead"
        )
    return HeartbeatSettings(interval, timeout, wire)
