"""The example clients of examples/protocols/, run as a user would, against real servers:
PostgreSQL, MariaDB and Mosquitto, started on free loopback ports (tests/real_servers.py)."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from aiomsg import recipes

from .real_servers import (
    MariaDB,
    Mosquitto,
    Postgres,
    free_port,
    mariadb_server,
    mosquitto_server,
    postgres_server,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "protocols"
TIMEOUT = 60.0


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.endswith("\n"), done.stderr
    for word in words:
        assert word in done.stderr


# --- PostgreSQL -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


def psql(server: Postgres, user: str, *args: str, password: str | None = None) -> list[str]:
    command = ["--host", server.host, "--port", str(server.port), "--user", user]
    secret = server.users[user] if password is None else password
    if secret is not None:
        command += ["--password", secret]
    return [*command, "--database", "postgres", *args]


WHERE_AM_I = "SELECT 1+1, current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


@pytest.mark.parametrize("tls", [[], ["--tls"]], ids=["plain", "tls"])
@pytest.mark.parametrize("user", ["trust_user", "cleartext_user", "md5_user", "scram_user"])
def test_postgres_each_authentication_with_and_without_tls(
    postgres: Postgres, user: str, tls: list[str]
) -> None:
    done = run("postgres_query.py", *psql(postgres, user, *tls, WHERE_AM_I))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"2\t{user}\t{'t' if tls else 'f'}\n"


@pytest.mark.parametrize("user", ["cleartext_user", "md5_user", "scram_user"])
def test_postgres_wrong_password_is_one_line_and_exit_1(postgres: Postgres, user: str) -> None:
    done = run("postgres_query.py", *psql(postgres, user, "SELECT 1", password="wrong"))
    assert_one_line_error(done, "FATAL", "password authentication failed", user)


def test_postgres_ten_thousand_rows(postgres: Postgres) -> None:
    sql = "SELECT i, i * 2 FROM generate_series(1, 10000) AS i"
    done = run("postgres_query.py", *psql(postgres, "scram_user", sql))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{i}\t{i * 2}" for i in range(1, 10_001)]


def test_postgres_null_is_an_empty_field_and_text_is_utf8(postgres: Postgres) -> None:
    done = run("postgres_query.py", *psql(postgres, "trust_user", "SELECT 1, NULL, 'ü b', ''"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1\t\tü b\t\n"


def test_postgres_statement_without_rows_prints_nothing(postgres: Postgres) -> None:
    done = run("postgres_query.py", *psql(postgres, "trust_user", "CREATE TEMP TABLE t (a int)"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_postgres_server_error_is_one_line_and_exit_1(postgres: Postgres) -> None:
    done = run("postgres_query.py", *psql(postgres, "trust_user", "SELECT 1/0"))
    assert_one_line_error(done)
    assert done.stderr == "ERROR: division by zero\n"


def test_postgres_tls_ca_verifies_the_certificate(postgres: Postgres, tmp_path: Path) -> None:
    ours = ["--tls-ca", str(postgres.ca_file)]
    done = run("postgres_query.py", *psql(postgres, "scram_user", *ours, WHERE_AM_I))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2\tscram_user\tt\n"
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    done = run(
        "postgres_query.py", *psql(postgres, "scram_user", "--tls-ca", str(other), "SELECT 1")
    )
    assert_one_line_error(done, "CERTIFICATE_VERIFY_FAILED")


def test_postgres_tls_refused_by_a_server_without_ssl() -> None:
    with postgres_server(ssl=False) as server:
        done = run("postgres_query.py", *psql(server, "trust_user", "--tls", "SELECT 1"))
        assert_one_line_error(done, "does not accept TLS")
        done = run("postgres_query.py", *psql(server, "trust_user", "SELECT 1"))  # plaintext works
        assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr


def test_postgres_database_defaults_to_the_user_name(postgres: Postgres) -> None:
    args = ["--host", postgres.host, "--port", str(postgres.port), "--user", "trust_user"]
    done = run("postgres_query.py", *args, "SELECT 1")
    assert_one_line_error(done, "FATAL", 'database "trust_user" does not exist')


@contextlib.contextmanager
def rogue_server(replies: list[Callable[[bytes], bytes]]) -> Iterator[int]:
    """A peer on a free loopback port that answers each read with its next reply (made from
    what it read), then closes: a server that breaks the protocol on purpose."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        with contextlib.suppress(OSError), listener.accept()[0] as peer:
            peer.settimeout(TIMEOUT)
            for reply in replies:
                if not (data := peer.recv(65536)):  # loopback: each small message whole
                    return
                peer.sendall(reply(data))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(TIMEOUT)
        listener.close()


