"""Send one message to many connections at once: :func:`broadcast`."""

from __future__ import annotations

from collections.abc import Iterable

from ..framing import Buffer, Framing
from .connection import Connection

__all__ = ["broadcast"]


def broadcast(connections: Iterable[Connection], message: Buffer) -> int:
    """Queue ``message`` on every connection that can take it now; return how many took it.

    It never waits: awaiting ``send()`` on each connection in turn would let one
    slow peer hold up all the others. The message is encoded once per framing.
    Skipped, and not counted: connections that are closed or closing, and those
    whose peer is not keeping up (unsent output over the connection's
    high-water mark), so that a peer that stops reading cannot grow the
    sender's memory. Deal with those as your application needs (a chat server
    drops them). No exception is raised for a connection that breaks.

    Raises:
        MessageTooLarge, FramingError: a framing cannot carry ``message``;
            nothing was sent on any connection.
    """
    connections = list(connections)
    wire: dict[Framing, bytes] = {}
    for conn in connections:  # encode first: refuse before anything is sent
        if conn.send_framing not in wire:
            wire[conn.send_framing] = conn.send_framing.encode(message)
    sent = 0
    for conn in connections:
        transport = conn.transport
        if transport is None or conn.is_closing():
            continue
        if transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
            continue
        transport.write(wire[conn.send_framing])
        sent += 1
    return sent
