#!/usr/bin/env python3
"""Set up and run everything with nothing but python3: ``python3 dev.py COMMAND``.

COMMAND is ``demo``, ``test``, ``lint``, ``bench FILE`` or ``docs``.

The first run creates ``.venv`` and installs aiomsg (editable) with its test,
lint, benchmark and docs extras, compiling its optional C speedups when a C compiler
is there; later runs reinstall only when the build inputs changed. ``test``
also makes sure the peer programs the tests drive (``nc``, ``socat``) are
there, installing them with apt-get when it can.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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
    "test": [str(PYTHON), "-m", "pytest"],
    "lint": None,  # see lint()
    "bench": [str(PYTHON)],  # followed by the benchmark file
    # The Sphinx site, from scratch each time (-E: a warning is never hidden by a cached page),
    # with every warning an error.
    "docs": [
        str(PYTHON), "-m", "sphinx", "-E", "-W", "--keep-going", "-b", "html",
        "docs", "docs/_build/html",
    ],
}


def ensure_venv() -> None:
    # What the install depends on: a change to any of these reinstalls (and so
    # rebuilds the C speedups).
    digest = hashlib.sha256()
    for name in BUILD_INPUTS:
        digest.update((ROOT / name).read_bytes())
    wanted = digest.hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("dev.py: creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    print("dev.py: installing aiomsg and its test tools into .venv", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    if STAMP.exists():  # a reinstall after a change: quiet; the first set-up shows its progress
        pip.append("-q")
    subprocess.run([*pip, "-e", f"{ROOT}[test,lint,bench,docs]"], check=True)
    STAMP.write_text(wanted)


# Programs the tests drive as real peers or start as real servers (each test its own,
# on a free loopback port), and the Debian packages that bring them.
TEST_PROGRAMS = {"nc": "netcat-openbsd", "socat": "socat", "redis-server": "redis-server"}


def ensure_test_programs() -> bool:
    """Install the tests' peer programs with apt-get when missing (as root), or say what to do."""
    missing = {prog: pkg for prog, pkg in TEST_PROGRAMS.items() if shutil.which(prog) is None}
    if not missing:
        return True
    packages = sorted(set(missing.values()))
    apt = shutil.which("apt-get")
    if apt and hasattr(os, "geteuid") and os.geteuid() == 0:
        print(f"dev.py: installing {', '.join(packages)} with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([apt, "update", "-qq"], check=False, env=env)
        subprocess.run([apt, "install", "-y", "-qq", *packages], check=False, env=env)
        missing = {p: k for p, k in missing.items() if shutil.which(p) is None}
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
    ensure_venv()
    if argv[0] == "lint":
        return lint()
    cmd = COMMANDS[argv[0]]
    assert cmd is not None
    code = subprocess.run([*cmd, *argv[1:]], cwd=ROOT).returncode
    if argv == ["test"] and code == 0:
        code = test_pure_python()
    return code


# The fronts' tests once more without the C speedups: the fronts must behave the
# same on the pure-Python codecs (the codec tests run both implementations anyway).
PURE_PYTHON_TESTS = [
    "tests/test_asyncio_fronts.py",
    "tests/test_anyio_front.py",
    "tests/test_hardening.py",
    "tests/test_requests.py",
]


def test_pure_python() -> int:
    print("dev.py: the fronts' tests again in pure Python (AIOMSG_PURE_PYTHON=1)", flush=True)
    env = {**os.environ, "AIOMSG_PURE_PYTHON": "1"}
    cmd = [str(PYTHON), "-m", "pytest", "-q", *PURE_PYTHON_TESTS]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
