"""trio's cancellation check, made inline: what lets every ``FramedStream.receive()``
on trio be a cancellation point at a fraction of a call per message.

``trio.lowlevel.checkpoint_if_cancelled()`` looks up the current task (an
attribute of a thread-local object) and tests
``task._cancel_status.effectively_cancelled``. Done per buffered message, the
look-up alone was 14% of the path and the coroutine around it 30% more. So
FramedStream reads the flag itself, from the task of its last check, and looks
the task up again only when that task's coroutine is not the one running: a
trio task runs alone in its thread, so when its coroutine's ``cr_running`` is
true, the code running is that task's. When the flag is set, FramedStream
awaits trio's own function, which raises ``Cancelled`` at a checkpoint as usual.
``async for`` makes the same test in the C speedups (``ReadyIterator``, given the run
context), with a cache of its own.

The names used are trio's private ones: :func:`cancel_check_context` checks them
once, and when a trio renames them it returns ``None`` and FramedStream calls
``checkpoint_if_cancelled()`` per message instead (slower, never wrong).

Not checked inline: a Ctrl-C waiting for trio's main task (``ki_pending``),
which the public function also raises; it is raised at the next read instead,
as a deadline is noticed.

This module imports trio only when called (aiomsg runs without trio installed).
"""

from __future__ import annotations

import types
from typing import Any

__all__ = ["NOT_RUNNING", "cancel_check_context", "current_task_of"]


class _NotRunning:
    """Stands for "no task yet" where a coroutine is expected: never running."""

    cr_running = False


NOT_RUNNING: Any = _NotRunning()


def cancel_check_context() -> Any:
    """trio's per-thread run context, when its current task shows the flag the inline
    check reads; else ``None``. Call it from a trio task."""
    try:
        from trio._core._run import GLOBAL_RUN_CONTEXT

        flag = GLOBAL_RUN_CONTEXT.task._cancel_status.effectively_cancelled
    except (ImportError, AttributeError):
        return None
    return GLOBAL_RUN_CONTEXT if isinstance(flag, bool) else None


def current_task_of(context: Any) -> tuple[Any, Any]:
    """The running trio task, and what tells later whether it still runs: its
    coroutine, or :data:`NOT_RUNNING` when it is not a native coroutine (then every
    check looks the task up again)."""
    task = context.task
    coro = task.coro
    return task, coro if type(coro) is types.CoroutineType else NOT_RUNNING
