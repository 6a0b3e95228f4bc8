"""aiomsg servers behind a real HAProxy (``mode tcp``) that speaks the PROXY protocol.

Three ``aiomsg serve --mode print --proxy-protocol ...`` processes sit behind one
HAProxy (tests/haproxy.py); clients connect to HAProxy from 127.0.0.2, 127.0.0.3, ...
so that each backend must print the client's real address, not HAProxy's 127.0.0.1.
HAProxy's health checks (``check-send-proxy``) must not make the backends log a
warning. In-process backends check what the header carries (the SSL TLV of
``send-proxy-v2-ssl``) and TLS after the header (HAProxy speaking TLS to them).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aiomsg
from tests.haproxy import HAProxy, SendProxy

from .processes import stop_process

WAIT = 30.0  # seconds any single wait may take before the test fails
CLIENTS = [f"127.0.0.{n}" for n in range(2, 8)]  # six clients, none of them 127.0.0.1


class Backend:
    """One ``python -m aiomsg serve ... --mode print`` process; its output in files."""

    def __init__(self, tmp: Path, name: str, mode: str, *, verbose: bool = False) -> None:
        self.out = tmp / f"{name}.out"
        self.err = tmp / f"{name}.err"
        command = [
            sys.executable, "-m", "aiomsg", "serve", "127.0.0.1", "0", "--framing", "lines",
            "--mode", "print", "--proxy-protocol", mode, "--proxy-trusted", "127.0.0.1/32",
        ]  # fmt: skip
        if verbose:
            command.append("-v")
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        self.port = self._listening_port()

    def _listening_port(self) -> int:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.err.read_text())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"aiomsg serve exited: {self.err.read_text()}")
            time.sleep(0.05)
        raise RuntimeError("aiomsg serve did not listen")

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def stop(self) -> None:
        stop_process(self.process, WAIT)


@contextlib.contextmanager
def backends(mode: str, count: int = 3, *, verbose: bool = False) -> Iterator[list[Backend]]:
    with tempfile.TemporaryDirectory(prefix="aiomsg-backends-") as tmp:
        started: list[Backend] = []
        try:
            for n in range(count):
                started.append(Backend(Path(tmp), f"b{n}", mode, verbose=verbose))
            yield started
        finally:
            for backend in started:
                backend.stop()


def send_line(proxy: HAProxy, source: str, line: bytes, tls: ssl.SSLContext | None) -> int:
    """Connect to HAProxy from ``source``, send ``line``, half-close and read until the
    backend closes (it has printed the line then); return the client's port."""
    sock = socket.create_connection((proxy.host, proxy.port), WAIT, source_address=(source, 0))
    port: int = sock.getsockname()[1]
    with contextlib.closing(sock):
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(line)
        # A TLS socket drops TLS here and reads what is left (session tickets) raw.
        sock.shutdown(socket.SHUT_WR)
        for _ in range(1000):
            if not sock.recv(65536):
                break
        sock.close()
    return port


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {WAIT}s: {what}")