def test_postgres_hostile_scram_iterations_and_garbage_end_in_one_line() -> None:
    framing = recipes.postgres()
    sasl = framing.encode(b"R" + struct.pack("!i", 10) + b"SCRAM-SHA-256\0\0")

    def server_first(client_first: bytes) -> bytes:
        nonce = client_first.rsplit(b"r=", 1)[1]  # extended, as a real server does
        rest = b"r=" + nonce + b"x,s=c2FsdA==,i=2000000000"  # hours of PBKDF2
        return framing.encode(b"R" + struct.pack("!i", 11) + rest)

    args = ["--user", "u", "--password", "p", "SELECT 1"]
    with rogue_server([lambda _: sasl, server_first]) as port:
        done = run("postgres_query.py", "--host", "127.0.0.1", "--port", str(port), *args)
    assert_one_line_error(done, "refusing 2000000000 iterations")
    with rogue_server([lambda _: framing.encode(b"R\x00")]) as port:  # a request cut short
        done = run("postgres_query.py", "--host", "127.0.0.1", "--port", str(port), *args)
    assert_one_line_error(done, "malformed")


# --- MariaDB ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDB]:
    with mariadb_server() as server:
        yield server


def mysql(server: MariaDB, user: str, *args: str, password: str | None = None) -> list[str]:
    command = ["--host", server.host, "--port", str(server.port), "--user", user]
    secret = server.users[user] if password is None else password
    if secret:
        command += ["--password", secret]
    return [*command, *args]


@pytest.mark.parametrize("user", ["native_user", "nopass_user"])
def test_mysql_native_password_and_no_password(mariadb: MariaDB, user: str) -> None:
    sql = "SELECT 1+1, CURRENT_USER(), DATABASE()"
    done = run("mysql_query.py", *mysql(mariadb, user, "--database", mariadb.database, sql))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"2\t{user}@127.0.0.1\t{mariadb.database}\n"


