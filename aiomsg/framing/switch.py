"""Changing framing part-way through a stream, sans-I/O: :func:`switch_decoder`.

Real protocols change shape: AMQP's 8-byte header then frames, PostgreSQL's untyped
startup then typed messages, a line of headers then a counted body. The bytes that
follow the switch may already have arrived, in the same read as the message that
announced it: they must reach the new framing untouched. Every front's
``set_framing()`` is this function.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import FramingError
from ._contract import Decoder, Framing

__all__ = ["check_tls_boundary", "chosen_framings", "switch_decoder"]


def switch_decoder(
    decoder: Decoder,
    old: Framing,
    undelivered: list[bytes],
    new: Framing,
    *,
    pure_python: bool = False,
) -> tuple[Decoder, list[bytes]]:
    """Retire ``decoder`` (of framing ``old``) and return a decoder of ``new`` that holds
    what followed the boundary, with the messages those bytes already complete.

    The boundary is after the last message the application used. ``undelivered``
    are messages ``old`` decoded behind it that the application has not used (a
    front that decodes a whole read at once has some): their exact bytes are
    rebuilt with ``old.encode`` and decoded again by ``new``, before the bytes
    ``decoder`` held (:meth:`~aiomsg.Decoder.take_leftover`).

    Raises:
        ValueError: ``undelivered`` is not empty and ``old`` cannot rebuild exact
            bytes (``Lines``: ``\\n`` or ``\\r\\n``; ``Varint``: padded lengths):
            nothing was changed, ``decoder`` is still usable. Use the messages
            first, or read the bytes before the switch with a framing that can
            (``FixedLength``).
        FramingError: those bytes break ``new``; its ``messages`` are the good
            ones before the bad bytes. ``decoder`` is retired all the same.
    """
    if undelivered and not old._reencodes():
        raise ValueError(
            f"{len(undelivered)} message(s) decoded by {old!r} have not been used yet, "
            f"and {type(old).__name__} cannot rebuild their exact bytes: use them before "
            "switching, or read the bytes before the switch raw (FixedLength, "
            "receive_exactly())"
        )
    raw = old.encode_many(undelivered) if undelivered else b""
    # After the end of the stream or a framing error the old decoder holds nothing.
    retired = decoder._finished or decoder._error is not None
    leftover = b"" if retired else decoder.take_leftover()
    successor = new.decoder(pure_python=pure_python)
    data = raw + leftover
    return successor, successor.feed(data) if data else []


def chosen_framings(
    framing: Framing | None,
    receive: Framing | None,
    send: Framing | None,
    check: Callable[[Framing], object],
) -> tuple[Framing | None, Framing | None]:
    """``set_framing()``'s arguments as (receive, send), each checked with ``check`` (the
    heartbeat's rule) before anything changes. ``None``: that direction stays."""
    receive = receive or framing
    send = send or framing
    for chosen in (receive, send):
        if chosen is not None:
            check(chosen)
    return receive, send


def check_tls_boundary(decoder: Decoder, undelivered: int) -> None:
    """Refuse to start TLS when the peer already sent something behind the boundary.

    Those bytes arrived in plaintext: taking them as TLS would make them look
    authenticated (the STARTTLS injection of RFC 3207, section 6), dropping them would
    lose data silently. ``undelivered`` counts decoded messages not yet used.

    Raises:
        FramingError: something arrived behind the boundary; close the connection.
    """
    held = decoder.buffered
    if held or undelivered:
        what = f"{undelivered} message(s) and {held} byte(s)" if undelivered else f"{held} byte(s)"
        raise FramingError(
            f"the peer sent {what} after the point where TLS starts, before the TLS "
            "handshake: plaintext that cannot be trusted as TLS nor silently dropped; "
            "close the connection"
        )
