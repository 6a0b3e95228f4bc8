#!/usr/bin/env python3
"""Set up and run everything with nothing but python3: ``python3 dev.py COMMAND``.

COMMAND is ``demo``, ``test``, ``lint``, ``bench FILE`` or ``docs``.

The first run creates ``.venv`` and installs aiomsg there (editable, compiling
its optional C speedups when a C compiler is there), with only the extras the
command needs: none for ``demo``, the test tools for ``test``, and so on
(``EXTRAS``). A later command adds its own extras; a change to the build inputs
reinstalls with every extra installed so far. ``test`` also makes sure the peer
programs the tests drive (``nc``, ``socat``, ``redis-server``) are there,
installing them with apt-get when it can, runs pytest under coverage and prints
the coverage report at the end.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".aiomsg-installed"
BUILD_INPUTS = ["pyproject.toml", "setup.py", "aiomsg/_speedups.c"]

COMMANDS = {
    "demo": [str(PYTHON), "-m", "aiomsg", "demo"],
    "test": None,  # see test()
    "lint": None,  # see lint()
    "bench": [str(PYTHON)],  # followed by the benchmark file
    # The Sphinx site, from scratch each time (-E: a warning is never hidden by a cached page),
    # with every warning an error.
    "docs": [
        str(PYTHON), "-m", "sphinx", "-E", "-W", "--keep-going", "-b", "html",
        "docs", "docs/_build/html",
    ],
}


# The extras (pyproject.toml) each command needs; the demo needs aiomsg alone. mypy reads the
# test extra too: it type-checks tests/ and examples/, which import pytest, hypothesis, trio...
EXTRAS: dict[str, tuple[str, ...]] = {
    "demo": (),
    "test": ("test",),
    "lint": ("lint", "test"),
    "bench": ("bench",),
    "docs": ("docs",),
}


def _build_digest() -> str:
    """What the install depends on: a change to any of these reinstalls (and so rebuilds)."""
    digest = hashlib.sha256()
    for name in BUILD_INPUTS:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def _installed() -> tuple[str, set[str]] | None:
    """The build digest and the extras of the last install, or None (none yet, or unreadable)."""
    try:
        state = json.loads(STAMP.read_text())
        return str(state["inputs"]), {str(extra) for extra in state["extras"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no stamp, or one from an older dev.py: install afresh


def _extra_requirements(extras: set[str]) -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        table = tomllib.load(f)["project"]["optional-dependencies"]
    return sorted({req for extra in extras for req in table[extra]})


def ensure_venv(extras: tuple[str, ...]) -> None:
    """Make sure .venv holds aiomsg, built from the current inputs, and ``extras``."""
    wanted = _build_digest()
    state = _installed() if PYTHON.exists() else None
    have = state[1] if state else set()
    missing = set(extras) - have
    current = state is not None and state[0] == wanted
    if current and not missing:
        return
    if not PYTHON.exists():
        print("dev.py: creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    if state is not None:  # an addition or a reinstall: quiet; the first set-up shows progress
        pip.append("-q")
    every = have | set(extras)
    if current:
        # aiomsg is up to date: add the missing extras' requirements, without a rebuild.
        print(f"dev.py: adding {_names(missing)} to .venv", flush=True)
        subprocess.run([*pip, *_extra_requirements(missing)], check=True)
    else:
        what = f"aiomsg with {_names(every)}" if every else "aiomsg"
        print(f"dev.py: installing {what} into .venv", flush=True)
        target = f"{ROOT}[{','.join(sorted(every))}]" if every else str(ROOT)
        subprocess.run([*pip, "-e", target], check=True)
    STAMP.write_text(json.dumps({"inputs": wanted, "extras": sorted(every)}))


def _names(extras: set[str]) -> str:
    """'the [test] extra', 'the [lint], [test] extras'."""
    listed = ", ".join(f"[{extra}]" for extra in sorted(extras))
    return f"the {listed} extra" + ("s" if len(extras) > 1 else "")


# Programs the tests drive as real peers or start as real servers (each test its own,
# on a free loopback port), and the Debian packages that bring them.
TEST_PROGRAMS = {
    "nc": "netcat-openbsd",
    "socat": "socat",
    "redis-server": "redis-server",
    # tests/real_servers.py: the example protocol clients' servers.
    "initdb": "postgresql",
    "mariadbd": "mariadb-server",
    "mariadb": "mariadb-client",
    "mosquitto": "mosquitto",
    # tests/haproxy.py: the load balancer in front of aiomsg servers (PROXY protocol).
    "haproxy": "haproxy",
}


def find_program(name: str) -> str | None:
    """``name`` on PATH or in /usr/sbin, else in /usr/lib/postgresql/VERSION/bin, where Debian
    keeps PostgreSQL's server programs (tests/real_servers.py looks in the same places)."""
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    return found or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)


