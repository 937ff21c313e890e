import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qbdi.bars import (
    ARTICULATED,
    BAR_SHAPE,
    BAR_SIZE,
    HIGHEST_PITCH,
    LOWEST_PITCH,
    SOUNDING,
    Note,
    bars_to_notes,
    chroma_per_bar,
    flatten_bars,
    fold_pitch,
    notes_to_bars,
    unflatten_bars,
)


@st.composite
def note_lists(draw, max_bars: int = 4):
    """Notes in range, at least one step long, never two of one pitch overlapping."""
    n_steps = 16 * max_bars
    notes = []
    for pitch in draw(st.sets(st.integers(LOWEST_PITCH, HIGHEST_PITCH), max_size=6)):
        cuts = sorted(draw(st.sets(st.integers(0, n_steps), min_size=0, max_size=8)))
        for start, end in zip(cuts[::2], cuts[1::2], strict=False):
            if end > start:
                notes.append(Note(start, pitch, end, draw(st.integers(1, 127))))
    return sorted(notes)


@given(note_lists())
def test_round_trip_gives_the_same_notes(notes):
    decoded = bars_to_notes(notes_to_bars(notes))
    assert [(n.start_step, n.pitch, n.end_step) for n in decoded] == [
        (n.start_step, n.pitch, n.end_step) for n in notes
    ]


@given(note_lists())
def test_flatten_is_the_papers_layout(notes):
    bars = notes_to_bars(notes, n_bars=4)
    flat = flatten_bars(bars)
    assert flat.shape == (4, BAR_SIZE) == (4, 2496)
    for note in notes:
        bar, step = divmod(note.start_step, 16)
        index = step * 156 + 78 + (note.pitch - LOWEST_PITCH)  # articulated block of the step
        assert flat[bar, index] == 1.0
    assert np.array_equal(unflatten_bars(flat).astype(bool), bars)


def test_note_held_over_barline_is_sounding_not_articulated_in_next_bar():
    bars = notes_to_bars([Note(12, 60, 20)])
    column = 60 - LOWEST_PITCH
    assert bars[1, 0, SOUNDING, column] and not bars[1, 0, ARTICULATED, column]
    assert bars[0, 12, ARTICULATED, column]
    assert bars_to_notes(bars) == [Note(12, 60, 20)]


def test_a_bar_decoded_alone_starts_a_held_note_at_step_zero():
    bars = notes_to_bars([Note(12, 60, 20)])
    assert bars_to_notes(bars[1]) == [Note(0, 60, 4)]


def test_repeated_notes_stay_separate():
    notes = [Note(0, 60, 4), Note(4, 60, 8)]
    assert bars_to_notes(notes_to_bars(notes)) == notes


@pytest.mark.parametrize(("pitch", "folded"), [(0, 24), (23, 35), (24, 24), (101, 101),
                                               (102, 90), (127, 91), (12, 24)])
def test_out_of_range_pitches_fold_by_octaves(pitch, folded):
    assert fold_pitch(pitch) == folded
    assert bars_to_notes(notes_to_bars([Note(0, pitch, 2)]))[0].pitch == folded


@given(st.integers(0, 127))
def test_fold_keeps_pitch_class_and_stays_in_range(pitch):
    folded = fold_pitch(pitch)
    assert LOWEST_PITCH <= folded <= HIGHEST_PITCH and folded % 12 == pitch % 12


def test_empty_input_gives_empty_bars():
    assert notes_to_bars([]).shape == (0, *BAR_SHAPE)
    silent = notes_to_bars([], n_bars=2)
    assert silent.shape == (2, *BAR_SHAPE) and not silent.any()
    assert bars_to_notes(silent) == []


def test_zero_length_note_keeps_one_step():
    assert bars_to_notes(notes_to_bars([Note(5, 60, 5)])) == [Note(5, 60, 6)]


def test_articulation_without_sounding_decodes_to_a_one_step_note():
    bars = np.zeros((1, *BAR_SHAPE), dtype=bool)
    bars[0, 3, ARTICULATED, 10] = True
    assert bars_to_notes(bars) == [Note(3, LOWEST_PITCH + 10, 4)]


def test_velocity_per_bar_and_offset():
    bars = notes_to_bars([Note(0, 60, 2), Note(16, 62, 18)])
    notes = bars_to_notes(bars, velocities=np.array([30, 90]), first_step=32)
    assert notes == [Note(32, 60, 34, 30), Note(48, 62, 50, 90)]


def test_chroma_counts_sounding_steps_per_pitch_class():
    chroma = chroma_per_bar(notes_to_bars([Note(0, 60, 4), Note(0, 72, 2), Note(8, 67, 16)]))
    expected = np.zeros(12)
    expected[0], expected[7] = 6, 8
    assert np.array_equal(chroma[0], expected)


def test_wrong_bar_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        bars_to_notes(np.zeros((2, 16, 78)))
