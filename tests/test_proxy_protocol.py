"""The PROXY protocol preamble parser and encoder (aiomsg.framing.proxy_protocol).

The vectors are the spec's own (HAProxy's doc/proxy-protocol.txt) and headers built
byte by byte from its layout, each fed whole, byte by byte and split at every position,
with the client's first bytes behind it in the same chunk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import re
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aiomsg
from aiomsg.framing import (
    ProxyHeader,
    ProxyHeaderParser,
    ProxyProtocolError,
    ProxySSL,
    ProxyVersion,
    crc32c,
    encode_proxy_header,
    parse_proxy_header,
)

SIG = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"  # spelled as the spec lists it
CLIENT = b"GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"  # the spec's example request


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


def v2(ver_cmd: int, fam: int, body: bytes) -> bytes:
    return SIG + bytes([ver_cmd, fam]) + len(body).to_bytes(2, "big") + body


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def port(n: int) -> bytes:
    return n.to_bytes(2, "big")


def crc32c_bitwise(data: bytes) -> int:
    """RFC 4960's CRC32C, one bit at a time: a second implementation to check the table's."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def with_crc(header: bytes, crc_value_at: int) -> bytes:
    """``header`` (its CRC32C value zeroed at ``crc_value_at``) with its checksum filled in."""
    assert header[crc_value_at : crc_value_at + 4] == b"\0\0\0\0"
    crc = crc32c_bitwise(header).to_bytes(4, "big")
    return header[:crc_value_at] + crc + header[crc_value_at + 4 :]


def h(**fields: object) -> ProxyHeader:
    base: dict[str, object] = {"version": 2, "command": "PROXY", "transport": "STREAM"}
    base.update(fields)
    return ProxyHeader(**base)  # type: ignore[arg-type]


# --- the vectors ----------------------------------------------------------------------

FFFF6 = ":".join(["ffff"] * 8)

# HAProxy's send-proxy-v2-ssl-cn with "proxy-v2-options crc32c,unique-id,authority":
# the CRC32C TLV first (HAProxy writes it first), then ALPN, AUTHORITY, UNIQUE_ID, SSL.
_SSL_VALUE = (
    b"\x07"  # PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS
    + b"\x00\x00\x00\x00"  # verify: 0, the certificate was verified
    + tlv(0x21, b"TLSv1.3")
    + tlv(0x22, b"client.example.com")
    + tlv(0x23, b"TLS_AES_128_GCM_SHA256")
    + tlv(0x24, b"RSA-SHA256")
    + tlv(0x25, b"RSA2048")
)
_HAPROXY_BODY = (
    ip("203.0.113.7")
    + ip("10.0.0.2")
    + port(51234)
    + port(8443)
    + tlv(0x03, b"\0\0\0\0")
    + tlv(0x01, b"h2")
    + tlv(0x02, b"example.com")
    + tlv(0x05, b"2ba3f8c1:c8e4_0A000002:20FB_6710B2E3_0001:1A2B")
    + tlv(0x20, _SSL_VALUE)
)
HAPROXY_V2_SSL = with_crc(v2(0x21, 0x11, _HAPROXY_BODY), 16 + 12 + 3)

