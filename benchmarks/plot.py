"""Draw the performance page's charts from the JSON the benchmarks save.

``python3 dev.py bench benchmarks/plot.py`` reads ``benchmarks/results/*.json``
(written by ``codecs.py``, ``fronts.py``, ``chat.py`` and ``connections.py``),
copies them to ``docs/_static/perf/`` (the figures the docs show, kept with
them) and draws one PNG per workload there. A missing result is skipped with
a line saying which benchmark makes it. ``--from docs/_static/perf`` redraws the
committed figures from the committed JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "_static" / "perf"
AIOMSG = "#2a7ab0"
OTHER = "#b0b0b0"


def bars(
    path: Path,
    title: str,
    xlabel: str,
    rows: list[tuple[str, float]],
    is_ours: Callable[[str], bool],
) -> None:
    """One horizontal bar per row, aiomsg's in colour, the others grey, largest on top."""
    rows = sorted(rows, key=lambda r: r[1])
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(rows) + 1.2))
    names = [name for name, _ in rows]
    values = [value for _, value in rows]
    ax.barh(names, values, color=[AIOMSG if is_ours(n) else OTHER for n in names])
    top = max(values) if values else 1
    for y, value in enumerate(values):
        label = f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
        ax.text(value + top * 0.01, y, label, va="center", fontsize=8)
    ax.set_xlim(0, top * 1.18)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"drew {path.relative_to(ROOT)}")


def _short(value: float) -> str:
    """An axis tick: 2M, 500k, 12."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _label(framing: str) -> str:
    """A framing's repr, short enough for an axis: no max_size, at most 48 characters."""
    label = re.sub(r",? ?max_size=\d+", "", framing).replace("()", "")
    return label if len(label) <= 48 else label[:45] + "..."


def plot_codecs(data: dict[str, Any], out: Path) -> None:
    rows = [(_label(r["framing"]), r["msgs_per_s"]) for r in data["small"]]
    bars(
        out / "codecs.png",
        "Decoding 200,000 100-byte messages (one process, no I/O)",
        "messages per second",
        rows,
        lambda name: not name.startswith("hand-written"),
    )


def plot_fronts(data: dict[str, Any], out: Path) -> None:
    for workload, unit, key in (
        ("small", "messages per second", "msgs_per_s"),
        ("large", "MB per second", "mb_per_s"),
        ("echo", "round trips per second", "median_rt_per_s"),
    ):
        rows = [
            (r["impl"], r.get(key) or r.get("rt_per_s") or r.get("msgs_per_s") or 0.0)
            for r in data["rows"]
            if r["workload"] == workload and r["loop"] == "uvloop"
        ]
        if rows:
            bars(
                out / f"fronts-{workload}.png",
                f"Server fronts, {workload} workload, uvloop (server in its own process)",
                unit,
                rows,
                lambda name: name.startswith("aiomsg"),
            )


def plot_chat(data: dict[str, Any], out: Path) -> None:
    rows = [(r["name"], r["lines_per_s"]) for r in data["rows"] if "lines_per_s" in r]
    bars(
        out / "chat.png",
        f"Chat servers, {data['clients']} clients, {data['talkers']} talking: lines delivered",
        "lines delivered per second",
        rows,
        lambda name: name.startswith("aiomsg"),
    )


def plot_connections(data: dict[str, Any], out: Path) -> None:
    rows = [
        (f"{r['impl']} ({r['loop']})", r["kib_per_connection"])
        for r in data["rows"]
        if r.get("kib_per_connection") is not None
    ]
    bars(
        out / "connections.png",
        f"Memory per idle connection ({data['connections']:,} connections), KiB — lower is better",
        "KiB per connection",
        rows,
        lambda name: name.startswith("aiomsg"),
    )


PLOTS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "codecs": plot_codecs,
    "fronts": plot_fronts,
    "chat": plot_chat,
    "connections": plot_connections,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from", dest="source", type=Path, default=RESULTS)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, plot in PLOTS.items():
        source = args.source / f"{name}.json"
        if not source.exists():
            print(f"no {source}: run python3 dev.py bench benchmarks/{name}.py first")
            continue
        if source.resolve() != (OUT / source.name).resolve():
            shutil.copyfile(source, OUT / source.name)
        plot(json.loads(source.read_text()), OUT)


if __name__ == "__main__":
    main()
