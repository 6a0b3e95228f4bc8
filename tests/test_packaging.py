"""What a user gets from a package index: no address of a home the project does not have yet, a
README whose links resolve, and the sdist and wheel built as a release would build them
(``python -m build``), each installed in a fresh venv and run from there.

The builds and installs take about two minutes (the C speedups compile twice, pip
fetches setuptools and aiomsg's dependencies, from its cache once it has them).
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import venv
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from .test_foreign_aiomsg import FOREIGN_INIT

ROOT = Path(__file__).resolve().parent.parent


def _project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, Any] = tomllib.load(f)["project"]
    return project


def test_no_project_address_until_the_project_has_a_home() -> None:
    # No public repository or site exists yet: any address would be dead. docs/development.md
    # says what to set once there is one.
    assert "urls" not in _project()


def test_readme_links_resolve_in_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    inline = re.findall(r"\]\(([^)\s]+)\)", readme)
    definitions = dict(re.findall(r"^\[([^\]]+)\]:\s*(\S+)", readme, re.MULTILINE))
    links = [*inline, *definitions.values()]
    assert links
    for link in links:
        assert "://" not in link, f"README.md links to an address (no public home yet): {link}"
        path = link.split("#", 1)[0]
        if path:
            assert (ROOT / path).exists(), f"README.md links to a missing file: {link}"
    # A reference without its definition is shown as plain brackets.
    used = re.findall(r"\]\[([^\]]*)\]", readme) + re.findall(r"\[([^\]]+)\]\[\]", readme)
    defined = {label.lower() for label in definitions}
    missing = {label for label in used if label and label.lower() not in defined}
    assert not missing, f"README.md uses undefined link references: {sorted(missing)}"


# --- the sdist and the wheel -----------------------------------------------------------------

BUILD_TIMEOUT = 300  # seconds for each build or install: pip may fetch from PyPI
NAME = "aiomsg_framing"


def _run(
    command: Sequence[str | Path], cwd: Path, timeout: float = BUILD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    # Never the source tree's aiomsg: each command runs away from it, with no PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AIOMSG_PURE_PYTHON")}
    return subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel built from it, as ``python -m build`` makes them."""
    out = tmp_path_factory.mktemp("dist")
    _ok(_run([sys.executable, "-m", "build", "--outdir", out, ROOT], cwd=out))
    return out


def _artifact(dist: Path, pattern: str) -> Path:
    (found,) = dist.glob(pattern)
    return found


def _project_version() -> str:
    version: str = _project()["version"]
    return version


def _compiler_available() -> bool:
    # The compiler the build uses: $CC when set (setuptools honours it), else Python's own.
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return platform.python_implementation() == "CPython" and shutil.which(cc) is not None


def _expected_sdist_files() -> set[str]:
    """What the sdist must carry: everything the tests, docs, examples and benchmarks need."""
    wanted = {
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "MANIFEST.in",
        "dev.py",
        "pyproject.toml",
        "setup.py",
        "_aiomsg_framing.py",
        "aiomsg/_speedups.c",
        "aiomsg/_speedups.pyi",
        "aiomsg/py.typed",
        "benchmarks/results/.gitkeep",  # the benchmarks write their results there
    }
    for pattern in ("aiomsg/**/*.py", "tests/*.py", "benchmarks/*.py", "examples/*", "docs/*"):
        wanted |= {
            p.relative_to(ROOT).as_posix()
            for p in ROOT.glob(pattern)
            if p.is_file() and "__pycache__" not in p.parts
        }
    return wanted


def test_sdist_carries_the_tests_docs_examples_and_benchmarks(dist: Path) -> None:
    sdist = _artifact(dist, "*.tar.gz")
    prefix = f"{NAME}-{_project_version()}/"
    with tarfile.open(sdist) as tar:
        names = {m.name.removeprefix(prefix) for m in tar.getmembers() if m.isfile()}
    missing = _expected_sdist_files() - names
    assert not missing, f"missing from the sdist: {sorted(missing)}"
    machine_local = [
        n
        for n in names
        if "__pycache__" in n
        or n.endswith((".so", ".pyd", ".pyc"))
        or (n.startswith("benchmarks/results/") and n.endswith(".json"))
    ]
    assert not machine_local, machine_local


def test_the_unpacked_sdists_tests_collect_without_error(dist: Path, tmp_path: Path) -> None:
    with tarfile.open(_artifact(dist, "*.tar.gz")) as tar:
        tar.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    result = _run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=tree,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"^\d+ tests collected", output, re.MULTILINE), output
    assert "tests/test_packaging.py::" in output  # the helpers of every module came along


