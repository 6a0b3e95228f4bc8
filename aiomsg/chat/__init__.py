"""A chat server three ways (Streams, Protocol, anyio), its rules, and a terminal client.

The servers behave identically; each is a short, commented example of one aiomsg
front. ``python -m aiomsg chat-server --impl streams|protocol|anyio`` runs one.
"""

from .room import ChatLimits, ChatRoom, Member

__all__ = ["ChatLimits", "ChatRoom", "Member"]
