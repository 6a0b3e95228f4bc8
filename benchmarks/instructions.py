"""Instructions per echo round trip, counted by valgrind: ``python3 dev.py bench instructions``.

The echo targets of ``fronts.py`` differ by 1-3 µs of server CPU per round trip,
which the load of a shared machine hides. This counts instead: each server of
``fronts.py`` runs under ``valgrind --tool=callgrind`` for two numbers of round trips
(``--few`` and ``--many``), and the difference of the two totals, divided by the
difference of the counts, is the user-space instructions per round trip (start-up and
import cost cancel out). The kernel's side of a round trip (the system calls, the
same for every server) is not counted, so the ratios here are larger than the CPU
ratios of ``fronts.py``: they show where aiomsg's own work stands, not the whole.

``--detail IMPL`` also prints the C functions that gained the most instructions per
round trip for that server (``_PyEval_EvalFrameDefault`` is Python bytecode).

Needs valgrind (``apt-get install valgrind``); about a minute per server.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import fronts  # beside this file: the echo servers and their client loop

FRONTS = Path(__file__).with_name("fronts.py")
MESSAGE = struct.pack(">I", 100) + bytes(100)
NAMES = {
    "raw": "raw bytes (ceiling)",
    "hand-parser": "hand-written data_received",
    "aiomsg-protocol": "aiomsg MessageProtocol",
    "readexactly": "hand-written readexactly",
    "aiomsg-streams": "aiomsg Streams",
}
# (candidate, baseline) pairs printed as ratios of instructions per round trip.
PAIRS = [
    ("aiomsg-protocol", "hand-parser"),
    ("aiomsg-protocol", "raw"),
    ("aiomsg-streams", "readexactly"),
]


def counted(impl: str, loop: str, round_trips: int, out: Path) -> dict[str, int]:
    """Run one ``fronts.py`` echo server under callgrind for ``round_trips``; return its
    instructions per C function (callgrind's exclusive counts)."""
    server = [sys.executable, str(FRONTS), "--serve", impl, "--loop", loop, "--workload", "echo"]
    server += ["--count", str(round_trips)]  # the server returns (and callgrind writes) after them
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *server],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    try:
        port = json.loads(proc.stdout.readline())["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fronts.echo_round_trips(sock, MESSAGE, round_trips, impl)
            proc.stdout.readline()  # the server's report: it is returning
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return per_function(out)


def per_function(path: Path) -> dict[str, int]:
    """Exclusive instructions per function name, from ``callgrind_annotate``."""
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*?)(?: \[.*)?$", line)
        if m is None or "PROGRAM TOTALS" in line:
            continue
        name = m.group(2).rsplit(":", 1)[-1]
        counts[name] = counts.get(name, 0) + int(m.group(1).replace(",", ""))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(NAMES), help="comma-separated servers")
    parser.add_argument("--loop", default="uvloop")
    parser.add_argument("--few", type=int, default=500)
    parser.add_argument("--many", type=int, default=2500)
    parser.add_argument("--detail", default="", help="a server whose top functions to print")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        sys.exit("needs valgrind and callgrind_annotate: apt-get install valgrind")
    per_rt: dict[str, float] = {}
    steps = args.many - args.few
    with tempfile.TemporaryDirectory() as tmp:
        for impl in args.only.split(","):
            few = counted(impl, args.loop, args.few, Path(tmp, f"{impl}.few"))
            many = counted(impl, args.loop, args.many, Path(tmp, f"{impl}.many"))
            delta = {k: (many.get(k, 0) - few.get(k, 0)) / steps for k in few.keys() | many}
            per_rt[impl] = sum(delta.values())
            print(f"{NAMES.get(impl, impl):<30}{per_rt[impl]:>12,.0f} instructions/round trip")
            if impl == args.detail:
                for name, n in sorted(delta.items(), key=lambda kv: -kv[1])[:25]:
                    print(f"    {n:>10,.0f}  {name}")
    print(f"\n({args.loop}; user space only, the {steps:,} round trips between two runs)")
    for candidate, baseline in PAIRS:
        if candidate in per_rt and baseline in per_rt:
            ratio = per_rt[baseline] / per_rt[candidate]
            print(f"{NAMES[candidate]} / {NAMES[baseline]}: {ratio:.2f}x (fewer is faster)")


if __name__ == "__main__":
    main()
