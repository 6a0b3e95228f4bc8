"""The ``aiomsg`` command's entry point, kept outside the ``aiomsg`` package on purpose.

PyPI's ``aiomsg`` is an unrelated project with the same import name. Installed next to
aiomsg-framing it overwrites ``aiomsg/__init__.py`` (and uninstalling it then deletes that
file); an ``aiomsg`` directory earlier on the module path hides ours altogether. Either way
``import aiomsg`` gives a foreign module, and the command would die with a traceback far
from the cause. An entry point inside the package cannot even start (importing it runs the
foreign ``__init__``), so the console script starts here: :func:`main` checks that
``import aiomsg`` is aiomsg-framing's, and otherwise says so in one line on stderr, with
exit status 1. ``python -m aiomsg`` makes the same check (``aiomsg/__main__.py``).
"""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "aiomsg-framing"
# aiomsg-framing's ``aiomsg/__init__.py`` sets ``__distribution__`` to DISTRIBUTION.
MARKER = f'__distribution__ = "{DISTRIBUTION}"'
# The unrelated project on PyPI with the same import name.
OTHER = "aiomsg"


def foreign_aiomsg() -> str | None:
    """None when ``import aiomsg`` is aiomsg-framing's package; otherwise what is wrong and
    what to do, in one line."""
    spec = importlib.util.find_spec("aiomsg")
    if spec is not None:
        try:
            import aiomsg
        except Exception:
            # Ours failing to import is a bug to see in full; a foreign one is the problem.
            if _is_ours(spec.origin):
                raise
        else:
            if getattr(aiomsg, "__distribution__", None) == DISTRIBUTION:
                return None
    reinstall = f"pip install --force-reinstall {DISTRIBUTION}"
    if _our_init_missing():
        return (
            f"aiomsg: {DISTRIBUTION}'s aiomsg/__init__.py is missing (uninstalling PyPI's "
            f"'{OTHER}', which shares the directory, deletes it); reinstall: {reinstall}"
        )
    if spec is None:
        return f"aiomsg: no module named 'aiomsg', which {DISTRIBUTION} installs; {reinstall}"
    where = spec.origin or ", ".join(spec.submodule_search_locations or ())
    owners = " and ".join(f"{name} {metadata.version(name)}" for name in _owners(where))
    if owners:
        return (
            f"aiomsg: 'import aiomsg' gives {where} from {owners} (PyPI's '{OTHER}', an "
            f"unrelated project with the same import name), not from {DISTRIBUTION}; the two "
            f"cannot share an environment. Fix: pip uninstall {OTHER}, then {reinstall} (they "
            "shared files), or use a separate venv for each"
        )
    return (
        f"aiomsg: 'import aiomsg' gives {where}, which is not {DISTRIBUTION}'s aiomsg and not "
        "from an installed distribution (an 'aiomsg' directory on PYTHONPATH or in the current "
        f"directory?); move it off the module path. If it is PyPI's '{OTHER}', an unrelated "
        f"project with the same import name: pip uninstall {OTHER}, or use a separate venv for "
        "each"
    )


def _is_ours(origin: str | None) -> bool:
    try:
        with open(origin or "", encoding="utf-8") as f:
            return MARKER in f.read()
    except OSError:
        return False


def _our_init_missing() -> bool:
    """aiomsg-framing is installed, but its ``aiomsg/__init__.py`` has gone."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    for file in dist.files or ():  # an editable install lists no package files
        if file.as_posix() == "aiomsg/__init__.py":
            return not Path(str(dist.locate_file(file))).exists()
    return False


def _owners(where: str) -> list[str]:
    """The installed distributions, other than ours, that put the file ``where`` there."""
    target = Path(where).resolve()
    owners = []
    for name in sorted(set(metadata.packages_distributions().get("aiomsg", ()))):
        if _normal(name) == DISTRIBUTION:
            continue
        dist = metadata.distribution(name)
        if any(Path(str(dist.locate_file(f))).resolve() == target for f in dist.files or ()):
            owners.append(name)
    return owners


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def exit_if_foreign() -> None:
    """Say what is wrong on stderr and exit with status 1 if ``aiomsg`` is not ours."""
    problem = foreign_aiomsg()
    if problem is not None:
        print(problem, file=sys.stderr, flush=True)
        raise SystemExit(1)


def main() -> int:
    """The ``aiomsg`` console script: the check, then :func:`aiomsg.__main__.main`."""
    exit_if_foreign()
    from aiomsg.__main__ import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
