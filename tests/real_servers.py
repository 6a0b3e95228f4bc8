"""Real PostgreSQL, MariaDB and Mosquitto servers on free loopback ports, for the tests of
the example protocol clients (examples/protocols/).

Each is a context manager that makes a temp dir, starts the server in it within
:data:`START_TIMEOUT` seconds, yields what a client needs, and on the way out
(even after a failure) stops the server and removes the dir. Nothing is
skipped: a missing program raises :class:`MissingProgram`, naming the Debian
package that ``python3 dev.py test`` installs. PostgreSQL and MariaDB refuse to
run as root: as root, they run as the ``postgres`` / ``mysql`` system users
their packages create, in dirs those users own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .processes import stop_process

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
COMMAND_TIMEOUT = 60.0


class MissingProgram(RuntimeError):
    """A server program is not installed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_program(name: str, package: str) -> str:
    """The path of ``name``: on PATH or in /usr/sbin (servers live there, off a user's PATH),
    else in PostgreSQL's versioned bin dir (the newest version)."""
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if found is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
        found = candidates[-1] if candidates else None
    if found is None:
        raise MissingProgram(
            f"these tests need {name} (Debian package {package}); `python3 dev.py test` installs it"
        )
    return found


def _version(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _as_user(name: str) -> dict[str, Any]:
    """Popen keywords that run a command as system user ``name`` when we are root."""
    if os.geteuid() != 0:
        return {}
    return {"user": name, "group": name, "extra_groups": []}


@contextlib.contextmanager
def _owned_temp_dir(prefix: str, owner: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if os.geteuid() == 0:
            shutil.chown(path, owner, owner)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _running(command: list[str], log: Path, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process, its output in ``log``; stop it (SIGTERM, then SIGKILL) on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **popen
        )
    try:
        yield process
    finally:
        stop_process(process, STOP_TIMEOUT)


def _wait_until_listening(
    name: str, process: subprocess.Popen[bytes], port: int, log: Path, *, greets: bool = False
) -> None:
    """Wait until ``port`` accepts a connection (and, if the server ``greets``, sends bytes)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if not greets or sock.recv(64):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {START_TIMEOUT}s")


def _run(command: list[str], **kwargs: Any) -> None:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False, **kwargs
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


# --- PostgreSQL -------------------------------------------------------------------------


@dataclass
class Postgres:
    """A running PostgreSQL: ``users`` maps each user to its password (``None``: trust);
    ``ca_file`` signed its certificate (no file when SSL is off)."""

    port: int
    ca_file: Path
    bin_dir: Path
    users: dict[str, str | None] = field(default_factory=dict)
    host: str = "127.0.0.1"


# One user per authentication method of pg_hba.conf, each allowed only that way.
POSTGRES_USERS: dict[str, tuple[str, str | None]] = {
    "trust_user": ("trust", None),
    "cleartext_user": ("password", "clear pw"),
    "md5_user": ("md5", "md5 pw"),
    "scram_user": ("scram-sha-256", "scram pw"),
}


@contextlib.contextmanager
def postgres_server(*, ssl: bool = True) -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster, with SSL on (a throwaway CA's certificate for 127.0.0.1)
    unless ``ssl`` is false."""
    # Symlinks to it on PATH (some images have them) do not find its siblings: resolve.
    initdb = Path(find_program("initdb", "postgresql")).resolve()
    bin_dir = initdb.parent
    with _owned_temp_dir("aiomsg-postgres-", "postgres") as tmp:
        data = tmp / "data"
        _run(
            [str(initdb), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync",
             "--no-instructions", "-E", "UTF8", "--locale", "C"],
            cwd=tmp, **_as_user("postgres"),
        )  # fmt: skip
        ca_file = tmp / "ca.pem"
        if ssl:
            _make_certificate(ca_file, data)
        hba = ["local all all trust", "host all postgres 127.0.0.1/32 trust"]
        for user, (method, _) in POSTGRES_USERS.items():
            hba.append(f"host all {user} 127.0.0.1/32 {method}")
        (data / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        if os.geteuid() == 0:
            for path in data.glob("server.*"):
                shutil.chown(path, "postgres", "postgres")
            shutil.chown(data / "pg_hba.conf", "postgres", "postgres")
        port = free_port()
        command = [
            str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={tmp}",
            "-c", f"ssl={'on' if ssl else 'off'}", "-c", "fsync=off", "-c", "max_connections=20",
            "-c", "shared_buffers=16MB",
        ]  # fmt: skip
        log = tmp / "postgres.log"
        with _running(command, log, cwd=tmp, **_as_user("postgres")) as process:
            _wait_until_ready(bin_dir, process, port, log)
            sql = []
            for user, (method, password) in POSTGRES_USERS.items():
                # md5 needs an md5 hash stored; the others work from a SCRAM verifier.
                encryption = "md5" if method == "md5" else "scram-sha-256"
                secret = "" if password is None else f" PASSWORD '{password}'"
                sql.append(f"SET password_encryption = '{encryption}'; CREATE USER {user}{secret};")
            _run(
                [str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                 "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", "\n".join(sql)]
            )  # fmt: skip
            users = {user: password for user, (_, password) in POSTGRES_USERS.items()}
            yield Postgres(port=port, ca_file=ca_file, bin_dir=bin_dir, users=users)


def _make_certificate(ca_file: Path, data: Path) -> None:
    """A throwaway CA in ``ca_file`` and its certificate for 127.0.0.1 as the server's."""
    import trustme  # here: benchmarks/protocols.py runs with the bench extra, which lacks it

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    server_cert.cert_chain_pems[0].write_to_path(str(data / "server.crt"))
    server_cert.private_key_pem.write_to_path(str(data / "server.key"))
    (data / "server.key").chmod(0o600)  # postgres refuses a key others can read


def _wait_until_ready(
    bin_dir: Path, process: subprocess.Popen[bytes], port: int, log: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited:\n{log.read_text(errors='replace')}")
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "2"],
            timeout=10,
            check=False,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"postgres was not ready on port {port} within {START_TIMEOUT}s")


# --- MariaDB ----------------------------------------------------------------------------


@dataclass
class MariaDB:
    """A running MariaDB: ``users`` maps each user to its password ('' for none)."""

    port: int
    users: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    database: str = "aiomsg_test"


MARIADB_USERS = {"native_user": "native pw", "nopass_user": ""}
ED25519_PASSWORD = "ed pw"


@contextlib.contextmanager
def mariadb_server() -> Iterator[MariaDB]:
    """A fresh MariaDB data dir with a test database and users with real passwords."""
    install_db = find_program("mariadb-install-db", "mariadb-server")
    mariadbd = find_program("mariadbd", "mariadb-server")
    client = find_program("mariadb", "mariadb-client")
    with _owned_temp_dir("aiomsg-mariadb-", "mysql") as tmp:
        data = tmp / "data"
        _run(
            [install_db, "--no-defaults", f"--datadir={data}", "--skip-test-db",
             "--auth-root-authentication-method=normal", "--skip-name-resolve"],
            cwd=tmp, **_as_user("mysql"),
        )  # fmt: skip
        port = free_port()
        sock = tmp / "mariadb.sock"
        command = [
            mariadbd, "--no-defaults", f"--datadir={data}", f"--port={port}",
            "--bind-address=127.0.0.1", f"--socket={sock}", f"--pid-file={tmp / 'mariadb.pid'}",
            "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M", "--max-connections=20",
        ]  # fmt: skip
        log = tmp / "mariadb.log"
        with _running(command, log, cwd=tmp, **_as_user("mysql")) as process:
            _wait_until_listening("mariadbd", process, port, log, greets=True)
            # An ed25519 user too, for a client that does not speak that plugin.
            sql = ["CREATE DATABASE aiomsg_test;", "INSTALL SONAME 'auth_ed25519';"]
            sql.append(
                f"CREATE USER 'ed25519_user'@'127.0.0.1' IDENTIFIED VIA ed25519 "
                f"USING PASSWORD('{ED25519_PASSWORD}');"
            )
            for user, password in MARIADB_USERS.items():
                sql.append(
                    f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED VIA mysql_native_password "
                    f"USING PASSWORD('{password}');"
                    f"GRANT ALL ON aiomsg_test.* TO '{user}'@'127.0.0.1';"
                )
            _run([client, "--no-defaults", f"--socket={sock}", "-uroot", "-e", "\n".join(sql)])
            users = {**MARIADB_USERS, "ed25519_user": ED25519_PASSWORD}
            yield MariaDB(port=port, users=users)


# --- Mosquitto --------------------------------------------------------------------------


@dataclass
class Mosquitto:
    """A running Mosquitto broker; ``log`` holds its log (every packet it receives)."""

    port: int
    log: Path
    host: str = "127.0.0.1"


@contextlib.contextmanager
def mosquitto_server() -> Iterator[Mosquitto]:
    """A Mosquitto broker that listens on 127.0.0.1 only, anonymous, without persistence."""
    mosquitto = find_program("mosquitto", "mosquitto")
    with _owned_temp_dir("aiomsg-mosquitto-", "mosquitto") as tmp:
        port = free_port()
        config = tmp / "mosquitto.conf"
        config.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nlog_type all\nconnection_messages true\n"
        )
        log = tmp / "mosquitto.log"
        with _running([mosquitto, "-c", str(config)], log, cwd=tmp) as process:
            _wait_until_listening("mosquitto", process, port, log)
            yield Mosquitto(port=port, log=log)