def check_failures(proxy: HAProxy) -> dict[str, int]:
    """HAProxy's count of failed health checks per server (``chkfail`` in ``show stat``)."""
    lines = proxy.command("show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    name, failed = header.index("svname"), header.index("chkfail")
    return {
        fields[name]: int(fields[failed] or 0)
        for fields in (line.split(",") for line in lines[1:])
        if len(fields) > failed and fields[name] in proxy.names
    }


@pytest.mark.parametrize("send_proxy", ["v1", "v2", "v2-ssl"])
def test_each_backend_prints_the_real_client(send_proxy: SendProxy) -> None:
    """send-proxy, send-proxy-v2 and send-proxy-v2-ssl (TLS to HAProxy): six clients
    from six addresses, round-robin over three backends; each line printed names
    the client's own address and port."""
    mode = "v1" if send_proxy == "v1" else "v2"
    tls = send_proxy == "v2-ssl"
    with backends(mode) as servers:
        addresses = [("127.0.0.1", backend.port) for backend in servers]
        with HAProxy(addresses, send_proxy=send_proxy, tls_frontend=tls) as proxy:
            proxy.wait_all_up()
            client_tls = ssl.create_default_context(cafile=str(proxy.ca_path)) if tls else None
            expected = []
            for n, source in enumerate(CLIENTS):
                port = send_line(proxy, source, b"hello %d\n" % n, client_tls)
                expected.append(f"{source}:{port} hello {n}")

            def printed() -> list[str]:
                return sorted(line for backend in servers for line in backend.lines())

            wait_for(lambda: len(printed()) >= len(expected), "every client's line printed")
            assert printed() == sorted(expected)
            assert all(backend.lines() for backend in servers)  # all three got clients
            assert check_failures(proxy) == {name: 0 for name in proxy.names}
        for backend in servers:  # nothing but the listening line: no warning, no traceback
            backend.stop()
            assert backend.err.read_text().splitlines() == [
                f"aiomsg serve: listening on 127.0.0.1:{backend.port}"
            ]


@pytest.mark.parametrize("send_proxy", ["v1", "v2"])
def test_health_checks_are_not_logged_as_errors(send_proxy: SendProxy) -> None:
    """Dozens of ``check-send-proxy`` health checks (v1: a PROXY line from HAProxy's
    own address; v2: a LOCAL header), each closed by HAProxy with a reset: the backend
    (verbose) reports them as connections only, never as a warning or an error."""
    with backends(send_proxy, count=1, verbose=True) as [backend]:
        with HAProxy([("127.0.0.1", backend.port)], send_proxy=send_proxy,
                     check_interval_ms=100) as proxy:  # fmt: skip
            proxy.wait_all_up()
            wait_for(lambda: backend.err.read_text().count(" connected") >= 10, "ten health checks")
            assert check_failures(proxy) == {"s0": 0}
            assert proxy.server_status() == {"s0": "UP"}
        backend.stop()
        text = backend.err.read_text()
    chatter = re.compile(
        r"aiomsg serve: (listening on |print server, |\S+ connected$|connection to \S+ lost "
        r"\(connection reset by peer\)$|\S+ closed the connection after 0 messages$|"
        r"stopping: draining the connections$)"
    )
    unexpected = [line for line in text.splitlines() if not chatter.match(line)]
    assert unexpected == []
    assert "PROXY" not in text and "Traceback" not in text


@pytest.mark.asyncio
@pytest.mark.parametrize("case", ["v2-ssl-tlv", "tls-to-backend"])
async def test_header_details_and_tls_after_the_header(
    case: str, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """``send-proxy-v2-ssl``: the header says the client spoke TLS to HAProxy, and
    which version. ``send-proxy-v2`` + ``ssl`` on the server line: HAProxy writes the
    header in clear and then its ClientHello; the backend reads exactly the header
    and serves TLS after it."""
    server_ctx, _ = tls
    seen: list[tuple[Any, aiomsg.ProxyHeader | None]] = []

    async def echo(conn: aiomsg.Connection) -> None:
        async for message in conn:
            seen.append((conn.remote_address, conn.get_extra_info("proxy_header")))
            await conn.send(message)

    tls_backend = case == "tls-to-backend"
    async with aiomsg.serve(
        echo, "127.0.0.1", 0, framing=aiomsg.Lines(), proxy_protocol="v2",
        proxy_trusted=["127.0.0.1/32"], ssl=server_ctx if tls_backend else None,
    ) as server:  # fmt: skip
        proxy = HAProxy(
            [("127.0.0.1", server.port)],
            send_proxy="v2" if tls_backend else "v2-ssl",
            tls_frontend=not tls_backend,
            tls_backend=tls_backend,
        )
        await asyncio.to_thread(proxy.start)
        try:
            await asyncio.to_thread(proxy.wait_all_up)
            client_tls = None
            if not tls_backend:
                client_tls = ssl.create_default_context(cafile=str(proxy.ca_path))
            async with aiomsg.connect(
                proxy.host, proxy.port, framing=aiomsg.Lines(), ssl=client_tls,
                local_addr=("127.0.0.9", 0),
            ) as conn:  # fmt: skip
                for n in range(3):
                    await conn.send(b"message %d" % n)
                    assert await conn.receive() == b"message %d" % n
                client = conn.local_address[:2]
        finally:
            await asyncio.to_thread(proxy.stop)
    assert [remote for remote, _ in seen] == [client] * 3
    header = seen[0][1]
    assert header is not None and header.command == "PROXY" and header.version == 2
    if tls_backend:
        assert header.ssl is None  # the client spoke plain TCP to HAProxy
    else:
        assert header.ssl is not None and header.ssl.client_ssl
        assert (header.ssl.version or "").startswith("TLSv1")


def test_the_example_greets_each_client_by_its_address() -> None:
    """examples/behind_haproxy.py behind HAProxy, as docs/howto/load-balancer.md shows it."""
    example = Path(__file__).resolve().parent.parent / "examples" / "behind_haproxy.py"
    server = subprocess.Popen(
        [sys.executable, str(example), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()  # "echo behind a load balancer on 127.0.0.1:PORT (...)"
        port = int(first.split("127.0.0.1:")[1].split()[0])
        with HAProxy([("127.0.0.1", port)], send_proxy="v2") as proxy:
            proxy.wait_all_up()
            for source in CLIENTS[:2]:
                with socket.create_connection(
                    (proxy.host, proxy.port), WAIT, source_address=(source, 0)
                ) as sock:
                    greeting = sock.makefile("rb").readline()
                    mine = sock.getsockname()[1]
                    assert greeting == f"hello {source}:{mine}, via 127.0.0.1\n".encode()
    finally:
        server.terminate()
        server.wait(WAIT)
