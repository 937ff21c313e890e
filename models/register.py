"""Moving query bars by whole octaves into the corpus's register before they are encoded.

A player's bar may sit anywhere on the keyboard; the corpus's bars sit in its own range (the
chorales' four voices span about C3 to C5). Encoded where it is, a bar far from that range is
outside what the model learned, and its answer keeps the player's register, which is as much
a part of a texture as its rhythm. Moved by whole octaves towards the corpus's mean pitch,
the bar keeps its pitch classes (so the harmony the answer follows is the same: chroma is
unchanged) and the answer comes out in the corpus's register.

Pure numpy; the corpus's centre is measured by :func:`mean_pitch` at training time and
stored with the model, as is the range its answers sound in (:func:`sounding_range`).
"""

from __future__ import annotations

import functools

import numpy as np

from qbdi.bars import LOWEST_PITCH, N_PITCHES, SOUNDING, fold_pitch

OCTAVE = 12
_COLUMNS = np.arange(N_PITCHES)


def mean_pitch(bars: np.ndarray) -> np.ndarray:
    """Per bar, the mean MIDI pitch of its sounding cells (each sounding step weighs one),
    ``(n,)`` float64; NaN for a silent bar."""
    weights = np.asarray(bars, dtype=bool)[:, :, SOUNDING, :].sum(axis=1)  # (n, 78)
    total = weights.sum(axis=1)
    centre = (weights @ _COLUMNS) / np.maximum(total, 1) + LOWEST_PITCH
    return np.where(total > 0, centre, np.nan)


def sounding_range(bars: np.ndarray) -> tuple[int, int] | None:
    """The lowest and highest MIDI pitch that sounds in ``(n, 16, 2, 78)`` bars; None when
    none does."""
    columns = np.flatnonzero(np.asarray(bars, dtype=bool)[:, :, SOUNDING].any(axis=(0, 1)))
    if len(columns) == 0:
        return None
    return int(columns[0]) + LOWEST_PITCH, int(columns[-1]) + LOWEST_PITCH


def octave_shift(bar: np.ndarray, centre_pitch: float) -> int:
    """The multiple of 12 semitones that brings one ``(16, 2, 78)`` bar's mean sounding pitch
    (as :func:`mean_pitch` weighs it) nearest ``centre_pitch``; 0 for a silent bar. Equal to
    :func:`octave_shifts` of that bar (``tests/test_register.py`` holds them equal)."""
    # Python scalars after one nonzero: the live loop asks this of every bar, and on
    # (1,)-shaped arrays numpy's cost is its per-call overhead (benchmarks/README.md)
    columns = np.nonzero(bar[:, SOUNDING])[1]
    if len(columns) == 0:
        return 0
    centre = int(columns.sum()) / len(columns) + LOWEST_PITCH
    return OCTAVE * round((centre_pitch - centre) / OCTAVE)


def octave_shifts(bars: np.ndarray, centre_pitch: float) -> np.ndarray:
    """:func:`octave_shift` of each of ``(n, 16, 2, 78)`` bars, ``(n,)`` int, in one pass
    over the batch (offline rendering moves thousands of bars at a time)."""
    centre = mean_pitch(bars)
    silent = np.isnan(centre)
    centre[silent] = centre_pitch  # a silent bar stays where it is
    return (OCTAVE * np.round((centre_pitch - centre) / OCTAVE)).astype(int)


@functools.lru_cache(maxsize=16)
def _column_runs(semitones: int) -> tuple[tuple[slice, slice], ...]:
    """Where the pitch columns go when moved by ``semitones`` (folded back into range by
    octaves, as the bar codec folds: :func:`qbdi.bars.fold_pitch`), as runs of neighbouring
    columns that stay neighbours: ``(source, destination)`` slices. Cached: the live loop
    asks for the same few moves every bar."""
    moved = [fold_pitch(p + LOWEST_PITCH + semitones) - LOWEST_PITCH for p in range(N_PITCHES)]
    runs, start = [], 0
    for p in range(1, N_PITCHES + 1):
        if p == N_PITCHES or moved[p] != moved[p - 1] + 1:
            runs.append((slice(start, p), slice(moved[start], moved[p - 1] + 1)))
            start = p
    return tuple(runs)


def _moved(bars: np.ndarray, semitones: int) -> np.ndarray:
    """``bars`` with every pitch column moved by ``semitones`` (folded back into range); two
    columns that land on one pitch sound where either did."""
    out = np.zeros_like(bars)
    for source, destination in _column_runs(semitones):
        out[..., destination] |= bars[..., source]
    return out


def centre_octaves(bars: np.ndarray, centre_pitch: float) -> np.ndarray:
    """``(n, 16, 2, 78)`` bars, each moved by whole octaves so that its mean sounding pitch
    is nearest ``centre_pitch`` (MIDI). A new bool array; pitch classes, rhythm and silent
    bars are unchanged; notes the move pushes out of range fold back by octaves (two notes
    may then merge)."""
    bars = np.asarray(bars, dtype=bool)
    if len(bars) == 1:  # the live bar: one move or none
        shift = octave_shift(bars[0], centre_pitch)
        return _moved(bars, shift) if shift else bars.copy()
    shifts = octave_shifts(bars, centre_pitch)
    if not shifts.any():
        return bars.copy()
    out = np.zeros_like(bars)
    for semitones in np.unique(shifts):
        rows = shifts == semitones
        out[rows] = _moved(bars[rows], int(semitones)) if semitones else bars[rows]
    return out
