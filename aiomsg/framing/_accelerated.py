"""Which codec implementation runs: chosen once, here, when aiomsg is imported.

The optional C speedups (``aiomsg/_speedups.c``, typed in ``_speedups.pyi``) are
built at install time when a C compiler is there; without them every codec
runs in pure Python with the same behaviour. ``AIOMSG_PURE_PYTHON=1`` in the
environment turns them off (to compare, or to rule them out).

Nothing switches them afterwards: every framing's ``decoder()`` uses them when
they were loaded, and ``decoder(pure_python=True)`` builds the pure-Python
decoder explicitly (what the tests and benchmarks use to run both).
"""

from __future__ import annotations

import os

__all__ = ["speedups", "speedups_active"]

try:
    if os.environ.get("AIOMSG_PURE_PYTHON"):
        raise ImportError("switched off by AIOMSG_PURE_PYTHON")
    from .. import _speedups as speedups
except ImportError:  # not built: no compiler at install time, not CPython, or switched off
    speedups = None  # type: ignore[assignment]


def speedups_active() -> bool:
    """Whether the C speedups are in use (``False``: pure Python, same behaviour, slower).

    They are in use when they were built at install time and
    ``AIOMSG_PURE_PYTHON`` was not set when aiomsg was imported.
    """
    return speedups is not None


# The name docs/framing.md gave before speedups_active() was public.
active = speedups_active