VECTORS: list[tuple[str, bytes, ProxyHeader]] = [
    (
        "spec v1 example",
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        h(
            version=1,
            family="AF_INET",
            source=("192.168.0.1", 56324),
            destination=("192.168.0.11", 443),
        ),
    ),
    (
        "spec v1 longest TCP4 (56 bytes)",
        b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
        h(
            version=1,
            family="AF_INET",
            source=("255.255.255.255", 65535),
            destination=("255.255.255.255", 65535),
        ),
    ),
    (
        "spec v1 longest TCP6 (104 bytes)",
        f"PROXY TCP6 {FFFF6} {FFFF6} 65535 65535\r\n".encode(),
        h(
            version=1,
            family="AF_INET6",
            source=(FFFF6, 65535),
            destination=(FFFF6, 65535),
        ),
    ),
    (
        "spec v1 UNKNOWN short form (15 bytes)",
        b"PROXY UNKNOWN\r\n",
        h(version=1, family="AF_UNSPEC", transport="UNSPEC", source=None, destination=None),
    ),
    (
        "spec v1 UNKNOWN worst case (107 bytes)",
        f"PROXY UNKNOWN {FFFF6} {FFFF6} 65535 65535\r\n".encode(),
        h(version=1, family="AF_UNSPEC", transport="UNSPEC", source=None, destination=None),
    ),
    (
        "v1 UNKNOWN: whatever precedes the CRLF is ignored",
        b"PROXY UNKNOWN \xff\x00 not an address\r\n",
        h(version=1, family="AF_UNSPEC", transport="UNSPEC", source=None, destination=None),
    ),
    (
        "v1 TCP6 compressed, upper case, with an embedded IPv4",
        b"PROXY TCP6 2001:DB8::1 ::ffff:192.0.2.1 0 80\r\n",
        h(
            version=1,
            family="AF_INET6",
            source=("2001:db8::1", 0),
            destination=(str(ipaddress.IPv6Address("::ffff:192.0.2.1")), 80),
        ),
    ),
    (
        "v2 TCP over IPv4 (0x11), HAProxy send-proxy-v2",
        v2(0x21, 0x11, ip("192.168.0.1") + ip("192.168.0.11") + port(56324) + port(443)),
        h(
            family="AF_INET",
            source=("192.168.0.1", 56324),
            destination=("192.168.0.11", 443),
        ),
    ),
    (
        "v2 UDP over IPv4 (0x12)",
        v2(0x21, 0x12, ip("10.1.2.3") + ip("10.3.2.1") + port(53) + port(5353)),
        h(
            family="AF_INET",
            transport="DGRAM",
            source=("10.1.2.3", 53),
            destination=("10.3.2.1", 5353),
        ),
    ),
    (
        "v2 TCP over IPv6 (0x21)",
        v2(0x21, 0x21, ip("2001:db8::1") + ip("2001:db8::2") + port(40000) + port(8080)),
        h(
            family="AF_INET6",
            source=("2001:db8::1", 40000),
            destination=("2001:db8::2", 8080),
        ),
    ),
    (
        "v2 UNIX stream (0x31), a path and an abstract name",
        v2(0x21, 0x31, b"/run/client.sock".ljust(108, b"\0") + b"\0srv".ljust(108, b"\0")),
        h(family="AF_UNIX", source="/run/client.sock", destination="\0srv"),
    ),
    (
        "v2 UNIX datagram (0x32), unnamed source",
        v2(0x21, 0x32, bytes(108) + b"/tmp/d".ljust(108, b"\0")),
        h(family="AF_UNIX", transport="DGRAM", source="", destination="/tmp/d"),
    ),
    (
        "v2 LOCAL health check (HAProxy check-send-proxy)",
        v2(0x20, 0x00, b""),
        h(command="LOCAL", family="AF_UNSPEC", transport="UNSPEC", source=None, destination=None),
    ),
    (
        "v2 LOCAL with addresses: the block is discarded",
        v2(0x20, 0x11, ip("1.2.3.4") + ip("5.6.7.8") + port(1) + port(2)),
        h(command="LOCAL", family="AF_INET", source=None, destination=None),
    ),
    (
        "v2 LOCAL announcing a family with a shorter block: ignored, as the spec says",
        v2(0x20, 0x21, b"\x01\x02\x03"),
        h(command="LOCAL", family="AF_INET6", source=None, destination=None),
    ),
    (
        "v2 LOCAL with a block that is not TLVs: discarded, as the spec says",
        v2(0x20, 0x00, b"\x01\x00\x09ab"),
        h(command="LOCAL", family="AF_UNSPEC", transport="UNSPEC", source=None, destination=None),
    ),
    (
        "v2 LOCAL with TLVs (HAProxy's check-send-proxy with crc32c and unique-id)",
        with_crc(v2(0x20, 0x00, tlv(0x03, bytes(4)) + tlv(0x05, b"check-1")), 16 + 3),
        h(
            command="LOCAL",
            family="AF_UNSPEC",
            transport="UNSPEC",
            source=None,
            destination=None,
            crc32c=crc32c_bitwise(v2(0x20, 0x00, tlv(0x03, bytes(4)) + tlv(0x05, b"check-1"))),
            unique_id=b"check-1",
        ),
    ),
    (
        "v2 PROXY AF_UNSPEC with bytes of no known layout: ignored",
        v2(0x21, 0x00, b"\x7f\x00\x00\x01"),
        h(family="AF_UNSPEC", transport="UNSPEC", source=None, destination=None),
    ),
    (
        "v2 PROXY AF_UNSPEC: the address information is ignored, TLVs kept",
        v2(0x21, 0x00, tlv(0xE0, b"app")),
        h(
            family="AF_UNSPEC",
            transport="UNSPEC",
            source=None,
            destination=None,
            tlvs=((0xE0, b"app"),),
        ),
    ),
    (
        "v2 AWS NLB: the VPC endpoint TLV (0xEA) kept raw, NOOP padding dropped",
        v2(
            0x21,
            0x11,
            ip("172.31.7.113")
            + ip("172.31.10.31")
            + port(43106)
            + port(9000)
            + tlv(0x04, b"\0\0\0")
            + tlv(0xEA, b"\x01vpce-08d2bf15fac5001c9")
            + tlv(0x04, b""),
        ),
        h(
            family="AF_INET",
            source=("172.31.7.113", 43106),
            destination=("172.31.10.31", 9000),
            tlvs=((0xEA, b"\x01vpce-08d2bf15fac5001c9"),),
        ),
    ),
    (
        "v2 HAProxy send-proxy-v2-ssl-cn with crc32c, unique-id, authority",
        HAPROXY_V2_SSL,
        h(
            family="AF_INET",
            source=("203.0.113.7", 51234),
            destination=("10.0.0.2", 8443),
            crc32c=int.from_bytes(HAPROXY_V2_SSL[31:35], "big"),
            alpn=b"h2",
            authority="example.com",
            unique_id=b"2ba3f8c1:c8e4_0A000002:20FB_6710B2E3_0001:1A2B",
            ssl=ProxySSL(
                client=0x07,
                verify=0,
                version="TLSv1.3",
                cn="client.example.com",
                cipher="TLS_AES_128_GCM_SHA256",
                sig_alg="RSA-SHA256",
                key_alg="RSA2048",
            ),
        ),
    ),
    (
        "v2 SSL TLV with an unknown sub-TLV and NETNS",
        v2(
            0x21,
            0x11,
            ip("1.1.1.1")
            + ip("2.2.2.2")
            + port(1)
            + port(2)
            + tlv(0x20, b"\x00\x00\x00\x00\x01" + tlv(0x2A, b"x"))
            + tlv(0x30, b"blue"),
        ),
        h(
            family="AF_INET",
            source=("1.1.1.1", 1),
            destination=("2.2.2.2", 2),
            ssl=ProxySSL(client=0, verify=1, tlvs=((0x2A, b"x"),)),
            netns="blue",
        ),
    ),
]


