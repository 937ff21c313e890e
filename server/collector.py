"""Collect one bar of the player's input: notes quantised to sixteenths, held notes across
barlines, velocities kept.

Guarantees:

* Onsets and releases round to the nearest sixteenth; a note keeps at least one step.
* A note still held at the end of a bar sounds to the end of it and, in the next bar, is
  *sounding but not articulated* at step 0 (the codec's rule for tied notes).
* A note struck again while held ends there and starts anew.
* An event stamped inside a bar that is already closed counts from the first open step
  (a late callback never rewrites a bar that was answered).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qbdi.bars import STEPS_PER_BAR, Note, mean_velocity, notes_to_bars


@dataclass(frozen=True, slots=True)
class CollectedBar:
    """One closed bar of input."""

    index: int
    bar: np.ndarray  # (16, 2, 78) bool
    velocity: int | None  # mean velocity of the notes struck in the bar; None if none
    notes_struck: int

    @property
    def empty(self) -> bool:
        return not self.bar.any()


@dataclass(slots=True)
class _Held:
    start_step: int
    velocity: int


class BarCollector:
    """Input notes by absolute step; :meth:`close` turns bar ``n`` into a bar array."""

    def __init__(self) -> None:
        self._held: dict[int, _Held] = {}
        self._done: list[tuple[int, int, int, int]] = []  # (start, end, pitch, velocity)
        self._open_step = 0  # first step of the first bar not yet closed

    def restart(self, first_bar: int) -> None:
        """Forget everything (a clock jump); bars before ``first_bar`` count as closed."""
        self._held.clear()
        self._done.clear()
        self._open_step = first_bar * STEPS_PER_BAR

    def _quantise(self, position_steps: float) -> int:
        return max(round(position_steps), self._open_step)

    def note_on(self, position_steps: float, pitch: int, velocity: int) -> None:
        step = self._quantise(position_steps)
        if pitch in self._held:
            self.note_off(position_steps, pitch)
        self._held[pitch] = _Held(step, velocity)

    def note_off(self, position_steps: float, pitch: int) -> None:
        held = self._held.pop(pitch, None)
        if held is None:
            return  # a release without its press (pressed before we started): nothing to end
        end = max(self._quantise(position_steps), held.start_step + 1)
        self._done.append((held.start_step, end, pitch, held.velocity))

    @property
    def held_pitches(self) -> list[int]:
        return sorted(self._held)

    def close(self, index: int) -> CollectedBar:
        """Close bar ``index``: its array, and forget the notes that ended in it."""
        first = index * STEPS_PER_BAR
        last = first + STEPS_PER_BAR
        spans = self._done + [(h.start_step, last, p, h.velocity) for p, h in self._held.items()]
        notes = [Note(start, pitch, end, velocity) for start, end, pitch, velocity in spans
                 if start < last and end > first]
        bar = notes_to_bars(notes, 1, first_step=first)[0]
        struck = [note.velocity for note in notes if note.start_step >= first]
        self._done = [span for span in self._done if span[1] > last]
        self._open_step = max(self._open_step, last)
        return CollectedBar(index, bar, mean_velocity(struck), len(struck))
