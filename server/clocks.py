"""Clocks: where the music is, in sixteenth steps, at a given time.

The loop never reads the wall clock itself; it asks the clock passed in. Three clocks:

* :class:`InternalClock` runs at a tempo (BPM); a tempo change keeps the position
  continuous.
* :class:`ManualClock` is an internal clock on a hand-moved time source, so tests put the
  music exactly where they want it and assert exact event lists without sleeping.
* :class:`MidiClockFollower` follows a DAW's MIDI clock: 24 ticks a quarter note (6 a
  sixteenth), Start, Stop, Continue and Song Position Pointer.

Times are seconds on the clock's own time source (``now_s``); positions are float steps
from the start of bar 0.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import mido

STEPS_PER_BEAT = 4
TICKS_PER_STEP = 6  # MIDI clock: 24 ppqn / 4 sixteenths a beat
TEMPO_WINDOW_TICKS = 24  # the tick rate is measured over the last beat's ticks
CLOCK_MESSAGES = frozenset({"clock", "start", "stop", "continue", "songpos"})


class Clock(Protocol):
    """Where the music is. ``follows_midi``: the tempo comes from the DAW's MIDI clock, so
    :meth:`set_tempo` is refused; ``epoch`` grows at every jump in position (the loop then
    restarts its bars); ``running`` is False before a MIDI clock Start and after Stop."""

    follows_midi: bool
    epoch: int

    @property
    def tempo_bpm(self) -> float: ...

    @property
    def running(self) -> bool: ...

    def now_s(self) -> float: ...

    def step_at(self, t_s: float) -> float: ...

    def now_steps(self) -> float: ...

    def seconds_until(self, step: float) -> float: ...

    def feed(self, t_s: float, message: mido.Message) -> None:
        """A MIDI clock message received at ``t_s`` (ignored by clocks that do not follow
        MIDI clock)."""

    def set_tempo(self, tempo_bpm: float) -> None:
        """Change the tempo from now on without a jump in position."""

    def begin(self) -> None:
        """The loop starts serving now (its ports are open): a clock of its own starts
        bar 0 here; one that follows the DAW or a Link session keeps its position."""

    def close(self) -> None:
        """Leave whatever the clock joined (a Link session)."""


def steps_per_s(tempo_bpm: float) -> float:
    return tempo_bpm * STEPS_PER_BEAT / 60.0


class InternalClock:
    """A steady tempo from a time source (``time.perf_counter`` unless given)."""

    follows_midi = False

    def __init__(self, tempo_bpm: float, now_s: Callable[[], float] = time.perf_counter) -> None:
        self._now_s = now_s
        self.tempo_bpm = float(tempo_bpm)
        self._origin_s = now_s()
        self._origin_steps = 0.0
        self.epoch = 0  # bumped on a jump in position; the loop restarts its bars

    def now_s(self) -> float:
        return self._now_s()

    @property
    def running(self) -> bool:
        return True

    def step_at(self, t_s: float) -> float:
        """The position (steps) at time ``t_s``."""
        return self._origin_steps + (t_s - self._origin_s) * steps_per_s(self.tempo_bpm)

    def now_steps(self) -> float:
        return self.step_at(self.now_s())

    def seconds_until(self, step: float) -> float:
        """Seconds from now until ``step`` at the current tempo (negative when past)."""
        return (step - self.now_steps()) / steps_per_s(self.tempo_bpm)

    def set_tempo(self, tempo_bpm: float) -> None:
        """Change tempo from now on; the position does not jump."""
        now_s = self.now_s()
        self._origin_steps = self.step_at(now_s)
        self._origin_s = now_s
        self.tempo_bpm = float(tempo_bpm)

    def feed(self, t_s: float, message: mido.Message) -> None:
        """An internal clock ignores MIDI clock messages."""

    def begin(self) -> None:
        """Bar 0 starts now, so the first bar is whole however long the ports took to
        open."""
        self._origin_s = self.now_s()
        self._origin_steps = 0.0

    def close(self) -> None:
        """Nothing to leave."""


class ManualTime:
    """A time source that moves only when told to."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.t_s = start_s

    def __call__(self) -> float:
        return self.t_s