def test_mysql_without_a_database_and_null(mariadb: MariaDB) -> None:
    done = run("mysql_query.py", *mysql(mariadb, "native_user", "SELECT DATABASE(), 'ü b', ''"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\tü b\t\n"  # no database: NULL, an empty field


def test_mysql_wrong_password_is_one_line_and_exit_1(mariadb: MariaDB) -> None:
    done = run("mysql_query.py", *mysql(mariadb, "native_user", "SELECT 1", password="wrong"))
    assert_one_line_error(done, "ERROR 1045 (28000)", "Access denied")


def test_mysql_other_plugin_after_an_auth_switch_is_refused_in_one_line(mariadb: MariaDB) -> None:
    done = run("mysql_query.py", *mysql(mariadb, "ed25519_user", "SELECT 1"))
    assert_one_line_error(done, "unsupported authentication plugin client_ed25519")


def test_mysql_ten_thousand_rows(mariadb: MariaDB) -> None:
    sql = "SELECT seq, seq * 2 FROM seq_1_to_10000"  # MariaDB's SEQUENCE engine
    done = run(
        "mysql_query.py", *mysql(mariadb, "native_user", "--database", mariadb.database, sql)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{i}\t{i * 2}" for i in range(1, 10_001)]


def test_mysql_statements_without_rows_then_rows(mariadb: MariaDB) -> None:
    db = ["--database", mariadb.database]
    for sql in ("CREATE TABLE t (a INT)", "INSERT INTO t VALUES (1), (2), (NULL)"):
        done = run("mysql_query.py", *mysql(mariadb, "native_user", *db, sql))
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = run("mysql_query.py", *mysql(mariadb, "nopass_user", *db, "SELECT a FROM t ORDER BY a"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\n1\n2\n"  # NULL sorts first


def test_mysql_server_error_is_one_line_and_exit_1(mariadb: MariaDB) -> None:
    done = run("mysql_query.py", *mysql(mariadb, "native_user", "SELEC 1"))
    assert_one_line_error(done, "ERROR 1064 (42000)", "SQL syntax")


# --- Mosquitto --------------------------------------------------------------------------


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    with mosquitto_server() as server:
        yield server


@contextlib.contextmanager
def subscriber(broker: Mosquitto, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A running ``mqtt.py subscribe``, once the broker has confirmed its subscription."""
    command = [sys.executable, str(EXAMPLES / "mqtt.py"), "--host", broker.host]
    command += ["--port", str(broker.port), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], TIMEOUT)
        assert ready, "the subscriber did not subscribe in time"
        line = process.stderr.readline()
        assert line.startswith("subscribed to "), line + process.stderr.read()
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def publish(broker: Mosquitto, *args: str) -> None:
    done = run("mqtt.py", "--host", broker.host, "--port", str(broker.port), "publish", *args)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def wait_for_log(broker: Mosquitto, text: str, count: int) -> str:
    """The broker's log once ``text`` is in it ``count`` times (it logs as it reads)."""
    deadline = time.monotonic() + TIMEOUT
    while (log := broker.log.read_text()).count(text) < count:
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    return log


# 5 bytes, then over 128 (a two-byte remaining length) and over 16 KiB (three bytes).
PAYLOADS = ["hello", "m" * 200, "q" * 20_000]


def test_mqtt_payload_sizes_cover_one_two_and_three_byte_lengths() -> None:
    framing = recipes.mqtt()
    publish_packet = [b"\x30" + b"\x00\x01t" + p.encode() for p in PAYLOADS]
    assert [len(framing.encode(p)) - len(p) for p in publish_packet] == [1, 2, 3]


@pytest.mark.parametrize("qos", ["0", "1"])
def test_mqtt_publish_and_subscribe(mosquitto: Mosquitto, qos: str) -> None:
    with subscriber(mosquitto, "subscribe", "news/today", "--count", str(len(PAYLOADS))) as sub:
        for payload in PAYLOADS:
            publish(mosquitto, "news/today", payload, "--qos", qos)
        out, err = sub.communicate(timeout=TIMEOUT)
    assert (sub.returncode, err) == (0, "")
    assert sorted(out.splitlines()) == sorted(PAYLOADS)
    # Each client's packets are logged in order: after its DISCONNECT, all its PUBACKs are in.
    log = wait_for_log(mosquitto, "Received DISCONNECT from", len(PAYLOADS) + 1)
    publishers_acked = log.count("Sending PUBACK to")
    subscriber_acked = log.count("Received PUBACK from")
    assert (publishers_acked, subscriber_acked) == ((3, 3) if qos == "1" else (0, 0))


def test_mqtt_keepalive_pings_keep_an_idle_subscriber_connected(mosquitto: Mosquitto) -> None:
    # The broker drops a client silent for 1.5 keepalives: four pings, 0.5 s apart, span 2 s.
    with subscriber(mosquitto, "--keepalive", "1", "subscribe", "idle", "--count", "1") as sub:
        wait_for_log(mosquitto, "Received PINGREQ", 4)
        assert sub.poll() is None
        publish(mosquitto, "idle", "still here")
        out, err = sub.communicate(timeout=TIMEOUT)
    assert (sub.returncode, out, err) == (0, "still here\n", "")
    assert "Sending PINGRESP" in mosquitto.log.read_text()


def test_mqtt_no_broker_is_one_line_and_exit_1() -> None:
    done = run("mqtt.py", "--host", "127.0.0.1", "--port", str(free_port()), "publish", "t", "m")
    assert_one_line_error(done)
