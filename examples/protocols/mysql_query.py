"""Run one SQL statement on MySQL or MariaDB and print its rows: a complete client in aiomsg.

    python examples/protocols/mysql_query.py --host H --port P --user U \\
        [--password PW] [--database D] SQL

Each row is printed as its text values separated by tabs, one row a line (as
``mysql -BN`` does, but unescaped, and a NULL is an empty field). A server
error prints ``ERROR code (state): message`` in one line on stderr and exits
with 1. It speaks protocol 4.1 with the handshake v10 and authenticates with
``mysql_native_password`` (following an auth switch to it); other plugins
(``caching_sha2_password``, ed25519) are refused with a clear message. Packets of
16 MiB or more (split by the protocol) are not joined: rows must be smaller.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys

import aiomsg
from aiomsg import recipes

# Capability flags (protocol 4.1).
LONG_PASSWORD, CONNECT_WITH_DB, PROTOCOL_41 = 0x1, 0x8, 0x200
TRANSACTIONS, SECURE_CONNECTION, PLUGIN_AUTH = 0x2000, 0x8000, 0x80000
UTF8MB4 = 45  # utf8mb4_general_ci
NATIVE = b"mysql_native_password"


class ServerError(Exception):
    """An ERR packet, or a server that does not speak as this client expects."""


class Packets:
    """Packets of one command: each message is a sequence byte then the payload."""

    def __init__(self, conn: aiomsg.Connection) -> None:
        self.conn = conn
        self.sequence = 0

    async def receive(self) -> bytes:
        message = await self.conn.receive()
        self.sequence = (message[0] + 1) % 256  # a reply follows the last one received
        payload = message[1:]
        if payload[:1] == b"\xff":  # ERR: code, "#", SQL state, message
            (code,) = struct.unpack_from("<H", payload, 1)
            state, text = payload[4:9].decode(), payload[9:].decode(errors="replace")
            raise ServerError(f"ERROR {code} ({state}): {' '.join(text.split())}")
        return payload

    async def send(self, payload: bytes) -> None:
        await self.conn.send(bytes([self.sequence]) + payload)
        self.sequence = (self.sequence + 1) % 256


def native_password(password: str, scramble: bytes) -> bytes:
    """SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); nothing for no password."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    mask = hashlib.sha1(scramble + hashlib.sha1(stage1).digest()).digest()
    return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))


def length_encoded(data: bytes, at: int) -> tuple[int | None, int]:
    """The length-encoded integer at ``at`` (``None`` for 0xFB: NULL) and the offset after it."""
    first = data[at]
    if first < 0xFB:
        return first, at + 1
    if first == 0xFB:
        return None, at + 1
    width = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(data[at + 1 : at + 1 + width], "little"), at + 1 + width


async def handshake(packets: Packets, args: argparse.Namespace) -> None:
    greeting = await packets.receive()  # HandshakeV10
    if greeting[0] != 10:
        raise ServerError(f"unsupported handshake version {greeting[0]}")
    at = greeting.index(b"\0", 1) + 1 + 4  # server version, connection id
    scramble = greeting[at : at + 8]
    at += 8 + 1 + 2 + 1 + 2 + 2  # filler, capabilities, charset, status, capabilities
    scramble += greeting[at + 1 + 10 : at + 1 + 10 + 12]  # part 2: 12 bytes and a NUL
    flags = LONG_PASSWORD | PROTOCOL_41 | TRANSACTIONS | SECURE_CONNECTION | PLUGIN_AUTH
    if args.database:
        flags |= CONNECT_WITH_DB
    auth = native_password(args.password or "", scramble)
    response = struct.pack("<IIB23x", flags, 2**24 - 1, UTF8MB4)
    response += args.user.encode() + b"\0" + bytes([len(auth)]) + auth
    if args.database:
        response += args.database.encode() + b"\0"
    await packets.send(response + NATIVE + b"\0")
    while True:
        reply = await packets.receive()
        if reply[:1] == b"\x00":  # OK
            return
        if reply[:1] != b"\xfe":
            raise ServerError(f"unexpected authentication reply {reply[:1]!r}")
        plugin, _, data = reply[1:].partition(b"\0")  # AuthSwitchRequest
        if plugin != NATIVE:
            raise ServerError(f"unsupported authentication plugin {plugin.decode()}")
        await packets.send(native_password(args.password or "", data.rstrip(b"\0")))


def is_eof(payload: bytes) -> bool:
    return payload[:1] == b"\xfe" and len(payload) < 9


async def query(args: argparse.Namespace) -> None:
    async with aiomsg.connect(args.host, args.port, framing=recipes.mysql()) as conn:
        packets = Packets(conn)
        await handshake(packets, args)
        packets.sequence = 0  # each command starts a new sequence
        await packets.send(b"\x03" + args.sql.encode())  # COM_QUERY
        first = await packets.receive()
        if first[:1] != b"\x00":  # not OK: a result set of this many columns
            columns, _ = length_encoded(first, 0)
            for _ in range(columns or 0):
                await packets.receive()  # column definitions: not needed for text
            if not is_eof(await packets.receive()):
                raise ServerError("expected EOF after the column definitions")
            out: list[bytes] = []
            stdout = sys.stdout.buffer
            while not is_eof(row := await packets.receive()):
                values: list[bytes] = []
                at = 0
                while at < len(row):
                    size, at = length_encoded(row, at)
                    values.append(b"" if size is None else row[at : at + size])
                    at += size or 0
                out.append(b"\t".join(values) + b"\n")
                if len(out) >= 1000:
                    stdout.write(b"".join(out))
                    out.clear()
            stdout.write(b"".join(out))
            stdout.flush()
        packets.sequence = 0
        await packets.send(b"\x01")  # COM_QUIT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=3306)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password")
    parser.add_argument("--database")
    parser.add_argument("sql")
    args = parser.parse_args()
    try:
        aiomsg.run(query(args))
    except (ServerError, aiomsg.ConnectionClosed, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except (IndexError, KeyError, ValueError, struct.error) as exc:  # FramingError too
        print(f"the server sent a malformed message: {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