def ensure_test_programs() -> bool:
    """Install the tests' peer programs with apt-get when missing (as root), or say what to do."""
    missing = {prog: pkg for prog, pkg in TEST_PROGRAMS.items() if find_program(prog) is None}
    if not missing:
        return True
    packages = sorted(set(missing.values()))
    apt = shutil.which("apt-get")
    if apt and hasattr(os, "geteuid") and os.geteuid() == 0:
        print(f"dev.py: installing {', '.join(packages)} with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([apt, "update", "-qq"], check=False, env=env)
        subprocess.run([apt, "install", "-y", "-qq", *packages], check=False, env=env)
        missing = {p: k for p, k in missing.items() if find_program(p) is None}
        if not missing:
            return True
    print(
        f"dev.py: the tests need {', '.join(sorted(missing))} as real peers; install "
        f"{' '.join(sorted(set(missing.values())))} (Debian/Ubuntu package names) and run again",
        file=sys.stderr,
    )
    return False


def lint() -> int:
    for cmd in (
        [str(PYTHON), "-m", "ruff", "check", "."],
        [str(PYTHON), "-m", "mypy", "--strict", "aiomsg", "tests", "examples"],
    ):
        print("+", " ".join(cmd[2:]), flush=True)
        code = subprocess.run(cmd, cwd=ROOT).returncode
        if code:
            return code
    return 0


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on whatever python3 is
        print(f"dev.py: aiomsg needs Python 3.11 or newer; this is {sys.version.split()[0]}")
        return 1
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    if argv[0] == "test" and not ensure_test_programs():
        return 1
    ensure_venv(EXTRAS[argv[0]])
    if argv[0] == "lint":
        return lint()
    if argv[0] == "test":
        return test(argv[1:])
    cmd = COMMANDS[argv[0]]
    assert cmd is not None
    return subprocess.run([*cmd, *argv[1:]], cwd=ROOT).returncode


COVERAGE = [str(PYTHON), "-m", "coverage"]


def test(args: list[str]) -> int:
    """pytest under coverage (pyproject.toml's [tool.coverage.*]); its exit status is ours.

    The whole suite (no ``args``) then runs the fronts' tests again in pure Python. The
    coverage report comes last, and its total on the last line; .ci/run holds the floor.
    """
    subprocess.run([*COVERAGE, "erase"], cwd=ROOT, check=True)
    code = subprocess.run([*COVERAGE, "run", "-m", "pytest", *args], cwd=ROOT).returncode
    if not args and code == 0:
        code = test_pure_python()
    # Each measured process (pytest, and every Python subprocess it started) wrote a file.
    subprocess.run([*COVERAGE, "combine", "-q"], cwd=ROOT, check=False)
    print("dev.py: branch coverage of aiomsg (files below 100%)", flush=True)
    subprocess.run([*COVERAGE, "report"], cwd=ROOT, check=False)
    total = subprocess.run(
        [*COVERAGE, "report", "--format=total", "--precision=2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if total:
        scope = " (these tests only; .ci/run's floor is for the whole suite)" if args else ""
        print(f"dev.py: total branch coverage {total}%{scope}", flush=True)
    return code


# The fronts' tests once more without the C speedups: the fronts must behave the
# same on the pure-Python codecs (the codec tests run both implementations anyway).
PURE_PYTHON_TESTS = [
    "tests/test_asyncio_fronts.py",
    "tests/test_anyio_front.py",
    "tests/test_hardening.py",
    "tests/test_requests.py",
    "tests/test_call_counts.py",  # its pure-Python ceilings
    "tests/test_memory_budget.py",
]


def test_pure_python() -> int:
    print("dev.py: the fronts' tests again in pure Python (AIOMSG_PURE_PYTHON=1)", flush=True)
    env = {**os.environ, "AIOMSG_PURE_PYTHON": "1"}
    # Measured too: the pure-Python paths (the fallbacks of the C iterator and scanner)
    # run only here. Its data files are combined with the first run's.
    cmd = [*COVERAGE, "run", "-m", "pytest", "-q", *PURE_PYTHON_TESTS]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