def vector(name: str) -> bytes:
    return next(wire for title, wire, _ in VECTORS if title.startswith(name))


def parser_for(version: str, **kwargs: int) -> ProxyHeaderParser:
    return ProxyHeaderParser(cast(ProxyVersion, version), **kwargs)


def test_the_spec_lengths() -> None:
    assert len(vector("spec v1 longest TCP4")) == 56
    assert len(vector("spec v1 longest TCP6")) == 104
    assert len(vector("spec v1 UNKNOWN short")) == 15
    assert len(vector("spec v1 UNKNOWN worst")) == 107


def feed_all(parser: ProxyHeaderParser, chunks: list[bytes]) -> ProxyHeader:
    """Feed ``chunks``; the header must come exactly with the last one."""
    for chunk in chunks[:-1]:
        assert parser.feed(chunk) is None
        assert parser.leftover == b""
    header = parser.feed(chunks[-1])
    assert header is not None
    assert parser.header is header
    assert parser.buffered == 0
    return header


# Each vector through a parser of its version and one of "any".
_RUNS = [(*v, version) for v in VECTORS for version in ("any", f"v{v[2].version}")]


@pytest.mark.parametrize(
    ("name", "wire", "expected", "version"), _RUNS, ids=[f"{r[0]}-{r[3]}" for r in _RUNS]
)
def test_vectors_whole_byte_by_byte_and_split_everywhere(
    name: str, wire: bytes, expected: ProxyHeader, version: str
) -> None:
    for client in (CLIENT, b"", b"\r\n\r\n\x00\r\nQUIT\nPROXY "):
        # Whole, with the client's first bytes in the same segment (AWS NLB does this).
        parser = parser_for(version)
        assert feed_all(parser, [wire + client]) == expected
        assert parser.leftover == client
        # Byte by byte; the last header byte arrives with the client's data.
        parser = parser_for(version)
        chunks = [wire[i : i + 1] for i in range(len(wire) - 1)] + [wire[-1:] + client]
        assert feed_all(parser, chunks) == expected
        assert parser.leftover == client
        # Split at every position, empty chunks included.
        for cut in range(len(wire)):
            parser = parser_for(version)
            assert feed_all(parser, [b"", wire[:cut], wire[cut:] + client]) == expected
            assert parser.leftover == client
    assert parse_proxy_header(wire + CLIENT) == (expected, CLIENT)


