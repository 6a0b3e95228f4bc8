"""``python3 dev.py`` on a fresh clone, as a newcomer runs it: ``demo`` installs aiomsg alone
(no docs, benchmark, test or lint tools) and the demo works; a later ``test`` adds the test
tools and nothing else.

It clones the current commit (``git clone --no-hardlinks``), so it checks what is committed.
pip installs from its cache where it can (PyPI otherwise); the first step compiles the C
speedups. About a minute or two.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEP_TIMEOUT = 600  # seconds for each dev.py command: pip may have to fetch from PyPI

# What the other commands install (pyproject.toml's test, lint, bench and docs extras, and
# what they pull in): none of it belongs in the demo's environment.
NOT_FOR_THE_DEMO = {
    "sphinx", "furo", "myst-parser", "sphinx-copybutton",  # docs
    "matplotlib", "numpy", "twisted",  # bench
    "pytest", "pytest-asyncio", "hypothesis", "coverage", "trustme", "build",  # test
    "mypy", "ruff",  # lint
}  # fmt: skip
TEST_TOOLS = {"pytest", "pytest-asyncio", "hypothesis", "coverage", "trustme", "trio"}


def _env() -> dict[str, str]:
    # The clone's dev.py, unaware of this test run: no coverage of this run, no PYTHONPATH,
    # no pure-Python switch.
    drop = ("PYTHONPATH", "AIOMSG_PURE_PYTHON", "AIOMSG_LOOP", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("COVERAGE")}


def _dev(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "dev.py", *args],
        cwd=clone,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )


def _installed(clone: Path) -> set[str]:
    """The distributions in the clone's .venv, by normalised name (``pip list``)."""
    done = subprocess.run(
        [clone / ".venv" / "bin" / "python", "-m", "pip", "list", "--format=json"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {entry["name"].lower().replace("_", "-") for entry in json.loads(done.stdout)}


def test_demo_on_a_fresh_clone_installs_aiomsg_alone_and_test_adds_the_test_tools(
    tmp_path: Path,
) -> None:
    git = shutil.which("git")
    assert git, "git is required to clone the repository"
    clone = tmp_path / "aiomsg"
    subprocess.run(
        [git, "clone", "--quiet", "--no-hardlinks", ROOT, clone],
        check=True,
        timeout=120,
        env=_env(),
    )
    # The clone has the commit this worktree has checked out.
    head = subprocess.run(
        [git, "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    subprocess.run([git, "checkout", "--quiet", "--detach", head.strip()], cwd=clone, check=True)

    demo = _dev(clone, "demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    # The transcript: what the scripted clients said reached the others.
    assert "alice: hello everyone!" in demo.stdout, demo.stdout
    assert "carol: nice to meet you both" in demo.stdout, demo.stdout
    installed = _installed(clone)
    assert {"aiomsg-framing", "anyio"} <= installed, installed
    assert installed & NOT_FOR_THE_DEMO == set()

    # Then the test command: dev.py adds the test extra to the same .venv (no reinstall of
    # aiomsg), runs pytest under coverage, and still has no docs, bench or lint tools.
    test = _dev(clone, "test", "-q", "-p", "no:cacheprovider", "tests/test_renames.py")
    assert test.returncode == 0, test.stdout + test.stderr
    assert " passed" in test.stdout, test.stdout
    assert "TOTAL" in test.stdout, test.stdout  # the coverage report came last
    installed = _installed(clone)
    assert installed >= TEST_TOOLS, installed
    assert installed & {"sphinx", "furo", "matplotlib", "numpy", "twisted", "mypy", "ruff"} == set()

    # A second demo installs nothing more: the stamp knows what is there.
    again = _dev(clone, "demo")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "dev.py: install" not in again.stdout + again.stderr
    assert "dev.py: adding" not in again.stdout + again.stderr
