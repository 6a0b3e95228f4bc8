"""The PROXY protocol's preamble (HAProxy's ``send-proxy``/``send-proxy-v2``), sans-I/O.

A load balancer in TCP mode (HAProxy, nginx ``stream``, AWS NLB) connects to the server
itself, so the server sees the balancer's address. With the PROXY protocol, the
balancer writes one header before the client's first byte saying whom it relays:
version 1 is one text line (``PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\\r\\n``),
version 2 a binary block with a 12-byte signature, addresses and TLVs (ALPN, SNI, TLS
details, a unique ID, a CRC32C checksum). The spec is HAProxy's doc/proxy-protocol.txt.

:class:`ProxyHeaderParser` takes the bytes of a new connection, returns the
:class:`ProxyHeader` as soon as it is complete, and hands back what followed it,
untouched (:attr:`ProxyHeaderParser.leftover`): the client's first bytes, which AWS
NLB sends in the same segment, belong to the connection's framing. It never reads
past the header; it refuses one at the first byte that breaks a rule it can judge
there (v2's signature, version, command, family and announced length; v1's
``PROXY`` word, protocol word, characters and length), and judges v1's address text
at the CRLF, as the spec says; it holds at most 107 bytes (v1) or 16 plus
``max_v2_length`` bytes (v2).
:func:`encode_proxy_header` writes headers, for clients and tests.

The parser trusts what it reads: whether the peer may send a header at all (a
trusted balancer) is the server's decision, made before it feeds one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from ..errors import FramingError
from ._contract import Buffer

__all__ = [
    "ProxyHeader",
    "ProxyHeaderParser",
    "ProxyProtocolError",
    "ProxySSL",
    "ProxyVersion",
    "crc32c",
    "encode_proxy_header",
    "parse_proxy_header",
]

#: Which headers a parser accepts: ``"v1"`` (text), ``"v2"`` (binary) or ``"any"``
#: (either, told apart by the first byte).
ProxyVersion: TypeAlias = Literal["v1", "v2", "any"]

Family: TypeAlias = Literal["AF_UNSPEC", "AF_INET", "AF_INET6", "AF_UNIX"]
Transport: TypeAlias = Literal["UNSPEC", "STREAM", "DGRAM"]
#: An endpoint: ``(host, port)`` for IPv4/IPv6, a path for AF_UNIX.
Address: TypeAlias = "tuple[str, int] | str"

V1_MAX_LENGTH = 107  # "PROXY UNKNOWN <ipv6> <ipv6> 65535 65535\r\n", the spec's worst case
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version/command, family/transport, length
DEFAULT_MAX_V2_LENGTH = 2048

_FAMILIES: tuple[Family, ...] = ("AF_UNSPEC", "AF_INET", "AF_INET6", "AF_UNIX")
_TRANSPORTS: tuple[Transport, ...] = ("UNSPEC", "STREAM", "DGRAM")
_ADDRESS_SIZE = {"AF_UNSPEC": 0, "AF_INET": 4, "AF_INET6": 16, "AF_UNIX": 108}

# TLV types (section 2.2 of the spec).
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION = 0x21
PP2_SUBTYPE_SSL_CN = 0x22
PP2_SUBTYPE_SSL_CIPHER = 0x23
PP2_SUBTYPE_SSL_SIG_ALG = 0x24
PP2_SUBTYPE_SSL_KEY_ALG = 0x25
PP2_TYPE_NETNS = 0x30
_KNOWN_TYPES = frozenset(
    {
        PP2_TYPE_ALPN,
        PP2_TYPE_AUTHORITY,
        PP2_TYPE_CRC32C,
        PP2_TYPE_NOOP,
        PP2_TYPE_UNIQUE_ID,
        PP2_TYPE_SSL,
        PP2_TYPE_NETNS,
    }
)
_SSL_SUBTYPES = {
    PP2_SUBTYPE_SSL_VERSION: ("version", "ascii"),
    PP2_SUBTYPE_SSL_CN: ("cn", "utf-8"),
    PP2_SUBTYPE_SSL_CIPHER: ("cipher", "ascii"),
    PP2_SUBTYPE_SSL_SIG_ALG: ("sig_alg", "ascii"),
    PP2_SUBTYPE_SSL_KEY_ALG: ("key_alg", "ascii"),
}
UNIQUE_ID_MAX = 128


class ProxyProtocolError(FramingError):
    """The bytes are not a valid PROXY protocol header, or a header cannot be encoded.

    Raised by :class:`ProxyHeaderParser` (and :func:`parse_proxy_header`) as soon as
    the bytes received cannot begin a valid header: a bad signature or version, an
    unknown command or family, a v1 line without its CRLF within 107 bytes, bad
    address text, a port out of range, an address block shorter than its family
    needs, a TLV running past the header, a wrong CRC32C, a header longer than the
    parser's ``max_v2_length``; also when the connection ends inside a header. The
    message says which. The spec's rule: close the connection, and do not treat it
    as if it had no header.
    """


# --- CRC32C (Castagnoli, RFC 4960 appendix B): the stdlib's zlib has only CRC32 -----


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: Buffer, crc: int = 0) -> int:
    """The CRC32C (Castagnoli) checksum of ``data``, as PROXY v2's CRC32C TLV carries it.

    Pass the previous result as ``crc`` to go on over more data. Pure Python, table
    driven: fine for headers (a few hundred bytes), slow for megabytes.

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_checksum = crc32c  # encode_proxy_header's crc32c keyword hides the function's name