@pytest.mark.parametrize(("name", "wire", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_the_other_versions_parser_refuses_at_the_first_byte(
    name: str, wire: bytes, expected: ProxyHeader
) -> None:
    other = "v2" if expected.version == 1 else "v1"
    parser = parser_for(other)
    hint = "accepts v2 only" if other == "v2" else "accepts v1 only"
    with pytest.raises(ProxyProtocolError, match=hint):
        parser.feed(wire[:1])


def test_a_reused_buffer_does_not_change_the_header_or_the_leftover() -> None:
    wire = bytearray(vector("spec v1 example") + b"first bytes")
    parser = ProxyHeaderParser("v1")
    header = parser.feed(memoryview(wire))
    wire[:] = b"x" * len(wire)
    assert header == VECTORS[0][2]
    assert parser.leftover == b"first bytes"


def test_the_header_is_never_read_past_in_a_large_chunk() -> None:
    body = bytes(range(256)) * 256  # 64 KiB of client data behind the header
    for wire in (vector("spec v1 example"), HAPROXY_V2_SSL):
        header, rest = parse_proxy_header(wire + body)
        assert rest == body
        assert header.source is not None


def test_the_public_names() -> None:
    assert aiomsg.ProxyHeaderParser is ProxyHeaderParser
    assert aiomsg.parse_proxy_header is parse_proxy_header
    assert aiomsg.encode_proxy_header is encode_proxy_header
    assert issubclass(aiomsg.ProxyProtocolError, aiomsg.FramingError)
    assert issubclass(ProxyProtocolError, ValueError)


# --- errors, each as early as the bytes allow ----------------------------------------

_V4 = ip("1.2.3.4") + ip("5.6.7.8") + port(1) + port(2)

ERRORS: list[tuple[str, bytes, str]] = [
    # (version, bytes: the error comes with the last one, what the message says)
    ("any", b"G", "not a PROXY protocol header"),  # HTTP
    ("any", b"\x16", "not a PROXY protocol header"),  # a TLS ClientHello
    ("any", b"S", "not a PROXY protocol header"),  # SSH-2.0...
    ("v1", b"\r", "bad v1 header.*accepts v1 only"),
    ("v2", b"P", "bad v2 signature.*accepts v2 only"),
    ("v1", b"PROXX", r"bad v1 header: it starts with b'PROXX'"),
    ("v1", b"PROXY\r", "bad v1 header"),
    ("v1", b"PROXY  ", "bad v1 protocol"),
    ("v1", b"PROXY TCP5", "bad v1 protocol b'TCP5'"),
    ("v1", b"PROXY t", "bad v1 protocol b't'"),
    ("v1", b"PROXY TCP4\r", "bad v1 protocol"),
    ("v1", b"PROXY UNKNOWNX", "bad v1 protocol"),
    ("v1", b"PROXY UNKNOWN\n", "bare LF"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare LF at byte 31"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "bare CR at byte 31"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r ", "bare CR at byte 31"),
    ("v1", b"PROXY TCP4 1.2.3.x", r"bad v1 address text: byte b'x'"),
    ("v1", b"PROXY TCP6 fe80::1%", "bad v1 address text"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xc3", "bad v1 address text"),
    ("v1", b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "bad v1 source address '01.2.3.4'"),
    ("v1", b"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", "bad v1 source address"),
    ("v1", b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "bad v1 source address"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8.9 1 2\r\n", "bad v1 destination address"),
    ("v1", b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "bad v1 source address"),
    ("v1", b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "bad v1 source address.*not an IPv6"),
    ("v1", b"PROXY TCP6 ::1 1:2:3:4:5:6:7:8:9 1 2\r\n", "bad v1 destination address"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "source port 65536 is out of range"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 999999\r\n", "destination port 999999 is out of"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "bad v1 source port '080'"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 :2\r\n", "bad v1 destination port"),
    ("v1", b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "exactly one space"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "exactly one space"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "exactly one space"),
    ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "exactly one space"),
    ("v1", b"PROXY TCP4 \r\n", "exactly one space"),
    ("v1", b"PROXY UNKNOWN " + b"x" * 92, "no CRLF within 107 bytes"),  # byte 106 cannot be CR
    ("v1", b"PROXY UNKNOWN " + b"x" * 91 + b"\rx", "no CRLF within 107 bytes"),
    ("v2", SIG[:5] + b"\x01", r"bad v2 signature: byte 6 is b'\\x01'"),
    ("v2", SIG[:11] + b"\r", "bad v2 signature: byte 12"),
    ("v2", SIG + b"\x11", "bad v2 version 1"),
    ("v2", SIG + b"\x31", "bad v2 version 3"),
    ("v2", SIG + b"\x22", "unknown v2 command 0x2"),
    ("v2", SIG + b"\x2f", "unknown v2 command 0xf"),
    ("v2", SIG + b"\x21\x41", "unknown v2 address family 0x4"),
    ("v2", SIG + b"\x21\x13", "unknown v2 transport 0x3"),
    ("v2", SIG + b"\x21\x11\xff\xff", "announces 65535 bytes.*max_v2_length=2048"),
    ("v2", SIG + b"\x21\x11\x08\x01", "announces 2049 bytes"),
    ("v2", v2(0x21, 0x11, _V4[:8]), "address block has 8 bytes, AF_INET needs 12"),
    ("v2", v2(0x21, 0x21, _V4), "address block has 12 bytes, AF_INET6 needs 36"),
    ("v2", v2(0x21, 0x31, bytes(200)), "address block has 200 bytes, AF_UNIX needs 216"),
    ("v2", v2(0x21, 0x11, _V4 + b"\x01\x00"), "cut short: 2 byte"),
    ("v2", v2(0x21, 0x11, _V4 + b"\x01\x00\x0ah2"), "type 0x01 at byte 29 announces 10 bytes"),
    ("v2", v2(0x21, 0x11, _V4 + tlv(0x03, b"\0\0\0")), "CRC32C TLV has 3 bytes"),
    ("v2", v2(0x21, 0x11, _V4 + tlv(0x03, b"\0\0\0\0")), "wrong CRC32C"),
    ("v2", v2(0x21, 0x11, _V4 + tlv(0x05, bytes(129))), "UNIQUE_ID TLV has 129 bytes"),
    ("v2", v2(0x21, 0x11, _V4 + tlv(0x20, b"\x01\0\0\0")), "SSL TLV has 4 bytes"),
    ("v2", v2(0x21, 0x11, _V4 + tlv(0x20, bytes(5) + b"\x21\x00\x05TLS")), "SSL sub-TLV"),
    ("v2", v2(0x21, 0x11, _V4 + tlv(0x20, bytes(5) + tlv(0x21, b"\xff"))), "not ASCII"),
    ("v2", v2(0x21, 0x11, _V4 + tlv(0x20, bytes(5) + tlv(0x23, b"a") * 2)), "two CIPHER"),
    ("v2", v2(0x21, 0x11, _V4 + tlv(0x02, b"\xc3(")), "AUTHORITY TLV is not UTF-8"),
    ("v2", v2(0x21, 0x11, _V4 + tlv(0x30, "é".encode())), "NETNS TLV is not ASCII"),
    ("v2", v2(0x21, 0x11, _V4 + tlv(0x01, b"h2") + tlv(0x01, b"h2")), "two ALPN TLVs"),
    ("v2", v2(0x20, 0x00, tlv(0x03, b"\0\0\0\1")), "wrong CRC32C"),  # LOCAL checks it too
    ("v2", v2(0x21, 0x21, _V4 * 3 + b"\x01"), "TLV at byte 53 is cut short"),
]


def _error_id(case: tuple[str, bytes, str]) -> str:
    return f"{case[0]}-{case[1][-24:]!r}"


@pytest.mark.parametrize(("version", "wire", "match"), ERRORS, ids=map(_error_id, ERRORS))
def test_malformed_headers_fail_at_the_byte_that_shows_it(
    version: str, wire: bytes, match: str
) -> None:
    parsers = [parser_for(version)]
    if version != "any":
        parsers.append(parser_for("any"))
    for parser in parsers:
        for i in range(len(wire) - 1):  # every byte before the last could still be valid
            assert parser.feed(wire[i : i + 1]) is None
        with pytest.raises(ProxyProtocolError, match=match or "."):
            parser.feed(wire[-1:] + b"more bytes that are never looked at")
        assert parser.buffered == 0
        with pytest.raises(ProxyProtocolError, match="failed earlier"):
            parser.feed(b"x")
        with pytest.raises(ProxyProtocolError, match="failed earlier"):
            parser.feed_eof()
        if (version, wire[:1]) in (("v1", b"\r"), ("v2", b"P")):
            break  # "any" would take it as the other version
    # Whole, the same error.
    with pytest.raises(ProxyProtocolError, match=match or "."):
        parser_for(version).feed(wire)


def test_a_v2_header_announcing_65535_bytes_is_refused_at_its_16th_byte() -> None:
    parser = ProxyHeaderParser("v2")
    assert parser.feed(SIG + b"\x21\x11\xff") is None
    assert parser.buffered == 15
    with pytest.raises(ProxyProtocolError, match="announces 65535 bytes"):
        parser.feed(b"\xff")
    assert parser.buffered == 0


def test_max_v2_length_is_the_knob() -> None:
    header = encode_proxy_header(("1.2.3.4", 1), ("5.6.7.8", 2), unique_id=bytes(100))
    announced = len(header) - 16
    assert parse_proxy_header(header, max_v2_length=announced)[0].unique_id == bytes(100)
    with pytest.raises(ProxyProtocolError, match=f"announces {announced} bytes"):
        parse_proxy_header(header, max_v2_length=announced - 1)
    # The wire's own limit, when asked for: the parser holds what arrived, no more.
    parser = ProxyHeaderParser("v2", max_v2_length=65535)
    assert parser.feed(SIG + b"\x21\x11\xff\xff" + bytes(1000)) is None
    assert parser.buffered == 1016


def test_memory_is_bounded_while_a_header_arrives() -> None:
    worst_v1 = vector("spec v1 UNKNOWN worst")
    parser = ProxyHeaderParser("any")
    held = []
    for i in range(len(worst_v1)):
        parser.feed(worst_v1[i : i + 1])
        held.append(parser.buffered)
    assert max(held) == 106 and held[-1] == 0
    parser = ProxyHeaderParser("any", max_v2_length=300)
    parser.feed(SIG + b"\x21\x11\x01\x2c")
    assert parser.feed(bytes(299)) is None
    assert parser.buffered == 16 + 299


@pytest.mark.parametrize("cut", [0, 1, 5, 12, 15, 16, 20])
def test_the_connection_ending_inside_a_header_is_an_error(cut: int) -> None:
    parser = ProxyHeaderParser()
    parser.feed(HAPROXY_V2_SSL[:cut])
    message = f"ended after {cut} byte" if cut else "ended before a PROXY protocol header"
    with pytest.raises(ProxyProtocolError, match=message):
        parser.feed_eof()
    with pytest.raises(ProxyProtocolError, match="failed earlier"):
        parser.feed(HAPROXY_V2_SSL[cut:])
    with pytest.raises(ProxyProtocolError, match=f"ends inside .* after {max(cut, 1)} byte"):
        parse_proxy_header(HAPROXY_V2_SSL[: max(cut, 1)])


def test_after_the_header_the_parser_is_done() -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(b"PROXY UNKNOWN\r\nabc") is not None
    parser.feed_eof()  # a complete header, then the end: nothing wrong
    with pytest.raises(ProxyProtocolError, match="header is complete"):
        parser.feed(b"def")
    assert parser.leftover == b"abc"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"version": "v3"},
        {"version": "V1"},
        {"max_v2_length": -1},
        {"max_v2_length": 65536},
        {"max_v2_length": True},
        {"max_v2_length": 2048.0},
    ],
)
def test_bad_parser_arguments_are_value_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"version|max_v2_length"):
        ProxyHeaderParser(**kwargs)  # type: ignore[arg-type]


