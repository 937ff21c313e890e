"""The bar codec: notes on a sixteenth grid <-> binary bar arrays.

One bar is 16 sixteenth steps of 78 pitches (MIDI 24..101). Per step and pitch there are
two features, *sounding* (the note is held during the step) and *articulated* (the note
starts at the step). A bar array has shape ``(16, 2, 78)`` = ``BAR_SHAPE``; flattened in C
order it is the paper's 2496-vector: per step ``[sounding(78), articulated(78)]``, the 16
steps concatenated.

Guarantees:

* ``bars_to_notes(notes_to_bars(notes))`` returns ``notes`` exactly when the notes are in
  range, at least one step long, and no two notes of the same pitch overlap.
* A note held over a barline is *sounding but not articulated* at step 0 of the next bar,
  and decodes back to one note.
* Pitches outside 24..101 are folded by octaves into the range (C1 and below go up, F7
  and above go down); nothing is dropped and nothing raises.

This module is pure numpy: no MIDI I/O (see :mod:`qbdi.midifile`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

STEPS_PER_BAR = 16
STEPS_PER_BEAT = 4
LOWEST_PITCH = 24
HIGHEST_PITCH = 101
N_PITCHES = HIGHEST_PITCH - LOWEST_PITCH + 1  # 78
SOUNDING = 0
ARTICULATED = 1
BAR_SHAPE = (STEPS_PER_BAR, 2, N_PITCHES)
BAR_SIZE = STEPS_PER_BAR * 2 * N_PITCHES  # 2496


@dataclass(frozen=True, slots=True, order=True)
class Note:
    """One note on the sixteenth grid; steps count from the start of the piece.

    ``end_step`` is exclusive, so a note lasts ``end_step - start_step`` sixteenths.
    """

    start_step: int
    pitch: int
    end_step: int
    velocity: int = 80

    @property
    def duration_steps(self) -> int:
        return self.end_step - self.start_step


def fold_pitch(pitch: int) -> int:
    """Move ``pitch`` by whole octaves into ``LOWEST_PITCH..HIGHEST_PITCH``."""
    while pitch < LOWEST_PITCH:
        pitch += 12
    while pitch > HIGHEST_PITCH:
        pitch -= 12
    return pitch


def n_bars_for(notes: Iterable[Note]) -> int:
    """The number of whole bars needed to hold every note (0 for no notes)."""
    last_step = max((n.end_step for n in notes), default=0)
    return -(-last_step // STEPS_PER_BAR)


def notes_to_bars(notes: Sequence[Note], n_bars: int | None = None,
                  first_step: int = 0) -> np.ndarray:
    """Encode notes as a ``(n_bars, 16, 2, 78)`` bool array whose first bar starts at
    ``first_step``.

    Pitches are folded into range; a note shorter than one step counts as one step. A note
    begun before ``first_step`` and still held is sounding but not articulated (held over
    the barline). Notes ending after the last bar are cut there; notes starting after it
    are left out.
    """
    if n_bars is None:
        n_bars = n_bars_for(notes)
    n_steps = n_bars * STEPS_PER_BAR
    grid = np.zeros((n_steps, 2, N_PITCHES), dtype=bool)
    for note in notes:
        start = note.start_step - first_step
        end = max(note.end_step, note.start_step + 1) - first_step
        if start >= n_steps or end <= 0:
            continue
        column = fold_pitch(note.pitch) - LOWEST_PITCH
        grid[max(start, 0) : min(end, n_steps), SOUNDING, column] = True
        if start >= 0:
            grid[start, ARTICULATED, column] = True
    return grid.reshape(n_bars, *BAR_SHAPE)


def mean_velocity(velocities: Sequence[int]) -> int | None:
    """The velocity an answer takes from the notes struck in the bar it answers: their
    mean, rounded half to even; None when none was struck (each caller says what then)."""
    return round(sum(velocities) / len(velocities)) if velocities else None


def bars_to_notes(
    bars: np.ndarray,
    velocities: np.ndarray | int = 80,
    first_step: int = 0,
) -> list[Note]:
    """Decode bars to notes, sorted by start step then pitch.

    ``bars`` is ``(n_bars, 16, 2, 78)`` or one ``(16, 2, 78)`` bar, of bools (or 0/1).
    A note starts where *articulated* is on, or where *sounding* turns on without an
    articulation, and lasts while *sounding* stays on without a new articulation; an
    articulation with *sounding* off gives a one-step note. Consecutive bars are read as
    one stream, so a note held over a barline is one note. ``velocities`` is one value or
    one per bar. Steps are offset by ``first_step``.
    """
    bars = np.asarray(bars, dtype=bool)
    if bars.ndim == 3:
        bars = bars[None]
    if bars.shape[1:] != BAR_SHAPE:
        raise ValueError(f"bars must have shape (n, {BAR_SHAPE}), got {bars.shape}")
    n_bars = bars.shape[0]
    bar_velocity = np.broadcast_to(np.asarray(velocities, dtype=int), (n_bars,))
    grid = bars.reshape(n_bars * STEPS_PER_BAR, 2, N_PITCHES)
    sounding = grid[:, SOUNDING, :]
    articulated = grid[:, ARTICULATED, :]
    # A note is "on" at a step where it sounds or is articulated; it starts at an
    # articulation or where "on" rises from off.
    on = sounding | articulated
    was_on = np.zeros_like(on)
    was_on[1:] = on[:-1]
    starts = articulated | (on & ~was_on)
    notes = []
    for step, column in zip(*np.nonzero(starts), strict=True):
        end = step + 1
        while end < len(grid) and sounding[end, column] and not articulated[end, column]:
            end += 1
        velocity = int(bar_velocity[step // STEPS_PER_BAR])
        pitch = int(column) + LOWEST_PITCH
        notes.append(Note(int(step) + first_step, pitch, int(end) + first_step, velocity))
    notes.sort()
    return notes


def flatten_bars(bars: np.ndarray) -> np.ndarray:
    """``(n, 16, 2, 78)`` -> ``(n, 2496)`` float32, the model's input layout."""
    return np.ascontiguousarray(bars, dtype=np.float32).reshape(len(bars), BAR_SIZE)