class ManualClock(InternalClock):
    """An internal clock whose time moves only by :meth:`set_step` / :meth:`advance_s`.

    After ``set_step(x)`` the position reads exactly ``x`` (no float round trip through
    seconds), so tests compare event times with ``==``.
    """

    def __init__(self, tempo_bpm: float = 120.0) -> None:
        self.time = ManualTime()
        self._pinned: tuple[float, float] | None = None  # (t_s, step) set by set_step
        super().__init__(tempo_bpm, self.time)

    def begin(self) -> None:
        """A test's clock stays where the test put it."""

    def advance_s(self, seconds: float) -> None:
        self.time.t_s += seconds

    def step_at(self, t_s: float) -> float:
        if self._pinned is not None and self._pinned[0] == t_s:
            return self._pinned[1]
        return super().step_at(t_s)

    def set_step(self, step: float) -> None:
        """Move time forward to the moment the position is ``step`` (never backwards)."""
        target_s = self._origin_s + (step - self._origin_steps) / steps_per_s(self.tempo_bpm)
        if step < self.now_steps():
            raise ValueError(f"a manual clock does not go back (step {step} is in the past)")
        self.time.t_s = max(target_s, self.time.t_s)
        self._pinned = (self.time.t_s, float(step))

    def set_tempo(self, tempo_bpm: float) -> None:
        pinned = self._pinned
        super().set_tempo(tempo_bpm)
        if pinned is not None and pinned[0] == self._origin_s:
            self._origin_steps = pinned[1]


class MidiClockFollower:
    """Position from a DAW's MIDI clock, fed the clock messages in arrival order.

    Between ticks the position is interpolated at the measured tick rate, never past the
    next tick. The rate is measured over the last beat (``TEMPO_WINDOW_TICKS`` ticks, fewer
    just after Start): a tick's arrival jitters by milliseconds on its way from the DAW (a
    JACK period, a USB frame), which a beat divides by 24, and a tempo change is followed
    within a beat. Start plays from step 0, Continue from the last Song Position Pointer (or
    where it stopped); either bumps ``epoch`` when the position jumps. Before the first
    Start (or after Stop) ``running`` is False and the loop closes no bars.
    """

    follows_midi = True

    def __init__(self, now_s: Callable[[], float] = time.perf_counter,
                 tempo_bpm: float = 120.0) -> None:
        self._now_s = now_s
        self.running = False
        self.epoch = 0
        self._ticks = 0  # ticks since step 0 at the last clock message
        self._armed = False  # after Start/Continue the next tick is the current position
        self._tick_interval_s = 60.0 / (tempo_bpm * 24)  # a guess until two ticks arrive
        # the times of the last beat's ticks since Start, Continue or a jump (empty: none)
        self._recent_s: deque[float] = deque(maxlen=TEMPO_WINDOW_TICKS + 1)

    @property
    def tempo_bpm(self) -> float:
        return 60.0 / (self._tick_interval_s * 24)

    def now_s(self) -> float:
        return self._now_s()

    def feed(self, t_s: float, message: mido.Message) -> None:
        """Apply one MIDI clock message received at ``t_s``."""
        kind = message.type
        if kind == "clock":
            self._tick(t_s)
        elif kind == "start":
            self._relocate(0)
            self.running = True
        elif kind == "continue":
            self._relocate(self._ticks)
            self.running = True
        elif kind == "stop":
            self.running = False
        elif kind == "songpos":
            # Song Position Pointer counts MIDI beats, i.e. sixteenths.
            self._relocate(message.pos * TICKS_PER_STEP)

    def _relocate(self, ticks: int) -> None:
        self._ticks = ticks
        self._armed = True
        self._recent_s.clear()  # a jump: the time since the last tick is not a tick's
        self.epoch += 1

    def _tick(self, t_s: float) -> None:
        if not self.running:
            return
        if self._armed:
            self._armed = False
        else:
            self._ticks += 1
        recent = self._recent_s
        recent.append(t_s)
        if len(recent) > 1 and recent[-1] > recent[0]:
            self._tick_interval_s = (recent[-1] - recent[0]) / (len(recent) - 1)

    def step_at(self, t_s: float) -> float:
        if not self._recent_s or not self.running:
            return self._ticks / TICKS_PER_STEP
        fraction = min(max((t_s - self._recent_s[-1]) / self._tick_interval_s, 0.0), 1.0)
        return (self._ticks + fraction) / TICKS_PER_STEP

    def now_steps(self) -> float:
        return self.step_at(self.now_s())

    def seconds_until(self, step: float) -> float:
        return (step - self.now_steps()) * TICKS_PER_STEP * self._tick_interval_s

    def set_tempo(self, tempo_bpm: float) -> None:
        raise ValueError("following MIDI clock: the tempo comes from the DAW")

    def begin(self) -> None:
        """The DAW's clock decides where the music is."""

    def close(self) -> None:
        """Nothing to leave."""
