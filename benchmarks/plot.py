"""The performance page's figures, charts and tables, from the JSON the benchmarks save.

``python3 dev.py bench benchmarks/plot.py`` reads ``benchmarks/results/*.json``
(written by ``codecs.py``, ``fronts.py``, ``chat.py`` and ``connections.py``),
copies them to ``docs/_static/perf/`` (the figures the docs show, kept with
them) and draws one PNG per workload there. A missing result is skipped with
a line saying which benchmark makes it. ``--from docs/_static/perf`` redraws the
committed figures from the committed JSON.

The page's tables come from the same JSON: ``docs/conf.py`` calls ``table(NAME)``
when the site is built (a ```` ```{perf-table} NAME ```` block in
``docs/benchmarks.md``), so a table cannot disagree with its chart. ``table``
needs no matplotlib.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "_static" / "perf"
AIOMSG = "#2a7ab0"
AIOMSG_PYTHON = "#9cc7e4"  # aiomsg in pure Python: the same hue, lighter
OTHER = "#b0b0b0"


def is_aiomsg(name: str) -> bool:
    """A row of aiomsg's, drawn in colour ("FramedStream on anyio socket" is aiomsg's too)."""
    return name.startswith(("aiomsg", "FramedStream"))


def _pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only (imported here: ``table`` does without)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    return plt


def _finish(fig: Any, ax: Any, path: Path, title: str, xlabel: str, top: float) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_xlim(0, top * 1.18)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    print(f"drew {path.relative_to(ROOT)}")


def _value_label(ax: Any, value: float, y: float, top: float) -> None:
    if value >= 1e6:
        label = f"{value / 1e6:.2f}M"
    else:
        label = f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    ax.text(value + top * 0.01, y, label, va="center", fontsize=8)


def bars(
    path: Path,
    title: str,
    xlabel: str,
    rows: list[tuple[str, float]],
    is_ours: Callable[[str], bool],
) -> None:
    """One horizontal bar per row, aiomsg's in colour, the others grey, largest on top.

    Each row's name must be unique: it is the bar's label on the axis.
    """
    names = [name for name, _ in rows]
    assert len(set(names)) == len(names), f"two rows share a label: {names}"
    rows = sorted(rows, key=lambda r: r[1])
    fig, ax = _pyplot().subplots(figsize=(8, 0.42 * len(rows) + 1.2))
    names = [name for name, _ in rows]
    values = [value for _, value in rows]
    ax.barh(range(len(rows)), values, color=[AIOMSG if is_ours(n) else OTHER for n in names])
    ax.set_yticks(range(len(rows)), names)
    top = max(values) if values else 1
    for y, value in enumerate(values):
        _value_label(ax, value, y, top)
    _finish(fig, ax, path, title, xlabel, top)


def paired_bars(
    path: Path,
    title: str,
    xlabel: str,
    groups: list[tuple[str, dict[str, float]]],
    series: Sequence[tuple[str, str, str]],
) -> None:
    """One group per row label, a bar for each series in it (a legend names them).

    ``series`` lists (key, legend label, colour); a group may lack some of them (the
    hand-written baseline has one bar). The first group is drawn on top.
    """
    height = 0.8 / len(series)
    fig, ax = _pyplot().subplots(figsize=(8, 0.62 * len(groups) + 1.4))
    top = max((v for _, values in groups for v in values.values()), default=1)
    ticks = []
    for i, (_, values) in enumerate(groups):
        centre = len(groups) - 1 - i
        present = [s for s in series if s[0] in values]
        for j, (key, _, colour) in enumerate(present):
            y = centre - (j - (len(present) - 1) / 2) * height  # the first series on top
            ax.barh(y, values[key], height=height * 0.92, color=colour)
            _value_label(ax, values[key], y, top)
        ticks.append(centre)
    ax.set_yticks(ticks, [name for name, _ in groups])
    from matplotlib.patches import Patch

    handles = [Patch(color=colour, label=label) for _, label, colour in series]
    ax.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    _finish(fig, ax, path, title, xlabel, top)


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


CODEC_SERIES = (
    ("C", "aiomsg, C speedups", AIOMSG),
    ("Python", "aiomsg, pure Python", AIOMSG_PYTHON),
    ("", "hand-written bytearray loop", OTHER),
)


def _codec_groups(data: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """Per framing (in the benchmark's order, the baseline first): msgs/s per implementation."""
    groups: dict[str, dict[str, float]] = {}
    for r in data["small"]:
        groups.setdefault(_label(r["framing"]), {})[r["implementation"]] = r["msgs_per_s"]
    return list(groups.items())


def plot_codecs(data: dict[str, Any], out: Path) -> None:
    paired_bars(
        out / "codecs.png",
        "Decoding 200,000 100-byte messages (one process, no I/O)",
        "messages per second",
        _codec_groups(data),
        CODEC_SERIES,
    )


FRONT_WORKLOADS = (
    ("small", "messages per second", "msgs_per_s"),
    ("large", "MB per second", "mb_per_s"),
    ("echo", "round trips per second (1 / median round trip)", "median_round_trips_per_s"),
)


# The loops the charts and tables show: uvloop, and trio for the rows that run on trio.
FRONT_LOOPS = ("uvloop", "trio")
IMPLEMENTATION = "implementation (uvloop; trio rows on trio)"


def _front_rows(data: dict[str, Any], workload: str, key: str) -> list[dict[str, Any]]:
    rows = [r for r in data["rows"] if r["workload"] == workload and r["loop"] in FRONT_LOOPS]
    return sorted(rows, key=lambda r: -float(r.get(key, r["msgs_per_s"])))


def plot_fronts(data: dict[str, Any], out: Path) -> None:
    for workload, unit, key in FRONT_WORKLOADS:
        rows = [(r["impl"], r.get(key, r["msgs_per_s"])) for r in _front_rows(data, workload, key)]
        if rows:
            bars(
                out / f"fronts-{workload}.png",
                f"Server fronts, {workload} workload, uvloop or trio (server in its own process)",
                unit,
                rows,
                is_aiomsg,
            )


def plot_chat(data: dict[str, Any], out: Path) -> None:
    rows = [(r["name"], r["lines_per_s"]) for r in data["rows"] if "lines_per_s" in r]
    bars(
        out / "chat.png",
        f"Chat servers, {data['clients']} clients, {data['talkers']} talking: lines delivered",
        "lines delivered per second",
        rows,
        is_aiomsg,
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
        is_aiomsg,
    )


PLOTS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "codecs": plot_codecs,
    "fronts": plot_fronts,
    "chat": plot_chat,
    "connections": plot_connections,
}


