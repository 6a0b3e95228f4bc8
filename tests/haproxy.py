"""A real HAProxy (``mode tcp``) on a free loopback port, in front of given backends.

``python3 dev.py test`` installs it (Debian package ``haproxy``) when it is missing; run
by hand without it, :class:`HAProxy` raises :class:`~tests.real_servers.MissingProgram`.

API (everything blocking, for use from sync tests or through ``asyncio.to_thread``)::

    with HAProxy([("127.0.0.1", p1), ("127.0.0.1", p2)], send_proxy="v2") as proxy:
        proxy.port                      # the frontend's port on proxy.host (127.0.0.1)
        proxy.wait_status("s0", "UP")   # health checks passed (servers are s0, s1, ...)
        proxy.disable_server("s1")      # admin socket: `disable server be/s1` (maintenance)
        proxy.enable_server("s1")
        proxy.set_state("s1", "drain")  # `set server be/s1 state drain|ready|maint`
        proxy.server_status()           # {"s0": "UP", "s1": "MAINT", ...}
        proxy.command("show stat")      # any admin-socket command, its answer as text
        proxy.log_text()                # what haproxy wrote (its traffic log included)

``send_proxy``: ``None`` (no header), ``"v1"`` (``send-proxy``), ``"v2"``
(``send-proxy-v2``) or ``"v2-ssl"`` (``send-proxy-v2-ssl``: v2 with the SSL TLVs of the
client's TLS connection to the frontend). ``tls_frontend``: the frontend speaks TLS with
a certificate for 127.0.0.1 from a throwaway CA (:attr:`HAProxy.ca_path`, for clients).
``tls_backend``: HAProxy speaks TLS to the backends (no verification): the PROXY header
goes first in clear, then the ClientHello. ``check``: health checks every
``check_interval_ms`` with ``check-send-proxy`` (the header on each check, as the real
traffic has it). ``server_options`` is appended to every ``server`` line (e.g.
``"on-marked-down shutdown-sessions"``). The process is stopped (SIGTERM, then SIGKILL)
and its temp dir removed on exit, even after a failure.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Literal

from tests.processes import stop_process
from tests.real_servers import MissingProgram, find_program, free_port

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
SendProxy = Literal["v1", "v2", "v2-ssl"]

_SEND_PROXY_KEYWORD = {"v1": "send-proxy", "v2": "send-proxy-v2", "v2-ssl": "send-proxy-v2-ssl"}


class HAProxy:
    """One ``haproxy -db`` process; see the module docstring."""

    def __init__(
        self,
        backends: Iterable[tuple[str, int]],
        *,
        send_proxy: SendProxy | None = "v2",
        tls_frontend: bool = False,
        tls_backend: bool = False,
        check: bool = True,
        check_interval_ms: int = 300,
        balance: str = "roundrobin",
        host: str = "127.0.0.1",
        server_options: str = "",
    ) -> None:
        self.executable = find_program("haproxy", "haproxy")
        self.backends = list(backends)
        if not self.backends:
            raise ValueError("HAProxy needs at least one backend")
        self.names = [f"s{index}" for index in range(len(self.backends))]
        self.send_proxy = send_proxy
        self.tls_frontend = tls_frontend
        self.tls_backend = tls_backend
        self.check = check
        self.check_interval_ms = check_interval_ms
        self.balance = balance
        self.host = host
        self.server_options = server_options
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="aiomsg-haproxy-"))
        self.admin_socket = self.dir / "admin.sock"
        self.config_path = self.dir / "haproxy.cfg"
        self.log_path = self.dir / "haproxy.log"
        self.ca_path = self.dir / "ca.pem"
        self.process: subprocess.Popen[bytes] | None = None

    # --- the config ---------------------------------------------------------------------

    def config(self) -> str:
        """The configuration text this instance runs with."""
        bind = f"    bind {self.host}:{self.port}"
        if self.tls_frontend:
            bind += f" ssl crt {self.dir / 'frontend.pem'}"
        server_options = ""
        if self.send_proxy is not None:
            server_options += " " + _SEND_PROXY_KEYWORD[self.send_proxy]
        if self.check:
            server_options += f" check inter {self.check_interval_ms} fall 2 rise 1"
            if self.send_proxy is not None:
                server_options += " check-send-proxy"
        if self.tls_backend:
            server_options += " ssl verify none"
        if self.server_options:
            server_options += " " + self.server_options
        servers = "\n".join(
            f"    server {name} {host}:{port}{server_options}"
            for name, (host, port) in zip(self.names, self.backends, strict=True)
        )
        return (
            "global\n"
            f"    stats socket {self.admin_socket} mode 600 level admin\n"
            "    log stdout format raw local0 info\n"
            "    maxconn 4096\n"
            "defaults\n"
            "    mode tcp\n"
            "    log global\n"
            "    option tcplog\n"
            "    timeout connect 5s\n"
            "    timeout client 60s\n"
            "    timeout server 60s\n"
            "    retries 3\n"
            "    option redispatch\n"
            "frontend fe\n"
            f"{bind}\n"
            "    default_backend be\n"
            "backend be\n"
            f"    balance {self.balance}\n"
            f"{servers}\n"
        )

    def _write_files(self) -> None:
        if self.tls_frontend:
            import trustme

            ca = trustme.CA()
            ca.cert_pem.write_to_path(str(self.ca_path))
            cert = ca.issue_cert("127.0.0.1", "localhost")
            # HAProxy wants the key and the chain in one file.
            pem = cert.private_key_pem.bytes() + b"".join(p.bytes() for p in cert.cert_chain_pems)
            (self.dir / "frontend.pem").write_bytes(pem)
        self.config_path.write_text(self.config())

    # --- start and stop -----------------------------------------------------------------

    def start(self) -> None:
        """Write the config, start haproxy and wait (:data:`START_TIMEOUT`) until the
        frontend accepts connections; RuntimeError (with haproxy's output) if it does not."""
        self._write_files()
        check = subprocess.run(
            [self.executable, "-c", "-f", str(self.config_path)],
            capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
        )  # fmt: skip
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejected its config:\n{check.stdout}{check.stderr}")
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [self.executable, "-db", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited:\n{self.log_text()}")
            # Asked on the admin socket, not by connecting: a probe through the frontend
            # would reach a backend and count there as a client.
            if self.admin_socket.exists():
                try:
                    if self._frontend_open():
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"haproxy did not listen on {self.port} within {START_TIMEOUT}s")

    def stop(self) -> None:
        """Stop haproxy (SIGTERM, then SIGKILL) and remove its temp dir."""
        process, self.process = self.process, None
        try:
            if process is not None:
                stop_process(process, STOP_TIMEOUT)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> HAProxy:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- the admin socket ---------------------------------------------------------------

    def command(self, line: str) -> str:
        """Send one admin-socket command (e.g. ``"show stat"``) and return its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(START_TIMEOUT)
            sock.connect(str(self.admin_socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            for _ in range(10_000):  # haproxy closes after answering one command
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def _frontend_open(self) -> bool:
        for line in self.command("show stat").splitlines():
            fields = line.split(",")
            if fields[:2] == ["fe", "FRONTEND"]:
                return "OPEN" in fields
        return False

    def server_status(self) -> dict[str, str]:
        """Each server's status from ``show stat`` ("UP", "DOWN", "MAINT", "no check", ...)."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        pxname, svname, status = (header.index(k) for k in ("pxname", "svname", "status"))
        states = {}
        for line in lines[1:]:
            fields = line.split(",")
            if len(fields) > status and fields[pxname] == "be" and fields[svname] in self.names:
                states[fields[svname]] = fields[status]
        return states

    def wait_status(self, name: str, wanted: str = "UP", timeout: float = START_TIMEOUT) -> None:
        """Wait until server ``name`` has status ``wanted`` (a prefix: "UP" matches "UP 1/2")."""
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            status = self.server_status().get(name, "?")
            if status.startswith(wanted):
                return
            time.sleep(0.05)
        raise RuntimeError(f"server {name} is {status!r}, not {wanted!r}, after {timeout}s")

    def wait_all_up(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every server passes its health checks."""
        for name in self.names:
            self.wait_status(name, "UP", timeout)

    def disable_server(self, name: str) -> None:
        """Put ``name`` in maintenance: no new connections go to it."""
        self.command(f"disable server be/{name}")

    def enable_server(self, name: str) -> None:
        self.command(f"enable server be/{name}")

    def set_state(self, name: str, state: str) -> None:
        """``set server be/NAME state STATE``: "ready", "drain" (no new connections, the
        open ones stay) or "maint"."""
        self.command(f"set server be/{name} state {state}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


__all__ = ["HAProxy", "MissingProgram", "SendProxy"]
