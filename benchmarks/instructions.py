"""Instructions per message, counted by valgrind: ``python3 dev.py bench instructions``.

The echo targets of ``fronts.py`` differ by 1-3 µs of server CPU per round trip,
which the load of a shared machine hides. This counts instead: each server of
``fronts.py`` runs under ``valgrind --tool=callgrind`` for two numbers of messages
(``--few`` and ``--many``), and the difference of the two totals, divided by the
difference of the counts, is the user-space instructions per message (start-up and
import cost cancel out). ``--workload echo`` (the default) sends one message at a time
and waits for it to come back (instructions per round trip); ``--workload small``
sends them all at once, pipelined (instructions per message received), for the
rows whose targets are set on that workload (trio, anyio's socket stream). The
kernel's side (the system calls, the same for every server) is not counted, so the
ratios here are larger than the CPU ratios of ``fronts.py``: they show where aiomsg's
own work stands, not the whole.

``--detail IMPL`` also prints the C functions that gained the most instructions per
message for that server (``_PyEval_EvalFrameDefault`` is Python bytecode).

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
    "aiomsg-anyio-trio": "aiomsg serve_framed on trio",
    "trio-loop": "hand-written trio loop",
    "aiomsg-anyio-socket": "FramedStream on anyio socket",
    "anyio-loop": "hand-written anyio loop",
}
# The servers each workload runs by default.
DEFAULT = {
    "echo": "raw,hand-parser,aiomsg-protocol,readexactly,aiomsg-streams",
    "small": "aiomsg-anyio-trio,trio-loop,aiomsg-anyio-socket,anyio-loop",
}
# (candidate, baseline) pairs printed as ratios of instructions per round trip.
PAIRS = [
    ("aiomsg-protocol", "hand-parser"),
    ("aiomsg-protocol", "raw"),
    ("aiomsg-streams", "readexactly"),
    ("aiomsg-anyio-trio", "trio-loop"),
    ("aiomsg-anyio-socket", "anyio-loop"),
]


def counted(impl: str, loop: str, workload: str, count: int, out: Path) -> dict[str, int]:
    """Run one ``fronts.py`` server under callgrind for ``count`` messages (echoed, or
    pipelined); return its instructions per C function (callgrind's exclusive counts)."""
    server = [sys.executable, str(FRONTS), "--serve", impl, "--loop", loop, "--workload", workload]
    server += ["--count", str(count)]  # the server returns (and callgrind writes) after them
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
            if workload == "echo":
                fronts.echo_round_trips(sock, MESSAGE, count, impl)
            else:
                sock.sendall(MESSAGE * count)
            proc.stdout.readline()  # the server's report: it is returning
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return per_function(out)


def per_function(path: Path) -> dict[str, int]:
    """Exclusive instructions per function name, from ``callgrind_annotate``."""
    # --auto=no: no annotated source, whose per-line counts (printed when the C
    # speedups were built with debug information) would be counted twice.
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", str(path)],
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
    parser.add_argument("--workload", choices=sorted(DEFAULT), default="echo")
    parser.add_argument("--only", default="", help="comma-separated servers (the workload's)")
    parser.add_argument("--loop", default="uvloop", help="for the asyncio servers")
    parser.add_argument("--few", type=int, default=0, help="default 500 (echo), 20,000")
    parser.add_argument("--many", type=int, default=0, help="default 2,500 (echo), 60,000")
    parser.add_argument("--detail", default="", help="a server whose top functions to print")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        sys.exit("needs valgrind and callgrind_annotate: apt-get install valgrind")
    echo = args.workload == "echo"
    few = args.few or (500 if echo else 20_000)
    many = args.many or (2_500 if echo else 60_000)
    unit = "round trip" if echo else "message"
    per_message: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for impl in (args.only or DEFAULT[args.workload]).split(","):
            runs = [
                counted(impl, args.loop, args.workload, n, Path(tmp, f"{impl}.{n}"))
                for n in (few, many)
            ]
            delta = {k: (runs[1].get(k, 0) - runs[0].get(k, 0)) / (many - few) for k in runs[1]}
            per_message[impl] = sum(delta.values())
            print(f"{NAMES.get(impl, impl):<30}{per_message[impl]:>12,.0f} instructions/{unit}")
            if impl == args.detail:
                for name, n in sorted(delta.items(), key=lambda kv: -kv[1])[:25]:
                    print(f"    {n:>10,.0f}  {name}")
    between = f"the {many - few:,} {unit}s between two runs"
    print(f"\n({args.workload}, {args.loop}; user space only, {between})")
    for candidate, baseline in PAIRS:
        if candidate in per_message and baseline in per_message:
            ratio = per_message[baseline] / per_message[candidate]
            print(f"{NAMES[candidate]} / {NAMES[baseline]}: {ratio:.2f}x (fewer is faster)")


if __name__ == "__main__":
    main()