# --- the tables ------------------------------------------------------------------------------

# The tables' signs, spelled out (ruff flags them as look-alikes in literals).
X = "\N{MULTIPLICATION SIGN}"
NONE = "\N{EN DASH}"
AT_LEAST = "\N{GREATER-THAN OR EQUAL TO}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _rate(value: float) -> str:
    """A rate as the page writes it: 5.09 M, 0.49 M, 23,304."""
    if value >= 100_000:
        return f"{value / 1e6:.2f} M"
    return f"{value:,.0f}"


def _codecs_table(data: dict[str, Any]) -> str:
    groups = _codec_groups(data)
    baseline = groups[0][1][""]
    loop = "hand-written `bytearray` loop (4-byte prefix)"
    rows = [[loop, NONE, NONE, _rate(baseline), f"1.0{X}"]]
    for name, values in groups[1:]:
        c, py = values.get("C"), values.get("Python")
        rows.append(
            [
                f"`{name}`",
                _rate(c) if c else NONE,
                f"{c / baseline:.1f}{X}" if c else NONE,
                _rate(py) if py else NONE,
                f"{py / baseline:.1f}{X}" if py else NONE,
            ]
        )
    header = ["decoder", "C: msg/s", f"C: {X} loop", "pure Python: msg/s", f"pure Python: {X} loop"]
    return _markdown(header, rows)


def _codecs_big_table(data: dict[str, Any]) -> str:
    rows = [
        [f"`{_label(r['framing'])}`", f"{r['8MiB_s'] * 1e3:.1f}", f"{r['16MiB_s'] * 1e3:.1f}",
         f"{r['ratio']:.1f}{X}"]
        for r in data["big"]
    ]  # fmt: skip
    return _markdown(["framing", "8 MiB: ms", "16 MiB: ms", "16 MiB / 8 MiB"], rows)


