"""What the terminal view shows, published by the loop for another thread to read.

:class:`ViewFeed` is a listener: on the loop thread it only copies a few numbers and the
sounding plane of the last bar and its answer (two 16 x 78 booleans, about 1 us) into a new
immutable :class:`BarView`, and assigns it to an attribute (atomic in Python). The view's
thread reads the attributes whenever it draws; it never calls into the loop, so drawing,
however slow, costs the loop nothing but those copies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from qbdi.server.clocks import Clock
from qbdi.server.events import AnsweredBar, BarReport, LoopListener
from qbdi.server.osc import IR_IN, IR_OUT
from qbdi.settings import Preset

POSITION_EVERY_S = 0.05  # the bar position is published at most this often


@dataclass(frozen=True, slots=True)
class BarView:
    """The last answered bar: its report, what was played and what answers it (sounding
    steps x pitches, or None for no answer), and the totals so far."""

    report: BarReport
    played: np.ndarray  # (16, 78) bool
    answer: np.ndarray | None  # (16, 78) bool
    notes_in_total: int
    notes_out_total: int


@dataclass(frozen=True, slots=True)
class Position:
    """Where the clock was (``now_steps``) at monotonic time ``at_s``, and its tempo."""

    now_steps: float
    tempo_bpm: float
    at_s: float


class ViewFeed(LoopListener):
    """Snapshots for the view; the loop thread writes them, any thread reads them."""

    def __init__(self, clock: Clock, state: Preset) -> None:
        self._clock = clock
        self.state = state
        self.bar: BarView | None = None
        self.position: Position | None = None
        self.last_error: tuple[float, str] | None = None  # (monotonic time, reason)
        self.ir_in: tuple[int, tuple[float, ...]] | None = None  # (bar, bits per frame)
        self.ir_out: tuple[int, tuple[float, ...]] | None = None
        self.stopped_at_s: float | None = None
        self._notes_in = 0
        self._notes_out = 0
        self._position_s = 0.0

    # -- loop thread ----------------------------------------------------------------------
    def started(self, now_steps: float, tempo_bpm: float) -> None:
        self.position = Position(now_steps, tempo_bpm, time.monotonic())

    def answered(self, bar: AnsweredBar) -> None:
        report = bar.report
        self._notes_in += report.notes_in
        self._notes_out += report.notes_out
        answer = None if bar.answer is None else bar.answer[:, 0, :].copy()
        self.bar = BarView(report, bar.query[:, 0, :].copy(), answer, self._notes_in,
                           self._notes_out)

    def state_changed(self, old: Preset, new: Preset) -> None:
        self.state = new

    def error(self, reason: str) -> None:
        self.last_error = (time.monotonic(), reason)

    def port_event(self, direction: str, name: str, kind: str) -> None:
        if kind == "lost":
            self.last_error = (time.monotonic(), f"port lost: {direction} {name}")

    def tick(self, now_s: float, next_bar: int) -> None:
        at_s = time.monotonic()
        if at_s - self._position_s >= POSITION_EVERY_S:
            self._position_s = at_s
            self.position = Position(self._clock.now_steps(), self._clock.tempo_bpm, at_s)

    def stopped(self) -> None:
        self.stopped_at_s = time.monotonic()

    # -- the live IR feed's worker thread ---------------------------------------------------
    def ir(self, address: str, args: list) -> None:
        """A message of the live IR feed (``/qbdi/ir/in|out bar bits...``); others ignored."""
        if address not in (IR_IN, IR_OUT) or not args:
            return
        values = (int(args[0]), tuple(float(v) for v in args[1:]))
        if address == IR_IN:
            self.ir_in = values
        else:
            self.ir_out = values
