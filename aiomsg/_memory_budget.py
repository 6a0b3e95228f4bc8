"""One bound on what all the connections of an event loop hold: :class:`MemoryBudget`.

Each connection is bounded on its own (``max_size``, ``read_size``, ``write_high_water``),
but not their sum: 400 peers that each announce a 16 MiB message and send 3 MiB of it
make a server hold 1.2 GB. The connections of one event loop made with the same
``Options.memory_budget`` share one budget. They report what they hold beyond the
small change of any connection: an unfinished message, decoded messages the
application has not taken, output the peer has not read. While the sum is over the
budget, a connection that grows past :data:`SMALL` stops reading (the largest holders
are the ones still growing), and every other one reads at most ``SPENT_READ`` bytes at
a time, so that none grows by more than a sip before it is weighed; small holders, and
new connections, go on. One connection
at a time, the *lead*, is let through anyway, so that large messages that fit one at a
time still complete one after another instead of all waiting for each other.
``message_timeout`` keeps running for a paused connection: a peer that cannot finish
its message while it waits is ended by it, and what it held is freed.

The accounting runs where the fronts already look at these sizes (once per read, when a
write buffer fills), never once per message.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import deque
from typing import Protocol

__all__ = ["SMALL", "Holder", "MemoryBudget", "budget_for"]

#: What a connection may hold without ever being paused by the budget: small messages
#: keep flowing however full it is.
SMALL = 64 * 1024


class Holder(Protocol):
    """A connection as the budget sees it."""

    budget_held: int
    budget_paused: bool

    def budget_pause(self) -> None:
        """Stop reading until :meth:`budget_resume` (the message clock keeps running)."""

    def budget_resume(self) -> None:
        """Read again."""


class MemoryBudget:
    """The bytes held by a set of connections, and who waits for room."""

    __slots__ = ("__weakref__", "_waiting", "held", "lead", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._waiting: deque[Holder] = deque()  # paused, the first paused first
        # Let through while the rest waits (one at a time); its reads stay full size.
        self.lead: Holder | None = None

    def update(self, holder: Holder, held: int) -> None:
        """``holder`` now holds ``held`` bytes: pause it, or let others go on."""
        before = holder.budget_held
        holder.budget_held = held
        self.held += held - before
        if held > before:
            if self.held > self.limit and held >= SMALL and not holder.budget_paused:
                if self.lead is None:
                    self.lead = holder  # one at a time goes on: progress, not deadlock
                elif holder is not self.lead:
                    holder.budget_paused = True
                    self._waiting.append(holder)
                    holder.budget_pause()
        else:
            if holder is self.lead and held < SMALL:
                self.lead = None  # its message is done (or gone): another may lead
            if self._waiting:
                self._resume_some()

    def release(self, holder: Holder) -> None:
        """``holder`` is closed: forget it and what it held."""
        if holder.budget_paused:
            holder.budget_paused = False
            with contextlib.suppress(ValueError):  # resumed meanwhile
                self._waiting.remove(holder)
        self.update(holder, 0)
        if holder is self.lead:
            self.lead = None
            if self._waiting:
                self._resume_some()

    def _resume_some(self) -> None:
        """Let waiting holders read again while there is room: each may bring as much
        again as it holds (a store grows by doubling) before it is weighed again."""
        room = self.limit - self.held
        while self._waiting:
            holder = self._waiting[0]
            if self.lead is not None and holder.budget_held > room:
                return
            self._waiting.popleft()
            holder.budget_paused = False
            if self.lead is None:
                self.lead = holder
            room -= holder.budget_held
            holder.budget_resume()

    def __repr__(self) -> str:
        return f"<MemoryBudget {self.held}/{self.limit} bytes, {len(self._waiting)} waiting>"


# One budget per (event loop, limit): weakly keyed, so a closed loop takes its
# budgets with it. The key is whatever identifies the running loop on a backend
# (the asyncio loop, trio's root task).
_budgets: weakref.WeakKeyDictionary[object, dict[int, MemoryBudget]] = weakref.WeakKeyDictionary()


def budget_for(loop: object, limit: int | None) -> MemoryBudget | None:
    """The budget shared by the connections of ``loop`` with this ``limit`` (``None``:
    no budget)."""
    if limit is None:
        return None
    per_limit = _budgets.get(loop)
    if per_limit is None:
        per_limit = _budgets[loop] = {}
    budget = per_limit.get(limit)
    if budget is None:
        budget = per_limit[limit] = MemoryBudget(limit)
    return budget