# --- CRC32C ---------------------------------------------------------------------------


def test_crc32c_check_values() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC catalogue's check value
    # RFC 3720, appendix B.4
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


@given(st.binary(max_size=300), st.integers(0, 300))
def test_crc32c_matches_the_bitwise_definition_and_continues(data: bytes, cut: int) -> None:
    assert crc32c(data) == crc32c_bitwise(data)
    assert crc32c(data[cut:], crc32c(data[:cut])) == crc32c(data)


def test_one_flipped_bit_breaks_the_checksum() -> None:
    for i in range(16, len(HAPROXY_V2_SSL)):  # the fixed 16 bytes are checked on their own
        if 31 <= i < 35:
            continue  # the checksum itself: also wrong, tested by the ERRORS list
        corrupt = bytearray(HAPROXY_V2_SSL)
        corrupt[i] ^= 0x01
        try:
            parse_proxy_header(bytes(corrupt))
        except ProxyProtocolError as exc:  # a length bit may break the TLVs first
            assert re.search("CRC32C|TLV|not ASCII|not UTF-8", str(exc)), exc
        else:
            raise AssertionError(f"a flipped bit at byte {i + 1} went unnoticed")


# --- the encoder and round trips --------------------------------------------------------


def test_encoded_headers_match_the_spec_layout() -> None:
    assert encode_proxy_header(("192.168.0.1", 56324), ("192.168.0.11", 443), version=1) == vector(
        "spec v1 example"
    )
    assert encode_proxy_header(version=1) == b"PROXY UNKNOWN\r\n"
    assert encode_proxy_header(("192.168.0.1", 56324), ("192.168.0.11", 443)) == vector(
        "v2 TCP over IPv4"
    )
    assert encode_proxy_header(command="LOCAL") == SIG + b"\x20\x00\x00\x00"
    assert encode_proxy_header() == SIG + b"\x21\x00\x00\x00"
    assert encode_proxy_header("/run/client.sock", "\0srv") == vector("v2 UNIX stream")
    crc = encode_proxy_header(("1.2.3.4", 1), ("5.6.7.8", 2), crc32c=True)
    assert crc == with_crc(v2(0x21, 0x11, _V4 + tlv(0x03, bytes(4))), 16 + 12 + 3)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((("1.2.3.4", 1), None), {}, "both source and destination"),
        ((("1.2.3.4", 1), ("::1", 2)), {}, "one family"),
        ((("1.2.3.4", 1), "/tmp/x"), {}, "one family"),
        ((("localhost", 1), ("1.2.3.4", 2)), {}, "not an IPv4 or IPv6 address"),
        ((("fe80::1%eth0", 1), ("fe80::2", 2)), {}, "scope ID"),
        ((("1.2.3.4", 65536), ("1.2.3.4", 2)), {}, "out of range"),
        ((("1.2.3.4", -1), ("1.2.3.4", 2)), {}, "out of range"),
        ((("1.2.3.4", 1), ("1.2.3.4", 2)), {"command": "LOCAL"}, "LOCAL header carries no"),
        ((), {"command": "LOCAL", "version": 1}, "v1 carries TCP"),
        ((("1.2.3.4", 1), ("1.2.3.4", 2)), {"version": 1, "transport": "DGRAM"}, "v1 carries"),
        (("/a", "/b"), {"version": 1}, "v1 carries TCP"),
        ((), {"version": 1, "alpn": b"h2"}, "v1 carries no TLVs"),
        ((), {"version": 1, "crc32c": True}, "v1 carries no TLVs"),
        ((), {"version": 3}, "version must be 1 or 2"),
        ((), {"command": "HEALTH"}, "command must be"),
        ((), {"transport": "UNSPEC"}, "transport must be"),
        (("/a" * 55, "/b"), {}, "over 108"),
        (("/a\0b", "/b"), {}, "a NUL may only begin"),
        (("\0", "/b"), {}, "a NUL may only begin"),
        ((), {"unique_id": bytes(129)}, "over 128"),
        ((), {"alpn": bytes(65536)}, "over 65535"),
        ((), {"alpn": bytes(40000), "authority": "a" * 40000}, "over 65535"),
        ((), {"tlvs": [(0x01, b"h2")]}, "its own keyword"),
        ((), {"tlvs": [(0x04, b"")]}, "its own keyword"),
        ((), {"tlvs": [(256, b"")]}, "one byte"),
        ((), {"netns": "é"}, "netns must be US-ASCII"),
        ((), {"ssl": ProxySSL(version="TLSv1.3é")}, "ssl.version must be US-ASCII"),
        ((), {"ssl": ProxySSL(client=256)}, "client is one byte"),
        ((), {"ssl": ProxySSL(tlvs=((0x21, b"x"),))}, "other sub-TLV types"),
    ],
)
def test_what_the_encoder_cannot_carry_is_a_value_error(
    args: tuple[object, ...], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        encode_proxy_header(*args, **kwargs)  # type: ignore[arg-type]


_ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_RAW_TLVS = st.lists(
    st.tuples(
        st.integers(0, 255).filter(lambda t: t not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x20, 0x30)),
        st.binary(max_size=40),
    ),
    max_size=3,
).map(tuple)
_PATH = st.one_of(
    st.just(""),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), min_size=1).filter(
        lambda p: len(p.encode()) <= 108
    ),
    _ASCII.filter(bool).map(lambda p: "\0" + p),
)


