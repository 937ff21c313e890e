"""Bounded logging of what outsiders can repeat at will (malformed packets, refused
senders and values, rate-limited messages, malformed MIDI): every event is counted, the
first few of each kind are logged in full, then at most one summary line per interval says
how many of each kind came since.

So a flood of 100,000 bad datagrams writes a handful of lines plus one line per interval,
and the counts (:attr:`BoundedLog.counts`) still say everything: ``/qbdi/status`` reports
them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from qbdi.server.events import LoopListener

FIRST_LOGGED = 5  # events of each kind logged in full
SUMMARY_EVERY_S = 10.0  # at most one summary line per interval


class BoundedLog:
    """Counts events by kind; logs the first ``first`` of each kind, then a summary of the
    rest at most every ``every_s`` seconds. Safe to call from any thread; it never waits
    on I/O (logging itself goes through a queue, :mod:`~qbdi.server.logs`).

    A summary is written by the first :meth:`event` or :meth:`tick` once the interval has
    passed; the owner calls :meth:`tick` now and then so that the last burst is summed up
    too, and :meth:`flush` when it stops.
    """

    def __init__(self, logger: logging.Logger, what: str, first: int = FIRST_LOGGED,
                 every_s: float = SUMMARY_EVERY_S,
                 now_s: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what  # names the source in the summary: "OSC input"
        self.first = first
        self.every_s = every_s
        self._now_s = now_s
        self.counts: dict[str, int] = {}
        self._unlogged: dict[str, int] = {}  # counted since the last summary, not logged
        self._last_summary_s = now_s()
        self._lock = threading.Lock()
        self.lines = 0  # lines this log has written

    def event(self, kind: str, message: str, *args: object, level: int = logging.WARNING,
              exc_info: BaseException | None = None) -> None:
        """Count one event of ``kind``; log ``message % args`` if it is among the first."""
        with self._lock:
            count = self.counts.get(kind, 0) + 1
            self.counts[kind] = count
            if count > self.first:
                self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
        if count <= self.first:
            self.lines += 1
            if count == self.first:
                message += f" (further ones are counted and summed up every {self.every_s:g} s)"
            self.logger.log(level, message, *args, exc_info=exc_info)
        else:
            self.tick()

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    def tick(self) -> None:
        """Write the summary if one is due."""
        if not self._unlogged or self._now_s() - self._last_summary_s < self.every_s:
            return
        self.flush()

    def flush(self) -> None:
        """Write the summary of what was counted and not logged, if anything was."""
        with self._lock:
            unlogged, self._unlogged = self._unlogged, {}
            self._last_summary_s = self._now_s()
            totals = dict(self.counts)
        if not unlogged:
            return
        parts = ", ".join(f"{n:,} more {kind} ({totals[kind]:,} in all)"
                          for kind, n in sorted(unlogged.items()))
        self.lines += 1
        self.logger.warning("%s since the last report: %s", self.what, parts)


class LogTicker(LoopListener):
    """Writes the due summaries of some :class:`BoundedLog` objects as the loop turns, and
    what is left when it stops."""

    def __init__(self, *logs: BoundedLog) -> None:
        self.logs = list(logs)

    def tick(self, now_s: float, next_bar: int) -> None:
        for bounded in self.logs:
            bounded.tick()

    def stopped(self) -> None:
        for bounded in self.logs:
            bounded.flush()
