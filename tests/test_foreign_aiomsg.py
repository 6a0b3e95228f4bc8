"""PyPI's other ``aiomsg`` (an unrelated project with our import name) found first: the
``aiomsg`` command says so in one line on stderr with exit status 1, never a traceback.

Here the foreign package is a directory first on PYTHONPATH; tests/test_packaging.py
installs one over a built wheel with pip, as a user would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import aiomsg

FOREIGN_INIT = '''"""aiomsg: a stand-in for PyPI's project of that name (not aiomsg-framing)."""

class Søcket:
    pass
'''

SCRIPT = Path(sys.executable).parent / ("aiomsg.exe" if os.name == "nt" else "aiomsg")


def _run(command: list[str], pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False, cwd=pythonpath
    )


def assert_refused(result: subprocess.CompletedProcess[str], where: Path) -> str:
    """One line on stderr naming the module found, both projects and the fix; status 1."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith("aiomsg: 'import aiomsg' gives "), line
    assert str(where) in line
    assert "aiomsg-framing" in line
    assert "pip uninstall aiomsg" in line
    assert "separate venv" in line
    assert result.stdout == ""
    return line


def test_the_console_script_runs_when_aiomsg_is_ours() -> None:
    result = subprocess.run(
        [str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"aiomsg {aiomsg.__version__} ("), result.stdout


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["connect", "localhost", "9"]])
def test_the_console_script_names_a_foreign_aiomsg_on_the_path(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "aiomsg").mkdir()
    (tmp_path / "aiomsg" / "__init__.py").write_text(FOREIGN_INIT)
    line = assert_refused(_run([str(SCRIPT), *args], tmp_path), tmp_path / "aiomsg")
    assert "not from an installed distribution" in line


def test_a_foreign_aiomsg_that_fails_to_import_is_named_too(tmp_path: Path) -> None:
    (tmp_path / "aiomsg").mkdir()
    (tmp_path / "aiomsg" / "__init__.py").write_text("import a_dependency_that_is_missing\n")
    assert_refused(_run([str(SCRIPT), "--version"], tmp_path), tmp_path / "aiomsg")


def test_python_m_aiomsg_names_a_foreign_init_over_ours(tmp_path: Path) -> None:
    # What pip leaves after installing PyPI's aiomsg over aiomsg-framing: our modules, its
    # __init__.py. ``python -m aiomsg`` then runs our __main__ after the foreign __init__.
    package = tmp_path / "aiomsg"
    shutil.copytree(
        Path(aiomsg.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    (package / "__init__.py").write_text(FOREIGN_INIT)
    for command in ([sys.executable, "-m", "aiomsg", "--help"], [str(SCRIPT), "--version"]):
        assert_refused(_run(command, tmp_path), package)
