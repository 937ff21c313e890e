"""Note decoding: the exact best path per pitch, valid bars, density calibration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qbdi.bars import ARTICULATED, BAR_SIZE, SOUNDING, Note, bars_to_notes, notes_to_bars
from qbdi.models.decoding import HELD, OFF, ONSET, NoteDecoding, decode, decode_notes
from qbdi.models.density import calibrate_biases, sounding_per_bar, starts_per_bar, voices_per_step


def _logits_of(bars: np.ndarray, confidence: float = 4.0) -> np.ndarray:
    """Logits that say ``bars`` with the given log-odds."""
    flat = bars.reshape(len(bars), BAR_SIZE).astype(np.float32)
    return (2 * flat - 1) * confidence


def _path_score(states, sounding, articulated, params: NoteDecoding) -> float:
    table = params.transitions()
    score = 0.0
    for step, state in enumerate(states):
        if state != OFF:
            score += sounding[step] + params.sounding_bias
        if state == ONSET:
            score += articulated[step] + params.onset_bias
        if step:
            score += table[states[step - 1], state]
        elif state == HELD:
            score -= params.tie_cost
    return score


def _brute_force(sounding, articulated, params: NoteDecoding, steps: int):
    """The best valid path over the first ``steps`` steps (the rest forced off)."""
    best, best_score = None, -np.inf
    for path in itertools.product((OFF, ONSET, HELD), repeat=steps):
        if any(b == HELD and a == OFF for a, b in itertools.pairwise(path)):
            continue
        score = _path_score(path, sounding, articulated, params)
        if score > best_score:
            best, best_score = path, score
    return best


@pytest.mark.parametrize("params", [NoteDecoding(), NoteDecoding("notes", 0.5, -0.3, 0.3, 0.1, 0.0),
                                    NoteDecoding("notes", -1.0, 1.0, 2.5, 4.0, 5.0),
                                    NoteDecoding("notes", 0.0, 0.0, 0.0, 0.0, 0.0)])
def test_equals_brute_force_on_short_bars(params):
    # Steps 6..15 strongly off: the best path there is off, so the first six steps can be
    # checked against every valid path.
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2.5, size=(4, 16, 2, 78)).astype(np.float32)
    logits[:, 6:] = -50.0
    out = decode_notes(logits.reshape(4, BAR_SIZE), params)
    for bar, pitch in itertools.product(range(4), range(0, 78, 7)):
        expected = _brute_force(logits[bar, :6, SOUNDING, pitch],
                                logits[bar, :6, ARTICULATED, pitch], params, 6)
        got = np.where(out[bar, :6, ARTICULATED, pitch], ONSET,
                       np.where(out[bar, :6, SOUNDING, pitch], HELD, OFF))
        assert tuple(got) == expected
        assert not out[bar, 6:, :, pitch].any()


def test_output_is_a_valid_bar():
    rng = np.random.default_rng(1)
    out = decode_notes(rng.normal(-1, 3, size=(20, BAR_SIZE)),
                       NoteDecoding(sounding_bias=0.3, onset_bias=0.2))
    sounding, articulated = out[:, :, SOUNDING], out[:, :, ARTICULATED]
    assert not (articulated & ~sounding).any()
    rises = sounding[:, 1:] & ~sounding[:, :-1]
    assert not (rises & ~articulated[:, 1:]).any()


def test_confident_logits_decode_to_their_notes():
    notes = [Note(0, 60, 4), Note(4, 60, 8), Note(0, 64, 16), Note(8, 67, 10), Note(12, 48, 16)]
    bars = notes_to_bars(notes, 1)
    out = decode_notes(_logits_of(bars))
    assert bars_to_notes(out) == bars_to_notes(bars)


def test_a_flickering_note_is_one_note():
    # Sounding is likely throughout, with one doubtful step and scattered articulation
    # doubts; the cell threshold would cut it, the path keeps it whole.
    logits = np.full((1, 16, 2, 78), -8.0, dtype=np.float32)
    logits[0, :, SOUNDING, 30] = 2.0
    logits[0, 7, SOUNDING, 30] = -0.5
    logits[0, 0, ARTICULATED, 30] = 3.0
    logits[0, 5, ARTICULATED, 30] = -0.3
    out = decode_notes(logits.reshape(1, BAR_SIZE))
    assert len(bars_to_notes(out)) == 1
    assert out[0, :, SOUNDING, 30].all()


def test_silence_and_empty_input():
    assert not decode_notes(np.full((2, BAR_SIZE), -6.0)).any()
    assert decode_notes(np.zeros((0, BAR_SIZE))).shape == (0, 16, 2, 78)


def test_writes_into_out_and_is_deterministic():
    rng = np.random.default_rng(2)
    logits = rng.normal(-1, 3, size=(3, BAR_SIZE))
    out = np.ones((3, 16, 2, 78), dtype=bool)
    result = decode_notes(logits, NoteDecoding(), out=out)
    assert result is out
    assert np.array_equal(out, decode_notes(logits))


def test_density_rises_with_the_biases_and_calibration_hits_both_targets():
    rng = np.random.default_rng(3)
    logits = rng.normal(-4, 3, size=(200, BAR_SIZE)).astype(np.float32)
    voices = [sounding_per_bar(decode_notes(logits, NoteDecoding(sounding_bias=bias)))
              for bias in (-2.0, 0.0, 2.0)]
    starts = [starts_per_bar(decode_notes(logits, NoteDecoding(onset_bias=bias)))
              for bias in (-2.0, 0.0, 2.0)]
    assert voices[0] < voices[1] < voices[2] and starts[0] < starts[1] < starts[2]
    params = calibrate_biases(logits, 60.0, 15.0, rounds=6)
    decoded = decode_notes(logits, params)
    assert abs(sounding_per_bar(decoded) - 60.0) < 3.0
    assert abs(starts_per_bar(decoded) - 15.0) < 1.0


def test_calibration_stops_at_the_bound_when_out_of_reach():
    logits = np.full((4, BAR_SIZE), -100.0, dtype=np.float32)
    params = calibrate_biases(logits, 60.0, 10.0, bound=1.0)
    assert params.sounding_bias == 1.0 and params.onset_bias == 1.0


def test_cells_are_each_decided_by_their_biased_log_odds():
    rng = np.random.default_rng(5)
    logits = rng.normal(0, 2, size=(3, BAR_SIZE)).astype(np.float32)
    params = NoteDecoding("cells", sounding_bias=0.5, onset_bias=-0.5)
    out = decode(logits, params)
    cells = logits.reshape(3, 16, 2, 78)
    assert np.array_equal(out[:, :, SOUNDING], cells[:, :, SOUNDING] > -0.5)
    assert np.array_equal(out[:, :, ARTICULATED],
                          (cells[:, :, ARTICULATED] > 0.5) & (cells[:, :, SOUNDING] > -0.5))
    with pytest.raises(ValueError, match="method"):
        decode(logits, NoteDecoding("beam"))


def test_cells_calibration_hits_both_targets():
    # Smooth logits (a level per pitch, articulation likely on the beats), as a decoder
    # gives: cell decisions then form notes, and both targets are within reach.
    rng = np.random.default_rng(6)
    logits = np.empty((200, 16, 2, 78), dtype=np.float32)
    logits[:, :, SOUNDING] = rng.normal(-4, 3, size=(200, 1, 78))
    logits[:, :, ARTICULATED] = rng.normal(-3, 1, size=(200, 16, 78))
    logits[:, ::4, ARTICULATED] += 3
    logits = logits.reshape(200, BAR_SIZE)
    decoded = decode(logits, calibrate_biases(logits, 60.0, 15.0, NoteDecoding("cells")))
    assert abs(sounding_per_bar(decoded) - 60.0) < 3.0
    assert abs(starts_per_bar(decoded) - 15.0) < 1.0


def test_voices_keep_the_most_probable_pitches_per_step():
    rng = np.random.default_rng(7)
    logits = rng.normal(-2, 3, size=(5, 16, 2, 78)).astype(np.float32)
    logits[0, 3, SOUNDING] = -9.0  # nothing likely: a silent step
    params = NoteDecoding("voices", sounding_bias=0.0, onset_bias=0.0, min_voices=3,
                          max_voices=4)
    out = decode(logits.reshape(5, BAR_SIZE), params)
    voices = out[:, :, SOUNDING].sum(axis=2)
    assert voices[0, 3] == 0
    assert np.all((voices == 0) | ((voices >= 3) & (voices <= 4)))
    for bar, step in [(1, 0), (2, 7), (4, 15)]:
        chosen = np.flatnonzero(out[bar, step, SOUNDING])
        best = np.argsort(-logits[bar, step, SOUNDING])[: len(chosen)]
        assert set(chosen) == set(best)
    sounding, articulated = out[:, :, SOUNDING], out[:, :, ARTICULATED]
    assert not (articulated & ~sounding).any()
    assert not (sounding[:, 1:] & ~sounding[:, :-1] & ~articulated[:, 1:]).any()
    assert np.array_equal(articulated[:, 0], sounding[:, 0])


def test_voices_per_step_is_the_median_over_sounding_steps():
    bars = notes_to_bars([Note(0, 60, 16), Note(0, 64, 16), Note(0, 67, 12), Note(0, 48, 4)], 1)
    assert voices_per_step(bars) == 3
    assert voices_per_step(np.zeros((1, 16, 2, 78), bool)) == 1


def test_a_fixed_number_of_voices_sounds_the_top_pitches():
    rng = np.random.default_rng(8)
    logits = rng.normal(-1, 3, size=(4, 16, 2, 78)).astype(np.float32)
    out = decode(logits.reshape(4, BAR_SIZE), NoteDecoding("voices", min_voices=4,
                                                           max_voices=4))
    for bar, step in itertools.product(range(4), range(16)):
        chosen = set(np.flatnonzero(out[bar, step, SOUNDING]))
        assert chosen == set(np.argsort(-logits[bar, step, SOUNDING])[:4]) or not chosen


def test_voices_ask_only_about_notes_held_on_and_re_strike_where_those_say():
    rng = np.random.default_rng(9)
    logits = rng.normal(-1, 3, size=(3, 16, 2, 78)).astype(np.float32)
    params = NoteDecoding("voices", onset_bias=0.5, min_voices=4, max_voices=4)
    asked = []

    def articulated_at(bar, step, pitch):
        asked.append((bar.copy(), step.copy(), pitch.copy()))
        return logits[bar, step, ARTICULATED, pitch]

    from qbdi.models.decoding import voices

    out = voices(logits[:, :, SOUNDING], articulated_at, params)
    assert np.array_equal(out, decode(logits.reshape(3, BAR_SIZE), params))
    (bar, step, pitch), = asked
    sounding = out[:, :, SOUNDING]
    held = np.zeros_like(sounding)
    held[:, 1:] = sounding[:, 1:] & sounding[:, :-1]
    assert len(bar) == np.count_nonzero(held) > 0 and held[bar, step, pitch].all()
    restruck = out[bar, step, ARTICULATED, pitch]
    assert np.array_equal(restruck, logits[bar, step, ARTICULATED, pitch] > -0.5)
    assert restruck.any() and not restruck.all()


def test_a_bar_that_must_sound_gets_the_corpus_s_steps_where_nothing_is_likely():
    from qbdi.models.config import AnswerConfig
    from qbdi.models.decoding import note_decoding

    rng = np.random.default_rng(10)
    logits = rng.normal(-8, 1, size=(3, 16, 2, 78)).astype(np.float32)  # nothing likely
    logits[2, 5, SOUNDING, 40] = 5.0  # bar 2 has one likely cell of its own
    params = note_decoding(AnswerConfig(method="voices", min_voices=4, max_voices=4,
                                        corpus_sounding_per_bar=40.0))
    assert params.sounding_steps == 10
    out = decode(logits.reshape(3, BAR_SIZE), params)
    assert not out[:2, :, SOUNDING].any()
    from qbdi.models.decoding import voices

    forced = voices(logits[:, :, SOUNDING], lambda b, s, p: logits[b, s, ARTICULATED, p],
                    params, must_sound=np.array([True, False, True]))
    steps = forced[:, :, SOUNDING].any(axis=2)
    nearest = np.argsort(-logits[0, :, SOUNDING].max(axis=1), kind="stable")[:10]
    assert set(np.flatnonzero(steps[0])) == set(nearest)
    assert (forced[0, :, SOUNDING].sum(axis=1)[steps[0]] == 4).all()
    assert not steps[1].any()  # not flagged: silent as decoded
    assert np.array_equal(forced[2], out[2])  # a bar that sounds is unchanged
