"""Choosing the event loop: uvloop where it is installed, stdlib asyncio otherwise.

``AIOMSG_LOOP=asyncio`` forces the stdlib loop; ``AIOMSG_LOOP=uvloop`` insists on
uvloop and fails loudly where it is missing. Uses ``asyncio.Runner(loop_factory=...)``,
not the deprecated event-loop-policy API, so nothing global is changed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "loop_name", "new_event_loop", "run"]

T = TypeVar("T")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str | None = None) -> LoopFactory:
    """Return the function that makes the event loop aiomsg uses.

    ``choice`` is ``"uvloop"``, ``"asyncio"`` or ``"auto"``; by default it comes
    from the ``AIOMSG_LOOP`` environment variable, else ``"auto"`` (uvloop if
    importable).

    Raises:
        RuntimeError: ``"uvloop"`` was asked for and uvloop cannot be imported
            (not installed, or a platform it does not support, such as Windows).
        ValueError: ``choice`` is none of the three names.
    """
    choice = (choice or os.environ.get("AIOMSG_LOOP") or "auto").strip().lower()
    if choice not in ("auto", "uvloop", "asyncio"):
        raise ValueError(f"AIOMSG_LOOP must be 'auto', 'uvloop' or 'asyncio', not {choice!r}")
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise RuntimeError(
                "AIOMSG_LOOP=uvloop, but uvloop cannot be imported here "
                "(pip install uvloop; it does not exist for Windows)"
            ) from exc
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    """Return a new event loop of the kind :func:`loop_factory` picks."""
    return loop_factory()()


def run(main: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """Run ``main`` to completion on a new loop (uvloop where available) and return its result.

    Like :func:`asyncio.run`: it cancels what is left, shuts down async
    generators and the default executor, and closes the loop. Raises whatever
    ``main`` raises, and what :func:`loop_factory` raises.
    """
    try:
        factory = loop_factory()
    except BaseException:
        main.close()  # never run: close it, so Python does not warn it was never awaited
        raise
    with asyncio.Runner(loop_factory=factory, debug=debug) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Say which loop runs: ``"uvloop"`` or ``"asyncio"`` (default: the running loop)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