# --- the header -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxySSL:
    """The PP2_TYPE_SSL TLV: how the client reached the proxy over TLS.

    Attributes:
        client: the spec's bit field: 0x01 the client connected over TLS
            (:attr:`client_ssl`), 0x02 it sent a certificate on this connection,
            0x04 on this TLS session.
        verify: 0 when the client's certificate was presented and verified
            (:attr:`verified`), anything else otherwise.
        version: the TLS version, e.g. ``"TLSv1.3"`` (sub-TLV 0x21), or ``None``.
        cn: the Common Name of the client certificate's subject (0x22), or ``None``.
        cipher: e.g. ``"ECDHE-RSA-AES128-GCM-SHA256"`` (0x23), or ``None``.
        sig_alg: the signature algorithm of the proxy's certificate (0x24), or ``None``.
        key_alg: the key algorithm of the proxy's certificate, e.g. ``"RSA2048"``
            (0x25), or ``None``.
        tlvs: the sub-TLVs not listed above, as ``(type, value)`` in wire order.
    """

    client: int = 0x01
    verify: int = 0
    version: str | None = None
    cn: str | None = None
    cipher: str | None = None
    sig_alg: str | None = None
    key_alg: str | None = None
    tlvs: tuple[tuple[int, bytes], ...] = ()

    @property
    def client_ssl(self) -> bool:
        """The client connected to the proxy over TLS (PP2_CLIENT_SSL)."""
        return bool(self.client & 0x01)

    @property
    def cert_in_connection(self) -> bool:
        """The client sent a certificate on this connection (PP2_CLIENT_CERT_CONN)."""
        return bool(self.client & 0x02)

    @property
    def cert_in_session(self) -> bool:
        """The client sent a certificate at least once in its TLS session (PP2_CLIENT_CERT_SESS)."""
        return bool(self.client & 0x04)

    @property
    def verified(self) -> bool:
        """The client presented a certificate and the proxy verified it (``verify == 0``)."""
        return self.verify == 0


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed PROXY protocol header: whom the proxy relays.

    ``source`` and ``destination`` are ``None`` when the connection's own endpoints
    stand: a ``LOCAL`` header (the proxy's own connection, a health check), a v1
    ``UNKNOWN`` line, an ``AF_UNSPEC`` family or an ``UNSPEC`` transport. Otherwise
    they are the client's and the address it connected to: ``(host, port)`` for
    IPv4 and IPv6 (the host in its canonical text form), a path for AF_UNIX (an
    abstract socket's name starts with ``"\\0"``).

    Attributes:
        version: 1 (text) or 2 (binary).
        command: ``"PROXY"`` (relayed for a client) or ``"LOCAL"`` (v2 only).
        family: ``"AF_INET"``, ``"AF_INET6"``, ``"AF_UNIX"`` or ``"AF_UNSPEC"``
            (v1 ``UNKNOWN`` included).
        transport: ``"STREAM"``, ``"DGRAM"`` or ``"UNSPEC"``.
        source: the client's endpoint, or ``None`` (above).
        destination: the endpoint the client connected to, or ``None``.
        alpn: the ALPN protocol the client negotiated (TLV 0x01), e.g. ``b"h2"``.
        authority: the host name the client asked for, SNI with TLS (TLV 0x02).
        crc32c: the header's checksum (TLV 0x03), already checked, or ``None``.
        unique_id: the proxy's ID of the connection (TLV 0x05), at most 128 bytes.
        ssl: the TLS details (TLV 0x20), or ``None``.
        netns: the network namespace's name (TLV 0x30).
        tlvs: the TLVs not listed above (custom ones, such as AWS's 0xEA), as
            ``(type, value)`` in wire order. NOOP TLVs are dropped, as the spec says.
    """

    version: Literal[1, 2]
    command: Literal["PROXY", "LOCAL"]
    family: Family
    transport: Transport
    source: Address | None
    destination: Address | None
    alpn: bytes | None = None
    authority: str | None = None
    crc32c: int | None = None
    unique_id: bytes | None = None
    ssl: ProxySSL | None = None
    netns: str | None = None
    tlvs: tuple[tuple[int, bytes], ...] = ()


# --- the parser -------------------------------------------------------------------------

_V1_PREFIX = b"PROXY "
_V1_PROTOCOLS = (b"TCP4 ", b"TCP6 ", b"UNKNOWN ", b"UNKNOWN\r")
_V1_ADDRESS_BYTES = b"0123456789abcdefABCDEF.: \r"


class ProxyHeaderParser:
    """Read one PROXY protocol header from the start of a connection.

    Feed it the connection's bytes as they arrive, from the first one: :meth:`feed`
    returns ``None`` while the header is incomplete and the :class:`ProxyHeader`
    once it is; :attr:`leftover` then holds what followed it in the bytes fed, the
    client's first bytes, for the connection's framing. A parser reads one header
    and is then done: make one per connection.

    Args:
        version: ``"v1"``, ``"v2"`` or ``"any"`` (the first byte tells: ``P`` for v1,
            ``\\r`` for v2's signature). Accept only what your proxy sends.
        max_v2_length: the most bytes a v2 header may announce after its 16 fixed
            bytes (addresses and TLVs; the wire allows 65,535). A larger announcement
            is refused at the 16th byte, before any of it arrives. AF_UNIX addresses
            take 216 bytes, TLS details and IDs a few hundred more.

    Raises:
        ValueError: ``version`` or ``max_v2_length`` is not one of the above.
    """

    __slots__ = (
        "_buf",
        "_error",
        "_header",
        "_kind",
        "_leftover",
        "_total",
        "max_v2_length",
        "version",
    )

    def __init__(
        self, version: ProxyVersion = "any", *, max_v2_length: int = DEFAULT_MAX_V2_LENGTH
    ) -> None:
        if version not in ("v1", "v2", "any"):
            raise ValueError(f"version must be 'v1', 'v2' or 'any', not {version!r}")
        if (
            not isinstance(max_v2_length, int)
            or isinstance(max_v2_length, bool)
            or not 0 <= max_v2_length <= 0xFFFF
        ):
            raise ValueError(f"max_v2_length must be an int from 0 to 65535, not {max_v2_length!r}")
        self.version: ProxyVersion = version
        self.max_v2_length = max_v2_length
        self._kind: str | None = None if version == "any" else version
        self._buf = bytearray()
        self._total: int | None = None  # a v2 header's whole length, once its 16th byte came
        self._header: ProxyHeader | None = None
        self._leftover = b""
        self._error: str | None = None

    def __repr__(self) -> str:
        return f"ProxyHeaderParser({self.version!r}, max_v2_length={self.max_v2_length})"

    @property
    def header(self) -> ProxyHeader | None:
        """The header once :meth:`feed` returned it, else ``None``."""
        return self._header

    @property
    def leftover(self) -> bytes:
        """The bytes fed after the header, untouched (``b""`` until it is complete).

        Hand them to the connection's framing before anything read later.
        """
        return self._leftover

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete header held (0 before the first byte and once done)."""
        return len(self._buf)

    @property
    def wanted(self) -> int:
        """The most bytes the header may still take (0 once it is complete or failed).

        A reader that must not take a byte past the header (TLS starts after it, or
        another reader takes the socket over) peeks this many (``recv(wanted,
        MSG_PEEK)``), asks :meth:`header_bytes` how many of them are the header's,
        consumes exactly those and feeds them.
        """
        if self._error is not None or self._header is not None:
            return 0
        if self._kind is None:
            return max(V1_MAX_LENGTH, V2_FIXED + self.max_v2_length)
        if self._kind == "v2" and self._total is None:
            return V2_FIXED + self.max_v2_length - len(self._buf)
        return self._wanted()

    def header_bytes(self, upcoming: Buffer) -> int:
        """How many of ``upcoming``, the connection's next bytes seen without consuming
        them (``recv(n, MSG_PEEK)``), surely belong to the header.

        Consume exactly that many and :meth:`feed` them: no byte after the header is
        ever counted (v1: up to and including the first LF; v2: the 16 fixed bytes,
        then the length they announce), so the client's first bytes stay unread.
        It is at least 1 when ``upcoming`` is not empty (bytes that cannot start a
        header count as the header's: feeding them raises), so a reader that
        consumes it on every wake-up never spins. It judges nothing: :meth:`feed`
        does.

        Raises:
            ProxyProtocolError: the parser failed earlier or is done.
        """
        self._check_usable()
        view = memoryview(upcoming).cast("B")
        if not len(view):
            return 0
        have = len(self._buf)
        kind = self._kind
        if kind is None:
            kind = "v1" if view[0] == _V1_PREFIX[0] else "v2"
        if kind == "v1":
            limit = min(len(view), V1_MAX_LENGTH - have)
            lf = bytes(view[:limit]).find(b"\n")
            return lf + 1 if lf >= 0 else limit
        total = self._total
        if total is None:
            fixed = bytes(self._buf) + bytes(view[: max(V2_FIXED - have, 0)])
            if len(fixed) < V2_FIXED:
                return len(view)
            total = V2_FIXED + int.from_bytes(fixed[14:16], "big")
        return max(1, min(len(view), total - have))

    def feed(self, data: Buffer) -> ProxyHeader | None:
        """Take the next bytes of the connection; return the header once it is complete.

        ``None``: the header is not complete yet; read more and feed it. A
        :class:`ProxyHeader`: done; the bytes of ``data`` after the header are in
        :attr:`leftover`. ``data`` may be a reused buffer: nothing keeps a reference
        to it.

        Raises:
            ProxyProtocolError: the bytes cannot be a valid header (the message says
                why), as soon as they show it; or the parser failed earlier, or was
                done already (hand later bytes to the framing instead). Close the
                connection.
        """
        self._check_usable()
        view = memoryview(data).cast("B")
        pos = 0
        try:
            while True:
                need = self._wanted()
                if pos >= len(view):
                    return None
                start = len(self._buf)
                self._buf += view[pos : pos + need]
                pos += min(need, len(view) - pos)
                end = self._check(start)
                if end is not None:
                    return self._finish(end, view[pos:])
        except ProxyProtocolError as exc:
            self._fail(str(exc))
            raise

    def feed_eof(self) -> None:
        """The peer closed its side: fine once the header is complete, an error before.

        Raises:
            ProxyProtocolError: the connection ended before a complete header
                (``buffered`` says how many bytes of one came), or the parser had
                failed earlier.
        """
        if self._error is not None:
            raise ProxyProtocolError(f"PROXY header parser failed earlier: {self._error}")
        if self._header is None:
            got = len(self._buf)
            message = (
                f"the connection ended after {got} byte(s) of a PROXY protocol header"
                if got
                else "the connection ended before a PROXY protocol header"
            )
            self._fail(message)
            raise ProxyProtocolError(message)

    # --- internals ----------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._error is not None:
            raise ProxyProtocolError(f"PROXY header parser failed earlier: {self._error}")
        if self._header is not None:
            raise ProxyProtocolError(
                "the PROXY header is complete: hand later bytes to the connection's framing "
                "(after the parser's leftover)"
            )

    def _fail(self, message: str) -> None:
        self._error = message
        self._buf = bytearray()

    def _wanted(self) -> int:
        """How many more bytes the header may take at most, as far as is known."""
        have = len(self._buf)
        if self._kind is None:
            return 1
        if self._kind == "v1":
            return V1_MAX_LENGTH - have  # the line ends earlier: the rest is leftover
        if self._total is None:
            return V2_FIXED - have
        return self._total - have

    def _check(self, start: int) -> int | None:
        """Judge the bytes from ``start`` on; return where the header ends once it does."""
        buf = self._buf
        if self._kind is None:
            first = buf[0]
            if first == V2_SIGNATURE[0]:
                self._kind = "v2"
            elif first == _V1_PREFIX[0]:
                self._kind = "v1"
            else:
                raise ProxyProtocolError(
                    f"not a PROXY protocol header: it starts with {bytes(buf[:1])!r}, "
                    "not b'PROXY ' (v1) nor the v2 signature b'\\r\\n\\r\\n\\x00\\r\\nQUIT\\n'"
                )
        if self._kind == "v1":
            return self._check_v1(start)
        return self._check_v2(start)

    def _check_v1(self, start: int) -> int | None:
        buf = self._buf
        lf = buf.find(b"\n", start)
        line_end = lf if lf >= 0 else len(buf)
        # The checks below look at positions in order (prefix, protocol, addresses), so
        # the error named is the first byte that is wrong, whatever follows it.
        if start < len(_V1_PREFIX):
            got = bytes(buf[: min(line_end, len(_V1_PREFIX))])
            wrong = _mismatch(got, _V1_PREFIX)
            if wrong is not None:
                raise ProxyProtocolError(_not_v1(got[: wrong + 1], v1_only=self.version == "v1"))
        if start < 14 and line_end > len(_V1_PREFIX):
            token = bytes(buf[len(_V1_PREFIX) : min(line_end, 14)])
            fits = [_mismatch(token, p) for p in _V1_PROTOCOLS]
            if None not in fits:
                shown = token[: max(f for f in fits if f is not None) + 1]
                raise ProxyProtocolError(
                    f"bad v1 protocol {shown!r}: expected TCP4, TCP6 or UNKNOWN, each followed "
                    "by a space (UNKNOWN also by the CRLF)"
                )
        if line_end > 11 and bytes(buf[6:10]) in (b"TCP4", b"TCP6"):
            # A CR is only the start of the CRLF: anything but LF after it is an error now.
            cr = buf.find(b"\r", max(start - 1, 11), line_end)
            bare_cr = 0 <= cr < line_end - 1
            region = bytes(buf[max(start, 11) : cr if bare_cr else line_end])
            stray = region.translate(None, _V1_ADDRESS_BYTES)
            if stray:
                raise ProxyProtocolError(
                    f"bad v1 address text: byte {stray[:1]!r} cannot appear in a "
                    f"{buf[6:10].decode()} line"
                )
            if bare_cr:
                raise ProxyProtocolError(
                    f"a bare CR at byte {cr + 1} of the v1 line: it must end with CRLF"
                )
        if lf >= 0:
            if lf == 0 or buf[lf - 1] != 0x0D:
                raise ProxyProtocolError(
                    f"the v1 line ends with a bare LF at byte {lf + 1}: it must end with CRLF"
                )
            return lf + 1
        have = len(buf)
        if have >= V1_MAX_LENGTH or (have == V1_MAX_LENGTH - 1 and buf[-1] != 0x0D):
            raise ProxyProtocolError(
                f"the v1 line has no CRLF within {V1_MAX_LENGTH} bytes (the spec's longest line)"
            )
        return None

    def _check_v2(self, start: int) -> int | None:
        buf = self._buf
        for i in range(start, min(len(buf), V2_FIXED)):
            byte = buf[i]
            if i < len(V2_SIGNATURE):
                if byte != V2_SIGNATURE[i]:
                    hint = " (a v1 header? this parser accepts v2 only)" if buf[0] == 0x50 else ""
                    raise ProxyProtocolError(
                        f"bad v2 signature: byte {i + 1} is {bytes([byte])!r}, the signature "
                        f"has {V2_SIGNATURE[i : i + 1]!r}{hint}"
                    )
            elif i == 12:
                if byte >> 4 != 2:
                    raise ProxyProtocolError(
                        f"bad v2 version {byte >> 4} (byte 13 is 0x{byte:02x}): only 2 exists"
                    )
                if byte & 0x0F > 1:
                    raise ProxyProtocolError(
                        f"unknown v2 command 0x{byte & 0x0F:x}: only LOCAL (0) and PROXY (1) exist"
                    )
            elif i == 13:
                if byte >> 4 >= len(_FAMILIES):
                    raise ProxyProtocolError(
                        f"unknown v2 address family 0x{byte >> 4:x} (byte 14 is 0x{byte:02x})"
                    )
                if byte & 0x0F >= len(_TRANSPORTS):
                    raise ProxyProtocolError(
                        f"unknown v2 transport 0x{byte & 0x0F:x} (byte 14 is 0x{byte:02x})"
                    )
            elif i == 15:
                length = int.from_bytes(buf[14:16], "big")
                if length > self.max_v2_length:
                    raise ProxyProtocolError(
                        f"the v2 header announces {length} bytes after its 16, over this "
                        f"parser's max_v2_length={self.max_v2_length}"
                    )
                self._total = V2_FIXED + length
        if self._total is not None and len(buf) == self._total:
            return self._total
        return None

    def _finish(self, end: int, rest: memoryview) -> ProxyHeader:
        raw = bytes(self._buf[:end])
        header = _parse_v1(raw[:-2]) if self._kind == "v1" else _parse_v2(raw)
        self._leftover = bytes(self._buf[end:]) + bytes(rest)
        self._buf = bytearray()
        self._header = header
        return header


def _mismatch(got: bytes, expected: bytes) -> int | None:
    """The first index where ``got`` departs from ``expected`` (compared as far as both go)."""
    for i in range(min(len(got), len(expected))):
        if got[i] != expected[i]:
            return i
    return None


def _not_v1(got: bytes, *, v1_only: bool) -> str:
    hint = " (a v2 header? this parser accepts v1 only)" if v1_only and got[:1] == b"\r" else ""
    return f"bad v1 header: it starts with {got!r}, not b'PROXY '{hint}"


def parse_proxy_header(
    data: Buffer, version: ProxyVersion = "any", *, max_v2_length: int = DEFAULT_MAX_V2_LENGTH
) -> tuple[ProxyHeader, bytes]:
    """Parse a header at the start of ``data``; return it with the bytes after it.

    For bytes already all there (a test, a captured packet). On a live connection
    use a :class:`ProxyHeaderParser`, which waits for more bytes instead of failing.

    >>> header, rest = parse_proxy_header(b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\\r\\nhi")
    >>> header.source, header.destination, rest
    (('192.0.2.1', 56324), ('198.51.100.7', 443), b'hi')

    Raises:
        ProxyProtocolError: ``data`` does not start with a whole, valid header.
    """
    parser = ProxyHeaderParser(version, max_v2_length=max_v2_length)
    header = parser.feed(data)
    if header is None:
        raise ProxyProtocolError(
            f"the data ends inside a PROXY protocol header, after {parser.buffered} byte(s)"
        )
    return header, parser.leftover


# --- v1 ---------------------------------------------------------------------------------


def _parse_v1(line: bytes) -> ProxyHeader:
    """``line`` is a whole v1 line without its CRLF, whose prefix was checked."""
    if line[6:13] == b"UNKNOWN" and (len(line) == 13 or line[13:14] == b" "):
        # The spec: the receiver must ignore anything presented before the CRLF.
        return ProxyHeader(1, "PROXY", "AF_UNSPEC", "UNSPEC", None, None)
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError(f"the v1 line is not US-ASCII: {line!r}") from None
    parts = text.split(" ")
    if len(parts) != 6:
        raise ProxyProtocolError(
            f"bad v1 line {text!r}: expected 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT', "
            "fields separated by exactly one space"
        )
    _, protocol, source, destination, sport, dport = parts
    family: Family = "AF_INET" if protocol == "TCP4" else "AF_INET6"
    host = _v1_ipv4 if family == "AF_INET" else _v1_ipv6
    return ProxyHeader(
        1,
        "PROXY",
        family,
        "STREAM",
        (host(source, "source"), _v1_port(sport, "source")),
        (host(destination, "destination"), _v1_port(dport, "destination")),
    )


def _v1_ipv4(text: str, which: str) -> str:
    parts = text.split(".")
    if len(parts) != 4 or not all(
        p.isdigit() and len(p) <= 3 and (p == "0" or p[0] != "0") and int(p) <= 255 for p in parts
    ):
        raise ProxyProtocolError(
            f"bad v1 {which} address {text!r}: TCP4 needs 4 decimal numbers 0-255 joined by "
            "dots, without leading zeros"
        )
    return text


def _v1_ipv6(text: str, which: str) -> str:
    try:
        if "%" in text:  # a scope ID names an interface of the proxy's host
            raise ValueError
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise ProxyProtocolError(f"bad v1 {which} address {text!r}: not an IPv6 address") from None


def _v1_port(text: str, which: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise ProxyProtocolError(
            f"bad v1 {which} port {text!r}: a decimal number without leading zeros"
        )
    if len(text) > 5 or int(text) > 0xFFFF:
        raise ProxyProtocolError(f"v1 {which} port {text} is out of range (0-65535)")
    return int(text)


# --- v2 ---------------------------------------------------------------------------------


def _parse_v2(raw: bytes) -> ProxyHeader:
    """``raw`` is a whole v2 header whose 16 fixed bytes were checked."""
    command: Literal["PROXY", "LOCAL"] = "PROXY" if raw[12] & 0x0F else "LOCAL"
    family = _FAMILIES[raw[13] >> 4]
    transport = _TRANSPORTS[raw[13] & 0x0F]
    size = _ADDRESS_SIZE[family]
    block = 2 * size + (4 if family in ("AF_INET", "AF_INET6") else 0)
    # LOCAL must be accepted with its block discarded, family included, and AF_UNSPEC's
    # block has no known layout: there, bytes that are not TLVs are ignored (as Netty
    # does); TLVs that are well formed are still read, and a CRC32C still checked.
    lenient = command == "LOCAL" or family == "AF_UNSPEC"
    if len(raw) - V2_FIXED < block:
        if lenient:
            return ProxyHeader(2, command, family, transport, None, None)
        raise ProxyProtocolError(
            f"the v2 address block has {len(raw) - V2_FIXED} bytes, {family} needs {block}"
        )
    source: Address | None = None
    destination: Address | None = None
    if command == "PROXY" and family != "AF_UNSPEC" and transport != "UNSPEC":
        source, destination = _v2_addresses(raw[V2_FIXED : V2_FIXED + block], family)
    try:
        items = _tlv_items(raw, V2_FIXED + block, len(raw), "TLV")
    except ProxyProtocolError:
        if not lenient:
            raise
        items = []
    fields = _parse_tlvs(raw, items)
    return ProxyHeader(2, command, family, transport, source, destination, **fields)  # type: ignore[arg-type]


def _v2_addresses(block: bytes, family: Family) -> tuple[Address, Address]:
    if family == "AF_UNIX":
        return _unix_path(block[:108]), _unix_path(block[108:216])
    size = _ADDRESS_SIZE[family]
    make = ipaddress.IPv4Address if family == "AF_INET" else ipaddress.IPv6Address
    src = str(make(block[:size]))
    dst = str(make(block[size : 2 * size]))
    sport = int.from_bytes(block[2 * size : 2 * size + 2], "big")
    dport = int.from_bytes(block[2 * size + 2 : 2 * size + 4], "big")
    return (src, sport), (dst, dport)


def _unix_path(field: bytes) -> str:
    if not field.strip(b"\0"):  # an unnamed socket
        return ""
    if field[:1] == b"\0":  # Linux's abstract namespace: the name is all of it
        name = b"\0" + field[1:].rstrip(b"\0")
    else:
        name = field.split(b"\0", 1)[0]
    return name.decode("utf-8", "surrogateescape")


def _tlv_items(data: bytes, start: int, end: int, what: str) -> list[tuple[int, int, bytes]]:
    """Split ``data[start:end]`` into TLVs: ``(offset of the value, type, value)``."""
    items = []
    pos = start
    while pos < end:
        if end - pos < 3:
            raise ProxyProtocolError(
                f"a {what} at byte {pos + 1} is cut short: {end - pos} byte(s) left, a TLV "
                "takes at least 3"
            )
        kind = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 3], "big")
        if pos + 3 + length > end:
            raise ProxyProtocolError(
                f"{what} type 0x{kind:02x} at byte {pos + 1} announces {length} bytes, only "
                f"{end - pos - 3} remain in the header: it overruns the header's length"
            )
        items.append((pos + 3, kind, data[pos + 3 : pos + 3 + length]))
        pos += 3 + length
    return items


def _text(value: bytes, encoding: str, what: str) -> str:
    try:
        return value.decode(encoding)
    except UnicodeDecodeError:
        raise ProxyProtocolError(f"the {what} TLV is not {encoding.upper()}: {value!r}") from None


def _parse_tlvs(raw: bytes, items: list[tuple[int, int, bytes]]) -> dict[str, object]:
    fields: dict[str, object] = {}
    unknown: list[tuple[int, bytes]] = []

    def put(name: str, value: object) -> None:
        if name in fields:
            raise ProxyProtocolError(f"the v2 header has two {name.upper()} TLVs")
        fields[name] = value

    for offset, kind, value in items:
        if kind == PP2_TYPE_ALPN:
            put("alpn", value)
        elif kind == PP2_TYPE_AUTHORITY:
            put("authority", _text(value, "utf-8", "AUTHORITY"))
        elif kind == PP2_TYPE_CRC32C:
            if len(value) != 4:
                raise ProxyProtocolError(f"the CRC32C TLV has {len(value)} bytes, not 4")
            expected = int.from_bytes(value, "big")
            actual = crc32c(raw[:offset] + b"\0\0\0\0" + raw[offset + 4 :])
            if actual != expected:
                raise ProxyProtocolError(
                    f"wrong CRC32C: the header says 0x{expected:08x}, its bytes give "
                    f"0x{actual:08x} (corrupted on the way)"
                )
            put("crc32c", expected)
        elif kind == PP2_TYPE_NOOP:
            continue
        elif kind == PP2_TYPE_UNIQUE_ID:
            if len(value) > UNIQUE_ID_MAX:
                raise ProxyProtocolError(
                    f"the UNIQUE_ID TLV has {len(value)} bytes, over the spec's {UNIQUE_ID_MAX}"
                )
            put("unique_id", value)
        elif kind == PP2_TYPE_SSL:
            put("ssl", _parse_ssl(value))
        elif kind == PP2_TYPE_NETNS:
            put("netns", _text(value, "ascii", "NETNS"))
        else:
            unknown.append((kind, value))
    fields["tlvs"] = tuple(unknown)
    return fields


def _parse_ssl(value: bytes) -> ProxySSL:
    if len(value) < 5:
        raise ProxyProtocolError(
            f"the SSL TLV has {len(value)} bytes: it needs at least 5 (client, verify)"
        )
    fields: dict[str, str] = {}
    unknown: list[tuple[int, bytes]] = []
    for _, kind, sub in _tlv_items(value, 5, len(value), "SSL sub-TLV"):
        if kind in _SSL_SUBTYPES:
            name, encoding = _SSL_SUBTYPES[kind]
            if name in fields:
                raise ProxyProtocolError(f"the SSL TLV has two {name.upper()} sub-TLVs")
            fields[name] = _text(sub, encoding, f"SSL {name.upper()}")
        else:
            unknown.append((kind, sub))
    return ProxySSL(value[0], int.from_bytes(value[1:5], "big"), tlvs=tuple(unknown), **fields)


# --- the encoder ------------------------------------------------------------------------


def encode_proxy_header(
    source: Address | None = None,
    destination: Address | None = None,
    *,
    version: Literal[1, 2] = 2,
    command: Literal["PROXY", "LOCAL"] = "PROXY",
    transport: Literal["STREAM", "DGRAM"] = "STREAM",
    alpn: bytes | None = None,
    authority: str | None = None,
    unique_id: bytes | None = None,
    ssl: ProxySSL | None = None,
    netns: str | None = None,
    tlvs: Iterable[tuple[int, bytes]] = (),
    crc32c: bool = False,
) -> bytes:
    """The bytes of a PROXY protocol header, to write before anything else on a connection.

    ``source`` is the client's endpoint and ``destination`` the one it reached:
    ``(host, port)`` with IPv4 or IPv6 hosts (both of one family), or AF_UNIX paths
    (v2). Without them (``None``), v1 writes ``PROXY UNKNOWN`` and v2 the AF_UNSPEC
    family: the receiver keeps the connection's own endpoints. ``command="LOCAL"``
    (v2) marks the proxy's own connection (a health check) and carries no address.
    The TLV keywords (v2 only) are those of :class:`ProxyHeader`; ``tlvs`` adds raw
    ones of other types; ``crc32c=True`` appends a checksum TLV.

    >>> encode_proxy_header(("192.0.2.1", 56324), ("198.51.100.7", 443), version=1)
    b'PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\\r\\n'

    Raises:
        ValueError: what the format cannot carry: one address without the other,
            two families, a port out of range, a host that is not an IP address,
            LOCAL or DGRAM or AF_UNIX or TLVs in v1, addresses with LOCAL, a path
            over 108 bytes, a TLV over 65,535 bytes or of a type listed above, a
            header over 65,535 bytes.
    """
    if (source is None) != (destination is None):
        raise ValueError("give both source and destination, or neither")
    if command not in ("PROXY", "LOCAL"):
        raise ValueError(f"command must be 'PROXY' or 'LOCAL', not {command!r}")
    if transport not in ("STREAM", "DGRAM"):
        raise ValueError(f"transport must be 'STREAM' or 'DGRAM', not {transport!r}")
    if command == "LOCAL" and source is not None:
        raise ValueError("a LOCAL header carries no addresses (the receiver uses its own)")
    family, src, dst = _endpoints(source, destination)
    extras = (alpn, authority, unique_id, ssl, netns)
    if version == 1:
        if command == "LOCAL" or transport == "DGRAM" or family == "AF_UNIX":
            raise ValueError("v1 carries TCP over IPv4 or IPv6 only (no LOCAL, DGRAM, AF_UNIX)")
        if any(e is not None for e in extras) or tuple(tlvs) or crc32c:
            raise ValueError("v1 carries no TLVs: use version=2")
        if src is None or dst is None:
            return b"PROXY UNKNOWN\r\n"
        protocol = "TCP4" if family == "AF_INET" else "TCP6"
        return f"PROXY {protocol} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode("ascii")
    if version != 2:
        raise ValueError(f"version must be 1 or 2, not {version!r}")
    body = bytearray()
    if src is not None and dst is not None:
        body += _v2_address_block(family, src, dst)
    else:
        family = "AF_UNSPEC"
    body += _encode_tlvs(alpn, authority, unique_id, ssl, netns, tlvs)
    if crc32c:
        body += bytes([PP2_TYPE_CRC32C, 0, 4, 0, 0, 0, 0])
    if len(body) > 0xFFFF:
        raise ValueError(f"the header would be {len(body)} bytes after its 16, over 65535")
    fam = 0  # AF_UNSPEC, UNSPEC
    if family != "AF_UNSPEC":
        fam = _FAMILIES.index(family) << 4 | (1 if transport == "STREAM" else 2)
    header = bytearray(V2_SIGNATURE)
    header += bytes([0x20 | (1 if command == "PROXY" else 0), fam])
    header += len(body).to_bytes(2, "big") + body
    if crc32c:
        header[-4:] = _checksum(header).to_bytes(4, "big")
    return bytes(header)


def _endpoints(
    source: Address | None, destination: Address | None
) -> tuple[Family, Address | None, Address | None]:
    if source is None or destination is None:
        return "AF_UNSPEC", None, None
    if isinstance(source, str) and isinstance(destination, str):
        return "AF_UNIX", source, destination
    if isinstance(source, str) or isinstance(destination, str):
        raise ValueError("source and destination must be of one family (two paths or two hosts)")
    families = []
    checked = []
    for host, port in (source, destination):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv4 or IPv6 address") from None
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise ValueError(f"{host!r} has a scope ID, which the PROXY protocol cannot carry")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
            raise ValueError(f"port {port!r} is out of range (0-65535)")
        families.append(address.version)
        checked.append((str(address), port))
    if families[0] != families[1]:
        raise ValueError("source and destination must be of one family (IPv4 or IPv6)")
    return ("AF_INET" if families[0] == 4 else "AF_INET6"), checked[0], checked[1]


def _v2_address_block(family: Family, src: Address, dst: Address) -> bytes:
    if family == "AF_UNIX":
        assert isinstance(src, str) and isinstance(dst, str)
        return _unix_field(src) + _unix_field(dst)
    assert not isinstance(src, str) and not isinstance(dst, str)
    return (
        ipaddress.ip_address(src[0]).packed
        + ipaddress.ip_address(dst[0]).packed
        + src[1].to_bytes(2, "big")
        + dst[1].to_bytes(2, "big")
    )


def _unix_field(path: str) -> bytes:
    raw = path.encode("utf-8", "surrogateescape")
    if len(raw) > 108:
        raise ValueError(f"AF_UNIX path {path!r} is {len(raw)} bytes, over 108")
    if b"\0" in raw[1:] or raw == b"\0":
        raise ValueError(
            f"AF_UNIX path {path!r}: a NUL may only begin an abstract name, which is not empty"
        )
    return raw.ljust(108, b"\0")


def _tlv(kind: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError(f"TLV type 0x{kind:02x} has {len(value)} bytes, over 65535")
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


def _ascii(value: str, what: str) -> bytes:
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be US-ASCII, not {value!r}") from None


def _encode_tlvs(
    alpn: bytes | None,
    authority: str | None,
    unique_id: bytes | None,
    ssl: ProxySSL | None,
    netns: str | None,
    tlvs: Iterable[tuple[int, bytes]],
) -> bytes:
    out = bytearray()
    if alpn is not None:
        out += _tlv(PP2_TYPE_ALPN, bytes(alpn))
    if authority is not None:
        out += _tlv(PP2_TYPE_AUTHORITY, authority.encode("utf-8"))
    if unique_id is not None:
        if len(unique_id) > UNIQUE_ID_MAX:
            raise ValueError(f"unique_id has {len(unique_id)} bytes, over {UNIQUE_ID_MAX}")
        out += _tlv(PP2_TYPE_UNIQUE_ID, bytes(unique_id))
    if ssl is not None:
        out += _tlv(PP2_TYPE_SSL, _encode_ssl(ssl))
    if netns is not None:
        out += _tlv(PP2_TYPE_NETNS, _ascii(netns, "netns"))
    for kind, value in tlvs:
        if not isinstance(kind, int) or not 0 <= kind <= 0xFF:
            raise ValueError(f"a TLV type is one byte (0-255), not {kind!r}")
        if kind in _KNOWN_TYPES:
            raise ValueError(
                f"TLV type 0x{kind:02x} has its own keyword (alpn, authority, unique_id, ssl, "
                "netns, crc32c); tlvs is for other types"
            )
        out += _tlv(kind, bytes(value))
    return bytes(out)


def _encode_ssl(ssl: ProxySSL) -> bytes:
    if not 0 <= ssl.client <= 0xFF or not 0 <= ssl.verify <= 0xFFFFFFFF:
        raise ValueError("ProxySSL.client is one byte and verify four")
    out = bytearray([ssl.client]) + ssl.verify.to_bytes(4, "big")
    for kind, (name, encoding) in _SSL_SUBTYPES.items():
        text = getattr(ssl, name)
        if text is not None:
            raw = _ascii(text, f"ssl.{name}") if encoding == "ascii" else text.encode("utf-8")
            out += _tlv(kind, raw)
    for kind, value in ssl.tlvs:
        if not isinstance(kind, int) or not 0 <= kind <= 0xFF or kind in _SSL_SUBTYPES:
            raise ValueError(f"ProxySSL.tlvs is for other sub-TLV types (0-255), not {kind!r}")
        out += _tlv(kind, bytes(value))
    return bytes(out)
