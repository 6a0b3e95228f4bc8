"""Benchmark of the sans-I/O codecs (no sockets): ``python3 dev.py bench codecs``.

(a) 200,000 messages of 100 bytes, fed in 64 KiB chunks: messages per second for
    every framing, next to the loop people write by hand (bytearray, slice the
    header, copy the body, ``del buf[:n]``), measured in the same run.
(b) One 8 MiB and one 16 MiB message fed in 4 KiB chunks: the time ratio
    16 MiB / 8 MiB. Linear cost gives about 2; quadratic cost gives about 4.

Each figure is the best of several repeats, to cut the noise of a shared machine.

``python3 dev.py bench codecs LengthField`` (any text) runs only (a), for the
framings whose repr contains that text, next to the hand-written loop, and
saves nothing.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiomsg
from aiomsg.framing import Framing, speedups_active

COUNT = 200_000
SIZE = 100
CHUNK = 64 * 1024
REPEATS = 7
BIG_CHUNK = 4096
MiB = 1024 * 1024


def naive_length_prefixed(chunks: list[bytes]) -> list[bytes]:
    """The hand-written decoder most people write for a 4-byte big-endian prefix."""
    buf = bytearray()
    out: list[bytes] = []
    for chunk in chunks:
        buf += chunk
        while len(buf) >= 4:
            size = int.from_bytes(buf[:4], "big")
            if len(buf) < 4 + size:
                break
            out.append(bytes(buf[4 : 4 + size]))
            del buf[: 4 + size]
    return out


def decode_all(framing: Framing, chunks: list[bytes]) -> list[bytes]:
    decoder = framing.decoder()
    out: list[bytes] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    out += decoder.feed_eof()
    return out


def decode_pure_python(framing: Framing, chunks: list[bytes]) -> list[bytes]:
    """decode_all() with the pure-Python decoder (the fallback without the C speedups)."""
    decoder = framing.decoder(pure_python=True)
    out: list[bytes] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.feed_eof()


def split(wire: bytes, size: int) -> list[bytes]:
    return [wire[i : i + size] for i in range(0, len(wire), size)]


def best_time(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def small_framings() -> list[Framing]:
    return [
        aiomsg.LengthPrefixed(4),
        aiomsg.LengthPrefixed(2, "little"),
        aiomsg.FixedLength(SIZE),
        aiomsg.Lines(),
        aiomsg.Delimited(b"\r\n"),
        aiomsg.AsciiLengthPrefixed(5),
        aiomsg.Netstring(),
        aiomsg.Varint(),
        aiomsg.TypePrefixed({1: aiomsg.LengthPrefixed(2)}),
        aiomsg.TypePrefixed({1: SIZE - 1}),
        # Real protocols' shapes (LengthField): a type byte kept, a counted field after it.
        aiomsg.recipes.postgres(),
        aiomsg.recipes.mysql(),
        aiomsg.recipes.mqtt(),
    ]


def big_framings() -> list[Framing]:
    limit = 16 * MiB + 1
    return [
        aiomsg.LengthPrefixed(4, max_size=limit),
        aiomsg.FixedLength(8 * MiB, max_size=limit),  # replaced per size below
        aiomsg.Lines(max_size=limit),
        aiomsg.Delimited(b"\r\n", max_size=limit),
        aiomsg.AsciiLengthPrefixed(8, max_size=limit),
        aiomsg.Netstring(max_size=limit),
        aiomsg.Varint(max_size=limit),
        aiomsg.TypePrefixed({1: aiomsg.LengthPrefixed(4, max_size=limit)}, max_size=limit),
        aiomsg.recipes.postgres(max_size=limit),
        aiomsg.recipes.mqtt(max_size=limit),
        aiomsg.UntilEOF(max_size=limit),
    ]


def message_for(framing: Framing, size: int) -> bytes:
    body = b"m" * size
    return b"\x01" + body[1:] if isinstance(framing, aiomsg.TypePrefixed) else body


# Each framing's pure-Python ratio to the hand-written loop before the one C core
# (commit 8588b23, this benchmark, best of two runs on the reference machine): the
# pure-Python fallback must stay within 15% of it.
PURE_PYTHON_BEFORE = {
    "LengthPrefixed(4, 'big', max_size=16777216)": 2.11,
    "LengthPrefixed(2, 'little', max_size=65535)": 2.16,
    "FixedLength(100)": 3.08,
    "Lines(newline=b'\\n', max_size=16777216)": 1.63,
    "Delimited(b'\\r\\n', max_size=16777216)": 1.50,
    "AsciiLengthPrefixed(5, max_size=99999)": 1.48,
    "Netstring(max_size=16777216)": 0.96,
    "Varint(max_size=16777216)": 1.42,
    "TypePrefixed({1: LengthPrefixed(2, 'big', max_size=65535)}, max_size=16777216)": 0.81,
    "TypePrefixed({1: 99}, max_size=16777216)": 2.42,
}
C_TARGET = 3.0  # every framing, with the C core, against the hand-written loop
PURE_PYTHON_TOLERANCE = 0.85


def bench_small(only: str = "") -> list[dict[str, object]]:
    payload = bytes(range(32, 32 + SIZE))  # printable: no delimiter inside
    naive_wire = aiomsg.LengthPrefixed(4).encode_many([payload] * COUNT)
    naive_chunks = split(naive_wire, CHUNK)
    assert naive_length_prefixed(naive_chunks) == [payload] * COUNT
    candidates: list[tuple[str, str, Callable[[], object]]] = [
        ("hand-written loop (4-byte prefix)", "", lambda: naive_length_prefixed(naive_chunks))
    ]
    for framing in small_framings():
        if only not in repr(framing):
            continue
        message = message_for(framing, SIZE)
        chunks = split(framing.encode_many([message] * COUNT), CHUNK)
        assert decode_pure_python(framing, chunks) == [message] * COUNT
        if speedups_active():
            assert decode_all(framing, chunks) == [message] * COUNT
            candidates.append((repr(framing), "C", lambda f=framing, c=chunks: decode_all(f, c)))  # type: ignore[misc]
        candidates.append(
            (repr(framing), "Python", lambda f=framing, c=chunks: decode_pure_python(f, c))  # type: ignore[misc]
        )
    # Rounds that time every candidate once each, so that a slow spell of the
    # (shared, noisy) machine hits all of them rather than one.
    best = [float("inf")] * len(candidates)
    for _ in range(REPEATS):
        for i, (_, _, fn) in enumerate(candidates):
            best[i] = min(best[i], best_time(fn, repeats=1))
    rows: list[dict[str, object]] = []
    for (name, impl, _), seconds in zip(candidates, best, strict=True):
        ratio = best[0] / seconds
        if impl == "C":
            target = f">= {C_TARGET:.1f}x: {'met' if ratio >= C_TARGET else 'NOT MET'}"
        elif impl == "Python" and name in PURE_PYTHON_BEFORE:
            before = PURE_PYTHON_BEFORE[name]
            ok = ratio >= PURE_PYTHON_TOLERANCE * before
            target = f"{ratio / before:.0%} of {before:.2f}x before: {'met' if ok else 'NOT MET'}"
        else:
            target = ""
        rows.append(
            {
                "framing": name,
                "implementation": impl,
                "msgs_per_s": COUNT / seconds,
                "ratio": ratio,
                "target": target,
            }
        )
    return rows


def bench_big() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for framing in big_framings():
        times = {}
        for size in (8 * MiB, 16 * MiB):
            f = (
                aiomsg.FixedLength(size, max_size=size)
                if isinstance(framing, aiomsg.FixedLength)
                else framing
            )
            message = message_for(f, size)
            chunks = split(f.encode(message), BIG_CHUNK)
            result = decode_all(f, chunks)
            assert result == [message]
            del result
            times[size] = best_time(lambda f=f, c=chunks: decode_all(f, c), repeats=3)  # type: ignore[misc]
        name = "FixedLength(size)" if isinstance(framing, aiomsg.FixedLength) else repr(framing)
        rows.append(
            {
                "framing": name,
                "8MiB_s": times[8 * MiB],
                "16MiB_s": times[16 * MiB],
                "ratio": times[16 * MiB] / times[8 * MiB],
            }
        )
    return rows


def main() -> None:
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    print(
        f"(a) {COUNT:,} messages of {SIZE} bytes in {CHUNK // 1024} KiB chunks, best of {REPEATS}"
    )
    small = bench_small(only)
    print(f"C speedups: {'on' if speedups_active() else 'off (not built)'}")
    print(f"{'framing':<62} {'impl':<6} {'msgs/s':>12} {'vs hand':>8}  target")
    for row in small:
        print(
            f"{row['framing']!s:<62} {row['implementation']!s:<6} {row['msgs_per_s']:>12,.0f}"
            f" {row['ratio']:>7.2f}x  {row['target']}"
        )
    if only:
        return  # a selection: (b) and the saved results are the whole run's
    print()
    print(f"(b) one message of 8 MiB and of 16 MiB in {BIG_CHUNK} B chunks (linear: ratio ~2)")
    big = bench_big()
    print(f"{'framing':<62} {'8 MiB s':>9} {'16 MiB s':>9} {'ratio':>6}")
    for row in big:
        print(
            f"{row['framing']!s:<62} {row['8MiB_s']:>9.4f} {row['16MiB_s']:>9.4f}"
            f" {row['ratio']:>6.2f}"
        )
    out = Path(__file__).parent / "results" / "codecs.json"
    out.write_text(json.dumps({"python": sys.version, "small": small, "big": big}, indent=2))
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
