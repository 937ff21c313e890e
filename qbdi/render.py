"""Offline rendering: a query MIDI file in, an improvisation MIDI file out.

Bar i of the output answers bar i of the query, at the same beats and tempo map. Output
velocity per bar follows the mean velocity of the query's notes starting in that bar
(80 where the query bar has none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qbdi.bars import STEPS_PER_BAR, Note, bars_to_notes, notes_to_bars
from qbdi.improviser import Improviser
from qbdi.midifile import Score, Track, write_midi

DEFAULT_VELOCITY = 80


@dataclass(frozen=True, slots=True)
class Rendering:
    query_bars: np.ndarray
    output_bars: np.ndarray
    notes: list[Note]
    dims_with_bits: float  # mean over bars


def bar_velocities(notes: list[Note], n_bars: int) -> np.ndarray:
    """Mean velocity of the notes starting in each bar; DEFAULT_VELOCITY for empty bars."""
    totals = np.zeros(n_bars)
    counts = np.zeros(n_bars)
    for note in notes:
        bar = note.start_step // STEPS_PER_BAR
        if bar < n_bars:
            totals[bar] += note.velocity
            counts[bar] += 1
    mean = np.divide(totals, counts, out=np.full(n_bars, float(DEFAULT_VELOCITY)),
                     where=counts > 0)
    return np.clip(np.rint(mean), 1, 127).astype(int)


def render_score(score: Score, improviser: Improviser,
                 on_progress: Callable[[int], None] | None = None) -> Rendering:
    """Answer every bar of ``score``; ``on_progress(k)`` as in :meth:`Improviser.improvise`."""
    query_bars = notes_to_bars(score.notes)
    output_bars, answers = improviser.improvise(query_bars, on_progress)
    notes = bars_to_notes(output_bars, bar_velocities(score.notes, len(query_bars)))
    return Rendering(query_bars, output_bars, notes, answers.mean_dims_with_bits())


def write_rendering(path: str | Path, score: Score, rendering: Rendering,
                    with_query: bool = False) -> None:
    """Write the improvisation on channel 1, and the query on channel 2 if asked."""
    tracks = [Track(rendering.notes, channel=0, name="qbdi improvisation")]
    if with_query:
        tracks.append(Track(score.notes, channel=1, name="query"))
    write_midi(path, tracks, score.tempos, score.time_signatures)


def parse_budget(text: str) -> int | str:
    """``"256"`` -> 256, ``"full"`` -> "full"; anything else raises ValueError."""
    text = text.strip().lower()
    if text == "full":
        return "full"
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"bits must be a whole number >= 0 or 'full', got {text!r}") from None
    if value < 0:
        raise ValueError(f"bits must be >= 0 or 'full', got {value}")
    return value


def sweep_path(out: Path, budget: int | str) -> Path:
    """``out.mid`` + budget 64 -> ``out.bits-64.mid``."""
    return out.with_name(f"{out.stem}.bits-{budget}{out.suffix or '.mid'}")