def _endpoints(family: str) -> st.SearchStrategy[tuple[object, object]]:
    if family == "AF_UNIX":
        return st.tuples(_PATH, _PATH)
    hosts = st.ip_addresses(v=4 if family == "AF_INET" else 6).map(str)
    endpoint = st.tuples(hosts, st.integers(0, 65535))
    return st.tuples(endpoint, endpoint)


@st.composite
def v1_headers(draw: st.DrawFn) -> tuple[ProxyHeader, bytes]:
    family = draw(st.sampled_from(["AF_INET", "AF_INET6", "AF_UNSPEC"]))
    if family == "AF_UNSPEC":
        expected = h(version=1, family=family, transport="UNSPEC", source=None, destination=None)
        return expected, encode_proxy_header(version=1)
    source, destination = draw(_endpoints(family))
    expected = h(version=1, family=family, source=source, destination=destination)
    return expected, encode_proxy_header(source, destination, version=1)  # type: ignore[arg-type]


@st.composite
def v2_headers(draw: st.DrawFn) -> tuple[ProxyHeader, bytes, bool]:
    command = draw(st.sampled_from(["PROXY", "LOCAL"]))
    family = draw(st.sampled_from(["AF_INET", "AF_INET6", "AF_UNIX", "AF_UNSPEC"]))
    transport = draw(st.sampled_from(["STREAM", "DGRAM"]))
    source = destination = None
    if command == "PROXY" and family != "AF_UNSPEC":
        source, destination = draw(_endpoints(family))
    else:
        family, transport = "AF_UNSPEC", "UNSPEC"
    ssl = draw(
        st.none()
        | st.builds(
            ProxySSL,
            client=st.integers(0, 255),
            verify=st.integers(0, 2**32 - 1),
            version=st.none() | _ASCII,
            cn=st.none() | _TEXT,
            cipher=st.none() | _ASCII,
            sig_alg=st.none() | _ASCII,
            key_alg=st.none() | _ASCII,
            tlvs=st.lists(
                st.tuples(
                    st.integers(0, 255).filter(lambda t: not 0x21 <= t <= 0x25),
                    st.binary(max_size=20),
                ),
                max_size=2,
            ).map(tuple),
        )
    )
    tlvs = {
        "alpn": draw(st.none() | st.binary(max_size=20)),
        "authority": draw(st.none() | _TEXT),
        "unique_id": draw(st.none() | st.binary(max_size=128)),
        "ssl": ssl,
        "netns": draw(st.none() | _ASCII),
        "tlvs": draw(_RAW_TLVS),
    }
    checked = draw(st.booleans())
    wire = encode_proxy_header(
        source,  # type: ignore[arg-type]
        destination,  # type: ignore[arg-type]
        command=command,  # type: ignore[arg-type]
        transport=transport if transport != "UNSPEC" else "STREAM",  # type: ignore[arg-type]
        crc32c=checked,
        **tlvs,  # type: ignore[arg-type]
    )
    expected = h(
        command=command,
        family=family,
        transport=transport,
        source=source,
        destination=destination,
        **tlvs,
    )
    return expected, wire, checked


