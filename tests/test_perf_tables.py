"""The performance page's tables come from the JSON its charts are drawn from: every
``{perf-table}`` block of docs/benchmarks.md renders (benchmarks/plot.py, as the docs build
does, without matplotlib: the test extra does not have it), and what a table says is what the
JSON holds."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PERF = ROOT / "docs" / "_static" / "perf"
BLOCK = re.compile(r"^```\{perf-table\} ([\w-]+)\n```$", re.MULTILINE)


def _plot() -> Any:
    spec = importlib.util.spec_from_file_location("_test_plot", ROOT / "benchmarks" / "plot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_table_of_the_performance_page_renders_from_the_kept_json() -> None:
    plot = _plot()
    names = BLOCK.findall((ROOT / "docs" / "benchmarks.md").read_text())
    assert set(names) == set(plot.TABLES)  # each table shown once, none left unused
    for name in names:
        table = plot.table(name, PERF)
        lines = table.splitlines()
        assert len(lines) >= 3 and all(line.startswith("|") for line in lines), (name, table)


def test_a_table_shows_the_figure_its_chart_is_drawn_from() -> None:
    # The figure the page once contradicted: MessageProtocol's small-message rate.
    rows = json.loads((PERF / "fronts.json").read_text())["rows"]
    (row,) = [
        r
        for r in rows
        if (r["workload"], r["impl"], r["loop"]) == ("small", "aiomsg MessageProtocol", "uvloop")
    ]
    expected = f"| aiomsg MessageProtocol | {row['msgs_per_s'] / 1e6:.2f} M |"
    assert expected in _plot().table("fronts-small", PERF).splitlines()


def test_rows_measured_on_trio_are_shown_and_their_target_computed() -> None:
    # fronts.py saves the trio rows with the loop "trio"; the page shows them beside uvloop's.
    plot = _plot()
    data = json.loads((PERF / "fronts.json").read_text())
    trio = {"aiomsg serve_framed on trio": 2_400_000.0, "hand-written trio loop": 1_200_000.0}
    data["rows"] += [
        {"workload": "small", "impl": impl, "loop": "trio", "msgs_per_s": rate}
        for impl, rate in trio.items()
    ]
    small = plot._fronts_table(data, "small").splitlines()
    assert "| aiomsg serve_framed on trio | 2.40 M |" in small
    assert "| hand-written trio loop | 1.20 M |" in small
    targets = plot._fronts_targets_table(data)
    ratio = next(
        line for line in targets.splitlines() if "serve_framed on trio / hand-written trio" in line
    )
    assert f"| 2.00{plot.X} | met |" in ratio
