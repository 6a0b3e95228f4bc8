"""The client side of the PROXY protocol: ``proxy_header=`` on ``connect``/``connect_framed``.

The header goes out on the raw socket first, before TLS and before any message,
as a load balancer writes it (for tests, and for aiomsg programs that relay
connections to an aiomsg server behind them).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from .framing.proxy_protocol import ProxyHeader, encode_proxy_header

__all__ = ["open_proxied_socket", "proxy_wire"]


def proxy_wire(header: ProxyHeader | bytes | bytearray | memoryview) -> bytes:
    """The bytes of ``header``: a :class:`ProxyHeader` encoded again (its version,
    command, addresses and TLVs; a checksum when it had one), or bytes as given
    (from :func:`~aiomsg.encode_proxy_header`).

    Raises:
        TypeError: neither.
        ValueError: a header the encoder refuses (see ``encode_proxy_header``).
    """
    if isinstance(header, (bytes, bytearray, memoryview)):
        return bytes(header)
    if not isinstance(header, ProxyHeader):
        raise TypeError(f"proxy_header must be a ProxyHeader or bytes, not {header!r}")
    return encode_proxy_header(
        header.source,
        header.destination,
        version=header.version,
        command=header.command,
        transport="DGRAM" if header.transport == "DGRAM" else "STREAM",
        alpn=header.alpn,
        authority=header.authority,
        unique_id=header.unique_id,
        ssl=header.ssl,
        netns=header.netns,
        tlvs=header.tlvs,
        crc32c=header.crc32c is not None,
    )


async def open_proxied_socket(
    host: str, port: int, wire: bytes, kwargs: dict[str, Any]
) -> socket.socket:
    """A TCP socket connected to ``host``/``port`` that has sent ``wire``; it takes
    ``local_addr`` and ``family`` out of ``kwargs`` (create_connection's), trying
    each address ``host`` resolves to in turn.

    Raises:
        OSError: no address could be connected to (the last one's error).
    """
    loop = asyncio.get_running_loop()
    local = kwargs.pop("local_addr", None)
    family = kwargs.pop("family", socket.AF_UNSPEC)
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    error: OSError = OSError(f"no address for {host!r}")
    for af, kind, proto, _, address in infos:
        sock = socket.socket(af, kind, proto)
        try:
            sock.setblocking(False)
            if local is not None:
                sock.bind(local)
            await loop.sock_connect(sock, address)
            await loop.sock_sendall(sock, wire)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error