@given(v1_headers(), st.binary(max_size=50), st.data())
def test_v1_round_trip(case: tuple[ProxyHeader, bytes], client: bytes, data: st.DataObject) -> None:
    expected, wire = case
    assert len(wire) <= 107
    cut = data.draw(st.integers(0, len(wire) - 1))
    parser = ProxyHeaderParser(data.draw(st.sampled_from(["v1", "any"])))
    assert feed_all(parser, [wire[:cut], wire[cut:] + client]) == expected
    assert parser.leftover == client


@given(v2_headers(), st.binary(max_size=50), st.data())
def test_v2_round_trip(
    case: tuple[ProxyHeader, bytes, bool], client: bytes, data: st.DataObject
) -> None:
    expected, wire, checked = case
    cut = data.draw(st.integers(0, len(wire) - 1))
    parser = ProxyHeaderParser(data.draw(st.sampled_from(["v2", "any"])), max_v2_length=65535)
    header = feed_all(parser, [wire[:cut], wire[cut:] + client])
    assert parser.leftover == client
    assert (header.crc32c is not None) == checked
    assert header == dataclasses.replace(expected, crc32c=header.crc32c)
    assert header.crc32c is None or header.crc32c == crc32c_bitwise(wire[:-4] + b"\0\0\0\0")


