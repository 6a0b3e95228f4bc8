"""The chat limits that are per-connection options, as one :class:`aiomsg.Options`."""

from __future__ import annotations

from ..options import Options
from .room import ChatLimits

__all__ = ["connection_options"]


def connection_options(limits: ChatLimits) -> Options:
    """The :class:`aiomsg.Options` every chat server gives its connections."""
    return Options(
        message_timeout=limits.message_timeout,
        idle_timeout=limits.idle_timeout,
        linger_timeout=limits.linger,
    )