def _fronts_table(data: dict[str, Any], workload: str) -> str:
    if workload == "small":
        small = _front_rows(data, "small", "msgs_per_s")
        rows = [[r["impl"], _rate(r["msgs_per_s"])] for r in small]
        return _markdown([IMPLEMENTATION, "messages/s"], rows)
    if workload == "large":
        raw = next(r for r in data["rows"] if r["workload"] == "large" and "ceiling" in r["impl"])
        rows = [
            [r["impl"], f"{r['msgs_per_s']:,.0f}", f"{r['mb_per_s']:,.0f}",
             f"{r['mb_per_s'] / raw['mb_per_s']:.0%}"]
            for r in _front_rows(data, "large", "mb_per_s")
        ]  # fmt: skip
        return _markdown([IMPLEMENTATION, "messages/s", "MB/s", "of raw bytes"], rows)
    key = "median_round_trips_per_s"
    rows = [
        [r["impl"], f"{r[key]:,.0f}", f"{r['msgs_per_s']:,.0f}"]
        for r in _front_rows(data, "echo", key)
    ]
    header = [IMPLEMENTATION, "1 / median round trip, per s", "round trips/s, whole run"]
    return _markdown(header, rows)


def _benchmark(name: str) -> Any:
    """benchmarks/NAME.py as a module (its top level only defines; nothing runs)."""
    import importlib.util
    import sys

    module_name = f"_aiomsg_benchmark_{name}"
    if module_name not in sys.modules:
        path = Path(__file__).with_name(f"{name}.py")
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def _fronts_targets_table(data: dict[str, Any]) -> str:
    targets = _benchmark("fronts").TARGETS  # the ratios fronts.py prints at the end
    rate = {
        (r["workload"], r["impl"]): r.get("median_round_trips_per_s", r["msgs_per_s"])
        for r in data["rows"]
        if r["loop"] in FRONT_LOOPS
    }
    # Echo a second time by the server's CPU per round trip, where the run measured it.
    cpu_rate = {
        (r["workload"], r["impl"]): r["server_cpu_round_trips_per_s"]
        for r in data["rows"]
        if r["loop"] in FRONT_LOOPS and "server_cpu_round_trips_per_s" in r
    }
    rows = []
    for workload, candidate, baseline, target in targets:
        for how, rates in (("", rate), (" (server CPU)", cpu_rate)):
            if (workload, candidate) in rates and (workload, baseline) in rates:
                ratio = rates[workload, candidate] / rates[workload, baseline]
                rows.append(
                    [
                        workload,
                        f"{candidate} / {baseline}{how}",
                        f"{AT_LEAST} {target:.2f}{X}",
                        f"{ratio:.2f}{X}",
                        "met" if ratio >= target else "**missed**",
                    ]
                )
    return _markdown(["workload", "ratio", "target", "this run", ""], rows)


def _chat_table(data: dict[str, Any]) -> str:
    rows = [
        [
            r["name"],
            f"{r['lines_per_s']:,.0f}",
            f"{r['ratio']:.1f}{X}" if r.get("ratio") else NONE,
            f"{r['p99_latency_ms']:,.0f} ms",
            f"{r['server_cpu_us_per_line']:.1f} µs",
        ]
        for r in data["rows"]
        if "lines_per_s" in r
    ]
    header = ["server", "lines/s", f"{X} hand-written (median of rounds)", "p99", "CPU per line"]
    return _markdown(header, rows)


def _connections_table(data: dict[str, Any]) -> str:
    kib: dict[str, dict[str, float]] = {}
    for r in data["rows"]:
        if r.get("kib_per_connection") is not None:
            kib.setdefault(r["impl"], {})[r["loop"]] = r["kib_per_connection"]
    loops = sorted({loop for values in kib.values() for loop in values}, reverse=True)
    rows = [
        [impl, *(f"{values[loop]:.1f}" if loop in values else NONE for loop in loops)]
        for impl, values in kib.items()
    ]
    return _markdown(["front", *(f"{loop}: KiB" for loop in loops)], rows)


TABLES: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "codecs": ("codecs", _codecs_table),
    "codecs-big": ("codecs", _codecs_big_table),
    "fronts-small": ("fronts", lambda d: _fronts_table(d, "small")),
    "fronts-large": ("fronts", lambda d: _fronts_table(d, "large")),
    "fronts-echo": ("fronts", lambda d: _fronts_table(d, "echo")),
    "fronts-targets": ("fronts", _fronts_targets_table),
    "chat": ("chat", _chat_table),
    "connections": ("connections", _connections_table),
}


def table(name: str, source: Path = OUT) -> str:
    """The Markdown table ``name`` (a key of ``TABLES``) from ``source``'s JSON.

    Raises KeyError for an unknown name and OSError when the JSON is missing.
    """
    benchmark, make = TABLES[name]
    return make(json.loads((source / f"{benchmark}.json").read_text()))


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
