"""Run one SQL statement on PostgreSQL and print its rows: a complete client in aiomsg.

    python examples/protocols/postgres_query.py --host H --port P --user U \\
        [--password PW] [--database D] [--tls] [--tls-ca FILE] SQL

Each row is printed as its text values separated by tabs, one row a line, as
``psql -At`` does: a NULL is an empty field, and values are not escaped. A
server error prints its message in one line on stderr and exits with 1.
Authentication: trust, cleartext, md5 and SCRAM-SHA-256. ``--tls`` asks for TLS
(SSLRequest) and encrypts without checking the certificate (psql's
``sslmode=require``); ``--tls-ca FILE`` also verifies it against that CA.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import ssl
import struct
import sys

import aiomsg
from aiomsg import recipes

PROTOCOL_3_0 = 196608
SSL_REQUEST = 80877103


class ServerError(Exception):
    """An ErrorResponse, or a server that does not speak as this client expects."""


def error_text(body: bytes) -> str:
    """One line from an ErrorResponse: its fields are a code byte, a string, ... then NUL."""
    fields = {f[:1]: f[1:].decode(errors="replace") for f in body[1:].split(b"\0") if f}
    text = f"{fields.get(b'S', 'ERROR')}: {fields.get(b'M', 'unknown error')}"
    return " ".join(text.split())  # one line, whatever the message holds


async def expect(conn: aiomsg.Connection, kind: bytes) -> bytes:
    """The next message, which must be of type ``kind``; NoticeResponse, ParameterStatus and
    BackendKeyData are skipped."""
    while True:
        message = await conn.receive()  # message[0] is the type byte
        if message[:1] == b"E":
            raise ServerError(error_text(message))
        if message[:1] in (b"N", b"S", b"K"):
            continue
        if message[:1] != kind:
            raise ServerError(f"expected {kind!r}, got {message[:1]!r}")
        return message


async def authenticate(conn: aiomsg.Connection, user: str, password: str | None) -> None:
    """Answer AuthenticationRequests until AuthenticationOk."""
    while True:
        body = await expect(conn, b"R")
        (code,) = struct.unpack_from("!i", body, 1)
        if code == 0:  # AuthenticationOk
            return
        if password is None:
            raise ServerError("the server asks for a password: give --password")
        if code == 3:  # cleartext
            await conn.send(b"p" + password.encode() + b"\0")
        elif code == 5:  # md5: md5(md5(password + user) + salt), in hex
            inner = hashlib.md5((password + user).encode()).hexdigest().encode()
            digest = hashlib.md5(inner + body[5:9]).hexdigest()
            await conn.send(b"p" + b"md5" + digest.encode() + b"\0")
        elif code == 10 and b"SCRAM-SHA-256\0" in body[5:]:  # SASL
            await scram_sha_256(conn, password)
        else:
            raise ServerError(f"unsupported authentication request {code}")


async def scram_sha_256(conn: aiomsg.Connection, password: str) -> None:
    """RFC 5802/7677 as PostgreSQL uses it (the user name is in the startup message)."""
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n=,r={nonce}"
    first = b"n,," + first_bare.encode()  # "n": no channel binding
    await conn.send(b"p" + b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
    server_first = (await expect(conn, b"R"))[5:].decode()  # AuthenticationSASLContinue
    attrs = dict(item.split("=", 1) for item in server_first.split(","))
    if not attrs["r"].startswith(nonce):
        raise ServerError("SCRAM: the server's nonce does not extend ours")
    iterations = int(attrs["i"])  # 4096 by default: refuse what would take hours
    if not 0 < iterations <= 1_000_000:
        raise ServerError(f"SCRAM: refusing {iterations} iterations")
    salt = base64.b64decode(attrs["s"])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    final_bare = f"c=biws,r={attrs['r']}"  # biws: base64 of "n,,"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{final_bare},p={base64.b64encode(proof).decode()}"
    await conn.send(b"p" + final.encode())
    server_final = (await expect(conn, b"R"))[5:].decode()  # AuthenticationSASLFinal
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    wanted = base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
    if not hmac.compare_digest(server_final, f"v={wanted}"):
        raise ServerError("SCRAM: the server did not prove it knows the password")


def tls_context(args: argparse.Namespace) -> ssl.SSLContext:
    if args.tls_ca:  # verify-full: the CA's certificate for --host
        return ssl.create_default_context(cafile=args.tls_ca)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # sslmode=require: encrypt only
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def print_row(body: bytes, out: list[bytes]) -> None:
    """A DataRow: int16 column count, then each value as int32 length (-1: NULL) + bytes."""
    (count,) = struct.unpack_from("!h", body, 1)
    values: list[bytes] = []
    at = 3
    for _ in range(count):
        (size,) = struct.unpack_from("!i", body, at)
        at += 4
        values.append(b"" if size < 0 else body[at : at + size])
        at += max(size, 0)
    out.append(b"\t".join(values) + b"\n")


def startup_message(args: argparse.Namespace) -> bytes:
    """Protocol 3.0, then name/value pairs, each NUL-terminated, then a NUL."""
    params = {"user": args.user, "database": args.database or args.user}
    params["client_encoding"] = "UTF8"
    pairs = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items())
    return struct.pack("!i", PROTOCOL_3_0) + pairs + b"\0"


async def query(args: argparse.Namespace) -> None:
    async with aiomsg.connect(args.host, args.port, framing=recipes.postgres()) as conn:
        # The server's messages all start with a type byte; the client's first ones do not.
        conn.set_framing(send=recipes.postgres_startup())
        if args.tls or args.tls_ca:
            await conn.send(struct.pack("!i", SSL_REQUEST))
            if await conn.receive_exactly(1) != b"S":  # one unframed byte: S or N
                raise ServerError("the server does not accept TLS")
            await conn.start_tls(tls_context(args), server_hostname=args.host)
        await conn.send(startup_message(args))
        conn.set_framing(send=recipes.postgres())  # typed from now on, both ways
        await authenticate(conn, args.user, args.password)
        await expect(conn, b"Z")  # ReadyForQuery
        await conn.send(b"Q" + args.sql.encode() + b"\0")
        error: str | None = None
        out: list[bytes] = []
        stdout = sys.stdout.buffer
        while (message := await conn.receive())[:1] != b"Z":  # ReadyForQuery ends it
            kind = message[:1]
            if kind == b"D":
                print_row(message, out)
                if len(out) >= 1000:
                    stdout.write(b"".join(out))
                    out.clear()
            elif kind == b"E":
                error = error_text(message)
        stdout.write(b"".join(out))
        await conn.send(b"X")  # Terminate
        if error is not None:
            raise ServerError(error)
    stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password")
    parser.add_argument("--database")
    parser.add_argument("--tls", action="store_true", help="encrypt (sslmode=require)")
    parser.add_argument("--tls-ca", metavar="FILE", help="encrypt and verify with this CA")
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
