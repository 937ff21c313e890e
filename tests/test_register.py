"""Octave-centring of query bars: pitch classes kept, mean pitch moved towards the centre."""

from __future__ import annotations

import numpy as np

from qbdi.bars import Note, bars_to_notes, chroma_per_bar, notes_to_bars
from qbdi.models.register import centre_octaves, mean_pitch, octave_shift, octave_shifts


def _bars():
    high = [Note(0, 84, 8), Note(8, 88, 16), Note(0, 91, 16)]  # around E6
    low = [Note(16, 36, 32), Note(16, 43, 24)]  # around C2
    middle = [Note(32, 60, 48), Note(32, 64, 48)]
    return notes_to_bars(high + low + middle, 4)  # bar 3 is silent


def test_bars_move_by_octaves_towards_the_centre_keeping_chroma_and_rhythm():
    bars = _bars()
    out = centre_octaves(bars, 62.0)
    assert list(octave_shifts(bars, 62.0)) == [-24, 24, 0, 0]
    assert np.all(np.abs(mean_pitch(out)[:3] - 62.0) <= 6.0)
    assert np.array_equal(chroma_per_bar(out), chroma_per_bar(bars))
    assert np.array_equal(out[2:], bars[2:])
    moved = bars_to_notes(out)
    assert [(n.start_step, n.end_step) for n in moved] == [
        (n.start_step, n.end_step) for n in bars_to_notes(bars)]


def test_notes_pushed_out_of_range_fold_back():
    wide = notes_to_bars([Note(0, 30, 16), Note(0, 98, 16), Note(0, 97, 16)], 1)
    out = centre_octaves(wide, 100.0)  # mean ~75 -> +24: 98 and 97 fold back into range
    assert out.shape == wide.shape and out.any()
    assert np.array_equal(chroma_per_bar(out) > 0, chroma_per_bar(wide) > 0)


def test_silent_bars_have_no_mean_and_do_not_move():
    silent = np.zeros((2, 16, 2, 78), bool)
    assert np.all(np.isnan(mean_pitch(silent)))
    assert np.array_equal(centre_octaves(silent, 60.0), silent)


def test_one_bar_moves_as_it_does_in_a_batch():
    """The live bar (one at a time) and offline rendering (a batch) move each bar alike,
    by the octave nearest the mean pitch that mean_pitch measures."""
    rng = np.random.default_rng(3)
    bars = rng.random((200, 16, 2, 78)) < rng.uniform(0.0, 0.03, (200, 1, 1, 1))
    centre = 61.7
    shifts = octave_shifts(bars, centre)
    expected = np.where(np.isnan(mean_pitch(bars)), 0,
                        12 * np.round((centre - np.nan_to_num(mean_pitch(bars))) / 12))
    assert np.array_equal(shifts, expected)
    assert [octave_shift(bar, centre) for bar in bars] == shifts.tolist()
    batch = centre_octaves(bars, centre)
    for i in range(0, 200, 17):
        assert np.array_equal(centre_octaves(bars[i : i + 1], centre)[0], batch[i])
