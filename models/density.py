"""How dense bars are (note starts, sounding cells, voices), and the calibration of the
decoding biases (:mod:`~qbdi.models.decoding`) to a reference's density: vertically
(sounding cells per bar) and horizontally (note starts per bar)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from qbdi.bars import ARTICULATED, SOUNDING
from qbdi.models.decoding import NoteDecoding, decode

NOTES = NoteDecoding()  # the notes method with no biases, where a calibration starts


def starts_per_bar(bars: np.ndarray) -> float:
    """Mean number of note starts per bar (articulations, plus notes sounding without one
    where the pitch was off the step before); 0 for no bars."""
    bars = np.asarray(bars, dtype=bool)
    if len(bars) == 0:
        return 0.0
    on = bars[:, :, SOUNDING, :] | bars[:, :, ARTICULATED, :]
    starts = bars[:, :, ARTICULATED, :].copy()
    starts[:, 1:] |= on[:, 1:] & ~on[:, :-1]
    return float(starts.sum() / len(bars))


def sounding_per_bar(bars: np.ndarray) -> float:
    """Mean number of sounding cells (pitch-steps) per bar; 0 for no bars."""
    bars = np.asarray(bars, dtype=bool)
    return float(bars[:, :, SOUNDING, :].sum() / len(bars)) if len(bars) else 0.0


def voices_per_step(bars: np.ndarray) -> int:
    """The median number of sounding pitches over the steps that sound (1 for no sound):
    the corpus's number of voices, for :func:`decode_voices`."""
    bars = np.asarray(bars, dtype=bool)
    counts = bars[:, :, SOUNDING, :].sum(axis=2).ravel()
    counts = counts[counts > 0]
    return int(np.median(counts)) if len(counts) else 1


def _bisect(measure, target: float, low: float, high: float, iterations: int) -> float:
    """The argument in [low, high] where the increasing ``measure`` crosses ``target``."""
    if measure(low) >= target:
        return low
    if measure(high) <= target:
        return high
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        if measure(middle) < target:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def calibrate_biases(logits: np.ndarray, target_sounding_per_bar: float,
                     target_starts_per_bar: float, params: NoteDecoding = NOTES, *,
                     bound: float = 8.0, rounds: int = 3, iterations: int = 14) -> NoteDecoding:
    """``params`` with ``sounding_bias`` and ``onset_bias`` set so that
    :func:`decode` of ``logits`` has the target sounding cells and note starts per
    bar: alternating bisections (each bias moves mostly its own measure), ``rounds`` times.
    A target out of reach leaves its bias at ``-bound`` or ``bound``."""
    def voices(bias: float, base: NoteDecoding) -> float:
        return sounding_per_bar(decode(logits, replace(base, sounding_bias=bias)))

    def starts(bias: float, base: NoteDecoding) -> float:
        return starts_per_bar(decode(logits, replace(base, onset_bias=bias)))

    for _ in range(rounds):
        params = replace(params, sounding_bias=_bisect(
            partial(voices, base=params), target_sounding_per_bar, -bound, bound, iterations))
        params = replace(params, onset_bias=_bisect(
            partial(starts, base=params), target_starts_per_bar, -bound, bound, iterations))
    return params