def unflatten_bars(flat: np.ndarray) -> np.ndarray:
    """``(n, 2496)`` -> ``(n, 16, 2, 78)``, keeping the dtype."""
    return np.asarray(flat).reshape(len(flat), *BAR_SHAPE)


_PITCH_TO_CLASS = np.eye(12)[(np.arange(N_PITCHES) + LOWEST_PITCH) % 12]  # (78, 12) one-hot


def chroma(bars: np.ndarray, frames_per_bar: int = 1) -> np.ndarray:
    """Duration-weighted pitch-class profiles, ``(n_bars * frames_per_bar, 12)`` float64.

    Each sounding step of a pitch adds one to its pitch class in the frame that holds the
    step; ``frames_per_bar`` divides the 16 steps (16 steps, 4 beats, 1 bar). Silent frames
    give zeros."""
    sounding = np.asarray(bars, dtype=bool)[:, :, SOUNDING, :].reshape(-1, N_PITCHES)
    steps = sounding.astype(np.float64) @ _PITCH_TO_CLASS  # (n_steps, 12)
    return steps.reshape(-1, STEPS_PER_BAR // frames_per_bar, 12).sum(axis=1)


def sounding_bars(bars: np.ndarray) -> np.ndarray:
    """Which of ``(n, 16, 2, 78)`` bars sound at all, ``(n,)`` bool."""
    return np.asarray(bars, dtype=bool)[:, :, SOUNDING].any(axis=(1, 2))


def chroma_per_bar(bars: np.ndarray) -> np.ndarray:
    """The pitch-class profile of each bar, ``(n_bars, 12)``: :func:`chroma` of one frame a
    bar."""
    return chroma(bars, 1)
