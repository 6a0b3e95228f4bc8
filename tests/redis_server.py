"""A real ``redis-server`` on a free loopback port, for the tests of the chat broker.

``python3 dev.py test`` installs it (Debian package ``redis-server``) when it is
missing; run by hand without it, the tests that need it fail and say so.

It can require a password (``--requirepass``), serve one ACL user (an ACL file in
which the default user is off) and speak only TLS (``--tls-port``, with a throwaway
CA and certificate made by trustme).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import trustme

from .processes import stop_process

START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on loopback, with no persistence, in a temp dir.

    ``password``: clients must authenticate (as ``user``, an ACL user with the rules
    ``acl``, if given; the default user is then disabled). ``tls``: TLS only, with a
    certificate for 127.0.0.1 from a CA of its own, written to :attr:`ca_path`.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        user: str | None = None,
        tls: bool = False,
        acl: str = "~* &* +@all",
    ) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(
                "these tests need redis-server (Debian package redis-server); "
                "`python3 dev.py test` installs it"
            )
        self.executable = executable
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="aiomsg-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.password = password
        self.user = user
        self.tls = tls
        self.ca_path = self.dir / "ca.pem"
        self._extra: list[str] = []
        if user is not None:
            assert password is not None, "an ACL user needs a password"
            rules = self.dir / "users.acl"
            rules.write_text(f"user default off\nuser {user} on >{password} {acl}\n")
            self._extra += ["--aclfile", str(rules)]
        elif password is not None:
            self._extra += ["--requirepass", password]
        if tls:
            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1")
            cert.private_key_pem.write_to_path(str(self.dir / "key.pem"))
            cert.cert_chain_pems[0].write_to_path(str(self.dir / "cert.pem"))
            ca.cert_pem.write_to_path(str(self.ca_path))
            self._extra += [
                "--tls-port", str(self.port), "--tls-auth-clients", "no",
                "--tls-cert-file", str(self.dir / "cert.pem"),
                "--tls-key-file", str(self.dir / "key.pem"),
                "--tls-ca-cert-file", str(self.ca_path),
            ]  # fmt: skip

    @property
    def url(self) -> str:
        return self.url_with()

    def url_with(self, password: str | None = None, ca_path: Path | None = None) -> str:
        """This server's URL, with another ``password`` or CA file if given."""
        password = password if password is not None else self.password
        userinfo = ""
        if password is not None:
            quoted = urllib.parse.quote(password, safe="")
            userinfo = f"{urllib.parse.quote(self.user or '', safe='')}:{quoted}@"
        if not self.tls:
            return f"redis://{userinfo}127.0.0.1:{self.port}/0"
        ca = urllib.parse.quote(str(ca_path or self.ca_path), safe="/")
        return f"rediss://{userinfo}127.0.0.1:{self.port}/0?ssl_ca_certs={ca}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port", "0" if self.tls else str(self.port),
                *self._extra,
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()}")
            try:
                if self._answers():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
            sock = raw
            if self.tls:
                context = ssl.create_default_context(cafile=str(self.ca_path))
                sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(b"PING\r\n")
            # PONG, or: up, and wants a password first
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
