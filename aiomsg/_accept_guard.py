"""What a server does when ``accept()`` fails for want of file descriptors (or memory).

A listener whose ``accept()`` fails with EMFILE, ENFILE, ENOBUFS or ENOMEM must not
exit (anyio on trio raises ``BrokenResourceError``), log a traceback per attempt
(CPython's selector loop does, up to ``backlog`` times per wake-up), or spin: the
listening socket stays readable while the clients wait in the kernel's queue. Every
aiomsg server hands such a failure to one :class:`AcceptGuard`, which logs one line,
then at most one line a minute with the count, and says how long to stop accepting
before trying again. The waiting clients stay queued and are served once descriptors
are free; the line after the first success says how many attempts failed.
"""

from __future__ import annotations

import logging
import time

__all__ = ["ACCEPT_BACKOFF", "REPORT_INTERVAL", "AcceptGuard"]

logger = logging.getLogger("aiomsg")

#: Seconds a server stops accepting after an accept failed for want of resources.
ACCEPT_BACKOFF = 0.25
#: Seconds between two log lines about the same exhaustion (each gives a count).
REPORT_INTERVAL = 60.0


class AcceptGuard:
    """Rate-limited reporting of failed accepts for one listening server.

    Call :meth:`failed` for each accept that failed (EMFILE and its kind, or any
    other error of a listening socket); it logs when it should and returns the
    seconds to wait before accepting again.
    Call :meth:`accepted` after each successful accept (cheap: one comparison
    unless a failure is being reported).
    """

    __slots__ = ("_failures", "_logged", "_next_report", "_unreported", "_where")

    def __init__(self, where: object) -> None:
        self._where = where
        self._failures = 0  # since the last success
        self._unreported = 0  # since the last line
        self._logged = False  # a line was logged since the last success
        self._next_report = 0.0

    def failed(self, exc: BaseException) -> float:
        """Count one failed accept; log at most one line a minute. Returns the backoff."""
        self._failures += 1
        self._unreported += 1
        now = time.monotonic()
        if now >= self._next_report:
            cause = exc if isinstance(exc, OSError) else exc.__cause__
            reason = getattr(cause, "strerror", None) or str(cause or exc)
            if not self._logged:
                logger.warning(
                    "server on %s cannot accept connections: %s; clients wait in the listen "
                    "queue, accepting is retried every %g s (at most one line a minute "
                    "while it lasts)",
                    self._where,
                    reason,
                    ACCEPT_BACKOFF,
                )
            else:
                logger.warning(
                    "server on %s still cannot accept connections (%s); failed attempts "
                    "since the last line: %d",
                    self._where,
                    reason,
                    self._unreported,
                )
            self._logged = True
            self._unreported = 0
            self._next_report = now + REPORT_INTERVAL
        return ACCEPT_BACKOFF

    def accepted(self) -> None:
        """An accept succeeded: end a reported exhaustion with one line."""
        if self._failures:
            if self._logged:
                logger.warning(
                    "server on %s accepts connections again (after %d failed attempts)",
                    self._where,
                    self._failures,
                )
            self._failures = 0
            self._logged = False