def test_the_wheel_is_the_package_alone(dist: Path) -> None:
    wheel = _artifact(dist, "*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(f"{NAME}-{_project_version()}.dist-info/METADATA").decode()
    top = {n.split("/")[0] for n in names}
    assert top == {"aiomsg", "_aiomsg_framing.py", f"{NAME}-{_project_version()}.dist-info"}
    assert "aiomsg/py.typed" in names
    assert "aiomsg/_speedups.pyi" in names
    assert not [n for n in names if n.endswith((".c", ".pyc")) or "__pycache__" in n], names
    if _compiler_available():
        assert [n for n in names if re.fullmatch(r"aiomsg/_speedups\..*(so|pyd)", n)], names
    addresses = [line for line in metadata.splitlines() if line.startswith(("Project-URL", "Home"))]
    assert addresses == []  # none until the project has a home
    assert "Name: aiomsg-framing" in metadata.splitlines()


# What a user does first: import it, a framed round trip over loopback, say what runs.
SMOKE = """if True:
    import aiomsg, pathlib, sys

    async def main() -> bytes:
        async def echo(conn: aiomsg.Connection) -> None:
            async for message in conn:
                await conn.send(message)

        framing = aiomsg.LengthPrefixed(4)
        async with aiomsg.serve(echo, "127.0.0.1", 0, framing=framing) as server:
            async with await aiomsg.connect("127.0.0.1", server.port, framing=framing) as conn:
                await conn.send(b"hello")
                return await conn.receive()

    assert aiomsg.run(main()) == b"hello"
    print(aiomsg.__version__, pathlib.Path(aiomsg.__file__).parent, aiomsg.speedups_active())
"""


def _venv(where: Path) -> Path:
    """A fresh venv with pip; its python."""
    venv.create(where, with_pip=True)
    return where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _install(python: Path, *args: str | Path) -> None:
    _ok(_run([python, "-m", "pip", "install", "-q", *args], cwd=python.parent))


def _script(python: Path) -> Path:
    return python.parent / ("aiomsg.exe" if os.name == "nt" else "aiomsg")


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installed_from_the_artifact_it_imports_talks_and_runs(
    dist: Path, tmp_path: Path, kind: str
) -> None:
    artifact = _artifact(dist, "*.whl" if kind == "wheel" else "*.tar.gz")
    python = _venv(tmp_path / "venv")
    _install(python, artifact)  # its dependencies from the package index
    version, location, speedups = _ok(_run([python, "-c", SMOKE], cwd=tmp_path)).split()
    assert version == _project_version()
    assert Path(location).is_relative_to(tmp_path / "venv"), location  # not the source tree
    assert speedups == str(_compiler_available())
    for command in ([_script(python)], [python, "-m", "aiomsg"]):
        out = _ok(_run([*command, "--version"], cwd=tmp_path, timeout=60))
        assert out.startswith(f"aiomsg {_project_version()} ("), out


def _foreign_wheel(where: Path) -> Path:
    """A stand-in for PyPI's aiomsg: an ``aiomsg`` package of its own, no __main__."""
    files = {
        "aiomsg/__init__.py": FOREIGN_INIT.encode(),
        "aiomsg/envelope.py": b"",
        "aiomsg-2026.7.1.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: aiomsg\nVersion: 2026.7.1\n"
        ),
        "aiomsg-2026.7.1.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files["aiomsg-2026.7.1.dist-info/RECORD"] = (
        "\n".join([*record, "aiomsg-2026.7.1.dist-info/RECORD,,"]) + "\n"
    ).encode()
    wheel = where / "aiomsg-2026.7.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


def _digest(data: bytes) -> str:
    """A file's hash as a wheel's RECORD writes it."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _refusals(python: Path, cwd: Path) -> Iterator[str]:
    """The one line each way of starting the command says; each exits with status 1."""
    for command in ([_script(python)], [python, "-m", "aiomsg"]):
        result = _run([*command, "--version"], cwd=cwd, timeout=60)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stdout == ""
        line = result.stderr.strip()
        assert "\n" not in line, line
        yield line


def test_pypis_other_aiomsg_installed_over_the_wheel_is_named_with_the_fix(
    dist: Path, tmp_path: Path
) -> None:
    python = _venv(tmp_path / "venv")
    wheel = _artifact(dist, "*.whl")
    _install(python, wheel)
    # pip lets the later install overwrite aiomsg/__init__.py: what a user gets.
    _install(python, "--no-index", "--no-deps", _foreign_wheel(tmp_path))
    for line in _refusals(python, tmp_path):
        assert "from aiomsg 2026.7.1 (PyPI's 'aiomsg'" in line, line
        assert "aiomsg-framing" in line
        assert "pip uninstall aiomsg, then pip install --force-reinstall aiomsg-framing" in line
        assert "separate venv" in line
    # The advice, followed: uninstalling it deletes the __init__.py the two shared...
    _ok(_run([python, "-m", "pip", "uninstall", "-y", "-q", "aiomsg"], cwd=tmp_path))
    for line in _refusals(python, tmp_path):
        assert "aiomsg/__init__.py is missing" in line, line
        assert "pip install --force-reinstall aiomsg-framing" in line
    # ... which the reinstall brings back.
    _install(python, "--force-reinstall", "--no-deps", "--no-index", wheel)
    out = _ok(_run([_script(python), "--version"], cwd=tmp_path, timeout=60))
    assert out.startswith(f"aiomsg {_project_version()} ("), out
