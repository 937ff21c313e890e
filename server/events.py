"""What watches the loop: the loop tells its listeners what happened, and each feature that
watches (take, live IR, status line, OSC feedback) is a listener that subscribes.

A :class:`LoopListener` does nothing on every event, so a listener overrides only what it
needs, and a feature that is off is simply not subscribed. Every event is called on the loop
thread, so a listener must return at once: it may queue work for a thread of its own, never
wait on I/O.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mido
import numpy as np

from qbdi.settings import Preset

log = logging.getLogger(__name__)
MAX_LISTENER_ERRORS_LOGGED = 10  # a listener failing every bar must not flood the log


@dataclass(frozen=True, slots=True)
class BarReport:
    """What happened in one answered bar."""

    bar: int
    compute_ms: float
    dims_with_bits: int
    notes_in: int
    notes_out: int
    overrun: bool
    overruns: int  # so far, this one included
    tempo_bpm: float
    mode: str
    budget_bits: int | str


@dataclass(frozen=True, slots=True)
class AnsweredBar:
    """A bar and its answer, once the answer is scheduled: ``query`` is the bar the player
    played, ``answer`` what the improviser returned (None: nothing was asked), to sound from
    ``answer_step``, under ``state``."""

    report: BarReport
    query: np.ndarray  # (16, 2, 78) bool
    answer: np.ndarray | None
    answer_step: float
    state: Preset


class LoopListener:
    """A listener that ignores everything; subclasses override the events they watch."""

    def started(self, now_steps: float, tempo_bpm: float) -> None:
        """The loop starts serving; bars count from the bar the clock is in."""

    def played(self, step: float, message: mido.Message) -> None:
        """A note or pedal message the player played, at clock position ``step``."""

    def sent(self, step: float, message: mido.Message) -> None:
        """A message the server sent, at the step it was scheduled for."""

    def answered(self, bar: AnsweredBar) -> None:
        """A bar's answer is scheduled."""

    def tempo_changed(self, step: float, tempo_bpm: float, by_clock: bool) -> None:
        """The tempo changed: by a control, or (``by_clock``) by the DAW or a Link peer."""

    def clock_jumped(self, now_steps: float) -> None:
        """The clock jumped (a DAW's Start or Song Position Pointer); bars restart."""

    def state_changed(self, old: Preset, new: Preset) -> None:
        """A control changed the state (every change, validated)."""

    def learning(self, setting: str, phase: str, cc: int | None) -> None:
        """MIDI learn for ``setting``: ``waiting`` for a CC, ``bound`` to ``cc``, ``timeout``
        or ``cancelled``."""

    def port_event(self, direction: str, name: str, kind: str) -> None:
        """A port named with --in/--out/--controls-in was ``lost`` or is ``back``
        (``direction`` is ``in``, ``out`` or ``controls``)."""

    def error(self, reason: str) -> None:
        """Something failed inside the loop (a bar, a port); playing goes on."""

    def echo_loop(self, found: bool, latency_ms: float) -> None:
        """Our output was found routed back into our input (``found``), our notes coming
        back after ``latency_ms``, or no longer is; said once each time it changes."""

    def tick(self, now_s: float, next_bar: int) -> None:
        """Every turn of the loop."""

    def stopped(self) -> None:
        """The loop stopped serving; every note has ended."""


class Listeners(LoopListener):
    """Every subscribed listener, in order. A listener that raises is logged (the first
    few times) and skipped: a bug in what watches the loop never stops the music."""

    def __init__(self, *listeners: LoopListener) -> None:
        self.all = list(listeners)
        self.errors = 0

    def add(self, listener: LoopListener) -> None:
        self.all.append(listener)

    def _each(self, event: str, *args: object) -> None:
        for listener in self.all:
            try:
                getattr(listener, event)(*args)
            except Exception:
                self.errors += 1
                if self.errors <= MAX_LISTENER_ERRORS_LOGGED:
                    log.exception("%s.%s failed", type(listener).__name__, event)

    def started(self, now_steps: float, tempo_bpm: float) -> None:
        self._each("started", now_steps, tempo_bpm)

    def played(self, step: float, message: mido.Message) -> None:
        self._each("played", step, message)

    def sent(self, step: float, message: mido.Message) -> None:
        self._each("sent", step, message)

    def answered(self, bar: AnsweredBar) -> None:
        self._each("answered", bar)

    def tempo_changed(self, step: float, tempo_bpm: float, by_clock: bool) -> None:
        self._each("tempo_changed", step, tempo_bpm, by_clock)

    def clock_jumped(self, now_steps: float) -> None:
        self._each("clock_jumped", now_steps)

    def state_changed(self, old: Preset, new: Preset) -> None:
        self._each("state_changed", old, new)

    def learning(self, setting: str, phase: str, cc: int | None) -> None:
        self._each("learning", setting, phase, cc)

    def port_event(self, direction: str, name: str, kind: str) -> None:
        self._each("port_event", direction, name, kind)

    def error(self, reason: str) -> None:
        self._each("error", reason)

    def echo_loop(self, found: bool, latency_ms: float) -> None:
        self._each("echo_loop", found, latency_ms)

    def tick(self, now_s: float, next_bar: int) -> None:
        self._each("tick", now_s, next_bar)

    def stopped(self) -> None:
        self._each("stopped")


@dataclass(slots=True)
class LoopCounters:
    """What the loop counts, for status and the tests."""

    bars: int = 0
    overruns: int = 0
    skipped_bars: int = 0
    late_notes_dropped: int = 0
    bar_errors: int = 0
    last_compute_ms: float = 0.0