@given(st.binary(max_size=200))
def test_random_bytes_never_hang_nor_crash(noise: bytes) -> None:
    for version in ("v1", "v2", "any"):
        parser = parser_for(version)
        try:
            for i in range(0, len(noise), 7):
                if parser.feed(noise[i : i + 7]) is not None:
                    break
            else:
                assert parser.buffered <= max(107, 16 + 2048)
        except ProxyProtocolError:
            pass


@given(v2_headers(), st.integers(0, 10_000), st.integers(0, 255))
def test_a_corrupted_v2_header_is_refused_or_parsed_never_anything_else(
    case: tuple[ProxyHeader, bytes, bool], where: int, flip: int
) -> None:
    _, wire, _ = case
    corrupt = bytearray(wire)
    corrupt[where % len(wire)] ^= flip
    parser = ProxyHeaderParser("v2", max_v2_length=65535)
    with contextlib.suppress(ProxyProtocolError):
        header = parser.feed(bytes(corrupt))
        assert header is None or isinstance(header, ProxyHeader)


def test_the_parser_is_sans_io() -> None:
    # The framing layer's rule: no socket, no event loop, nothing that does I/O.
    import ast
    from pathlib import Path

    import aiomsg.framing.proxy_protocol as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported <= {"__future__", "collections", "dataclasses", "ipaddress", "typing"}
