"""The optional C speedups (``aiomsg/_speedups.c``), or ``None``.

They are built at install time when a C compiler is there; without them every
codec runs in pure Python with the same behaviour. ``AIOMSG_PURE_PYTHON=1`` in
the environment turns them off (to compare, or to rule them out). Codecs look
``speedups`` up when they are used, so the tests can switch it off.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from ._base import Buffer


class BodyBuffer(Protocol):
    """A long message's body, collected where it is handed over (see ``_speedups.c``)."""

    @property
    def size(self) -> int: ...

    @property
    def need(self) -> int: ...

    def fill(self, data: Buffer, pos: int) -> int: ...

    def window(self, limit: int) -> memoryview: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> bytes: ...

    def partial(self) -> bytes: ...


class Speedups(Protocol):
    """What ``_speedups.c`` provides; its docstrings tell what each function does."""

    def scan(
        self, data: Buffer, pos: int, width: int, little: bool, max_size: int, out: list[bytes]
    ) -> int: ...

    def encode(self, message: Buffer, width: int, little: bool, max_size: int) -> bytes | None: ...

    def encode_many(
        self, messages: Iterable[Buffer], width: int, little: bool, max_size: int
    ) -> bytes | int: ...

    def BodyBuffer(self, total: int) -> BodyBuffer: ...


def _load() -> Speedups | None:
    if os.environ.get("AIOMSG_PURE_PYTHON"):
        return None
    try:
        module = importlib.import_module("aiomsg._speedups")
    except ImportError:  # not built: no compiler at install time, or not CPython
        return None
    return cast(Speedups, module)  # the protocol above is its type description


speedups: Speedups | None = _load()


def active() -> bool:
    """Whether the C speedups are in use (``False``: pure Python, same behaviour)."""
    return speedups is not None
