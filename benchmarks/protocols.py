"""Rows per second from a real PostgreSQL: ``python3 dev.py bench benchmarks/protocols.py``.

``SELECT generate_series(1, N)`` (a million rows by default) read and printed
one row a line by each candidate, in its own process, against one throwaway
PostgreSQL started here (tests/real_servers.py; Debian package ``postgresql``):

* ``examples/protocols/postgres_query.py``: the aiomsg example client;
* ``psql -At``: PostgreSQL's own client (libpq, C);
* asyncpg (if installed: the ``bench`` extra), rows fetched then printed the same way;
* and, for scale, the framing alone: ``recipes.postgres()`` decoding the same
  number of DataRow messages from 64 KiB chunks, in this process.

Each figure is the best of ``--repeats`` runs, taken in turns; every run's
output is counted (N lines). Report only: the point is that the framing is a
small part of what the example client spends, not a target to meet. Saves
``benchmarks/results/protocols.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.real_servers starts the server

from aiomsg import recipes  # noqa: E402
from tests.real_servers import Postgres, postgres_server  # noqa: E402

USER = "trust_user"  # no authentication cost in the figures

ASYNCPG_CLIENT = """
import asyncio, sys, asyncpg
async def main(port, sql):
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user=sys.argv[3], database="postgres")
    rows = await conn.fetch(sql)
    sys.stdout.write("".join(f"{row[0]}\\n" for row in rows))
    await conn.close()
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


def commands(server: Postgres, sql: str) -> dict[str, list[str]]:
    port = str(server.port)
    found = {
        "aiomsg example client": [
            sys.executable, str(ROOT / "examples" / "protocols" / "postgres_query.py"),
            "--host", "127.0.0.1", "--port", port, "--user", USER, "--database", "postgres", sql,
        ],
        "psql -At": [
            str(server.bin_dir / "psql"), "-At", "-h", "127.0.0.1", "-p", port, "-U", USER,
            "-d", "postgres", "-c", sql,
        ],
    }  # fmt: skip
    if importlib.util.find_spec("asyncpg") is not None:
        found["asyncpg (fetch, then print)"] = [
            sys.executable,
            "-c",
            ASYNCPG_CLIENT,
            port,
            sql,
            USER,
        ]
    else:
        print("asyncpg is not installed (pip install asyncpg, or the bench extra): left out")
    return found


def measure(command: list[str], rows: int) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, timeout=600, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or done.stdout.count(b"\n") != rows:
        raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')}")
    return seconds


def framing_alone(rows: int) -> float:
    """Decode ``rows`` DataRow messages (one int4 column as text) from 64 KiB chunks."""
    framing = recipes.postgres()
    wire = b"".join(
        framing.encode(b"D" + struct.pack("!hi", 1, len(v)) + v)
        for v in (str(i).encode() for i in range(1, rows + 1))
    )
    decoder = framing.decoder()
    start = time.perf_counter()
    decoded = 0
    for at in range(0, len(wire), 65536):
        decoded += len(decoder.feed(wire[at : at + 65536]))
    seconds = time.perf_counter() - start
    assert decoded == rows
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sql = f"SELECT generate_series(1, {args.rows})"
    best: dict[str, float] = {}
    with postgres_server(ssl=False) as server:
        candidates = commands(server, sql)
        for _ in range(args.repeats):  # in turns: a burst of load hits every candidate alike
            for name, command in candidates.items():
                best[name] = min(best.get(name, float("inf")), measure(command, args.rows))
            framing = "framing alone (recipes.postgres() decoder)"
            best[framing] = min(best.get(framing, float("inf")), framing_alone(args.rows))
    print(f"\n{sql}: best of {args.repeats}, each a whole process (start-up included)")
    print(f"{'candidate':<45}{'rows/s':>14}{'seconds':>10}{'vs psql':>10}")
    for name, seconds in best.items():
        ratio = best["psql -At"] / seconds
        print(f"{name:<45}{args.rows / seconds:>14,.0f}{seconds:>10.3f}{ratio:>9.2f}x")
    share = best["framing alone (recipes.postgres() decoder)"] / best["aiomsg example client"]
    print(f"\nthe framing is {share:.0%} of the example client's time")
    results = {
        "python": sys.version,
        "cpus": os.cpu_count(),
        "rows": args.rows,
        "seconds": best,
        "rows_per_s": {name: args.rows / s for name, s in best.items()},
    }
    out = ROOT / "benchmarks" / "results" / "protocols.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
