"""Framings of real protocols, each one line: ``aiomsg.recipes.postgres()`` and the rest.

Each function returns a :class:`~aiomsg.LengthField` (or
:class:`~aiomsg.LengthPrefixed`) for one protocol's frames, with ``max_size``
as its only knob; ``docs/protocols.md`` shows each on the bytes of a real
message from the protocol's specification. They frame messages only: what
is inside them, and a connection's unframed bytes (PostgreSQL's ``S``/``N``
answer to SSLRequest, AMQP's protocol header), are the application's.

Where a header starts with a type byte, the recipe keeps it: a message is the
bytes before the length field followed by the bytes after it (``strip="field"``),
so ``message[0]`` is its type and ``encode()`` writes the length for you.
"""

from __future__ import annotations

from ._contract import DEFAULT_MAX_SIZE
from .length_field import LengthField
from .length_prefixed import LengthPrefixed

__all__ = [
    "amqp",
    "dns_tcp",
    "kafka",
    "mqtt",
    "mysql",
    "postgres",
    "postgres_startup",
    "tls_record",
]

#: The largest TLS record fragment (RFC 5246 6.2.3: 2**14 plaintext + 2048 of
#: compression, MAC and padding); TLS 1.3 records are smaller (2**14 + 256).
TLS_MAX_FRAGMENT = 2**14 + 2048


def postgres(*, max_size: int = DEFAULT_MAX_SIZE) -> LengthField:
    """PostgreSQL frontend/backend messages after startup: a type byte, an int32 length that
    counts itself (not the type byte), the body.

    A message is the type byte then the body: ``b"Z\\x00\\x00\\x00\\x05I"``
    (ReadyForQuery, idle) decodes to ``b"ZI"``, and ``encode(b"Q" + sql +
    b"\\x00")`` writes a Query.
    """
    return LengthField(4, length_offset=1, length_adjustment=-4, strip="field", max_size=max_size)


def postgres_startup(*, max_size: int = 9_996) -> LengthField:
    """PostgreSQL's first message from a client (StartupMessage, SSLRequest, GSSENCRequest,
    CancelRequest): an int32 length that counts itself, no type byte.

    A message is what follows the length: the SSLRequest
    ``b"\\x00\\x00\\x00\\x08\\x04\\xd2\\x16\\x2f"`` decodes to
    ``b"\\x04\\xd2\\x16\\x2f"`` (the code 80877103). The server refuses startup
    packets over 10,000 bytes, length included (``MAX_STARTUP_PACKET_LENGTH``),
    hence the default ``max_size`` of 9,996. After it, switch to :func:`postgres`.
    """
    return LengthField(4, length_adjustment=-4, max_size=max_size)


def mysql(*, max_size: int = DEFAULT_MAX_SIZE) -> LengthField:
    """MySQL / MariaDB client/server packets: a 3-byte little-endian payload length, a
    sequence byte, the payload.

    A message is the sequence byte then the payload (``message[0]`` is the
    sequence number the reply must follow): the OK packet
    ``b"\\x07\\x00\\x00\\x02\\x00\\x00\\x00\\x02\\x00\\x00\\x00"`` decodes to
    ``b"\\x02\\x00\\x00\\x00\\x02\\x00\\x00\\x00"``. A payload of 16 MiB - 1
    bytes or more is split by the protocol into several packets; joining them
    is the application's (the largest message here is 16 MiB: sequence byte
    and a full payload).
    """
    return LengthField(3, byteorder="little", length_adjustment=1, max_size=max_size)


def mqtt(*, max_size: int = DEFAULT_MAX_SIZE) -> LengthField:
    """MQTT 3.1.1 and 5 control packets: the fixed-header byte (type and flags), the
    remaining length as a 1-4 byte varint, the rest.

    A message is the fixed-header byte then the rest: CONNACK
    ``b"\\x20\\x02\\x00\\x00"`` decodes to ``b"\\x20\\x00\\x00"``, PINGREQ
    ``b"\\xc0\\x00"`` to ``b"\\xc0"``. MQTT allows up to 256 MiB
    (268,435,455 bytes after the header); raise ``max_size`` to accept that,
    as the varint's 4-byte limit follows from it.
    """
    return LengthField("varint", length_offset=1, strip="field", max_size=max_size)


def amqp(*, max_size: int = DEFAULT_MAX_SIZE) -> LengthField:
    """AMQP 0-9-1 frames: type (1 byte), channel (2), payload size (4), payload, frame-end
    ``0xCE``.

    A message is the type, the channel then the payload (the frame-end
    checked and removed): the heartbeat
    ``b"\\x08\\x00\\x00\\x00\\x00\\x00\\x00\\xce"`` decodes to
    ``b"\\x08\\x00\\x00"``. The client's first bytes, the protocol header
    ``b"AMQP\\x00\\x00\\x09\\x01"``, are not a frame: write them raw.
    """
    return LengthField(4, length_offset=3, strip="field", trailer=b"\xce", max_size=max_size)


def tls_record(*, max_size: int = 3 + TLS_MAX_FRAGMENT) -> LengthField:
    """TLS records (SSL 3.0 to TLS 1.3): content type (1 byte), version (2), length (2),
    fragment.

    A message is the type, the version then the fragment: the fatal
    handshake_failure alert ``b"\\x15\\x03\\x03\\x00\\x02\\x02\\x28"`` decodes to
    ``b"\\x15\\x03\\x03\\x02\\x28"``. The default ``max_size`` is the largest
    record RFC 5246 allows (a fragment of 2**14 + 2048 bytes): a peer sending
    more is not speaking TLS.
    """
    return LengthField(2, length_offset=3, strip="field", max_size=max_size)


def dns_tcp(*, max_size: int = 65_535) -> LengthPrefixed:
    """DNS over TCP (RFC 1035 4.2.2, RFC 7766): each message after its 2-byte length."""
    return LengthPrefixed(2, max_size=max_size)


def kafka(*, max_size: int = DEFAULT_MAX_SIZE) -> LengthPrefixed:
    """Kafka's wire protocol: each request and response after its int32 size.

    Brokers accept requests up to ``socket.request.max.bytes`` (100 MiB by
    default) and fetch responses can be as large: raise ``max_size`` to match
    the cluster.
    """
    return LengthPrefixed(4, max_size=max_size)
