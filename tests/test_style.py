"""The style measure: bar features, the classifier's inference, storage and training."""

from __future__ import annotations

import numpy as np
import pytest

from qbdi.analysis.style import (
    FEATURE_NAMES,
    FEATURE_VERSION,
    N_FEATURES,
    StyleClassifier,
    bar_features,
)
from qbdi.bars import Note, notes_to_bars


def _feature(bars: np.ndarray, name: str) -> np.ndarray:
    return bar_features(bars)[:, FEATURE_NAMES.index(name)]


def _chorale_like_bar(shift: int = 0) -> np.ndarray:
    """Four voices in quarter notes, a C major then a G major chord."""
    notes = []
    for beat, chord in enumerate(([48, 64, 67, 72], [48, 64, 67, 72], [43, 62, 67, 71],
                                  [43, 62, 67, 71])):
        notes += [Note(4 * beat, p + shift, 4 * beat + 4) for p in chord]
    return notes_to_bars(notes, 1)


def test_shapes_names_and_finite_on_random_and_silent_bars():
    rng = np.random.default_rng(0)
    bars = rng.random((20, 16, 2, 78)) < 0.05
    bars = np.concatenate([bars, np.zeros((2, 16, 2, 78), bool)])
    features = bar_features(bars)
    assert features.shape == (22, N_FEATURES) == (22, len(FEATURE_NAMES))
    assert features.dtype == np.float32 and np.all(np.isfinite(features))
    assert np.all(_feature(bars[-2:], "silent") == 1)


def test_counts_of_a_known_bar():
    bar = _chorale_like_bar()
    assert np.exp(_feature(bar, "log_starts")[0]) - 1 == pytest.approx(16)
    assert _feature(bar, "voices_mean")[0] == 4
    assert _feature(bar, "len_4")[0] == 1.0  # every note lasts a beat
    assert _feature(bar, "chord_4")[0] == 1.0
    # beats 2 and 4 repeat their four notes, beat 3 keeps the G of beat 2
    assert _feature(bar, "restrikes")[0] == pytest.approx(9 / 16)
    assert _feature(bar, "diatonic_fit")[0] == pytest.approx(1.0)


def test_pitch_class_features_are_transposition_invariant():
    names = ["pitch_classes", "triad_fit", "diatonic_fit", "chroma_entropy",
             *(f"interval_class_{k}" for k in range(1, 7))]
    index = [FEATURE_NAMES.index(name) for name in names]
    up = bar_features(_chorale_like_bar(3))[:, index]
    assert np.allclose(bar_features(_chorale_like_bar(0))[:, index], up)


def test_a_held_chord_and_a_jittered_bar_differ_from_the_bar_in_density_features():
    from qbdi.models.style_train import guard_bars

    bar = _chorale_like_bar()
    guards = guard_bars(np.concatenate([bar, _chorale_like_bar(4)]), np.random.default_rng(1))
    assert _feature(guards["held"][:1], "len_16")[0] == 1.0
    assert _feature(guards["jitter"][:1], "log_starts")[0] >= _feature(bar, "log_starts")[0]
    assert _feature(guards["overfull"][:1], "voices_mean")[0] > 4
    assert _feature(guards["thinned"][:1], "voices_mean")[0] < 4


def _classifier(hidden: int) -> StyleClassifier:
    rng = np.random.default_rng(2)
    return StyleClassifier(
        feature_mean=rng.normal(size=N_FEATURES).astype(np.float32),
        feature_scale=rng.uniform(0.5, 2, size=N_FEATURES).astype(np.float32),
        hidden_weight=rng.normal(size=(hidden, N_FEATURES)).astype(np.float32),
        hidden_bias=rng.normal(size=hidden).astype(np.float32),
        out_weight=rng.normal(size=hidden or N_FEATURES).astype(np.float32),
        out_bias=np.array([0.1], np.float32),
        metadata={"feature_version": FEATURE_VERSION, "corpus": "test"})


@pytest.mark.parametrize("hidden", [0, 8])
def test_probability_is_in_range_and_round_trips_through_tensors(hidden):
    classifier = _classifier(hidden)
    bars = np.random.default_rng(3).random((5, 16, 2, 78)) < 0.04
    p = classifier.probability(bars)
    assert p.shape == (5,) and np.all((p >= 0) & (p <= 1))
    again = StyleClassifier.from_tensors(classifier.tensors(), classifier.metadata)
    assert np.array_equal(again.probability(bars), p)
    assert classifier.probability(np.zeros((0, 16, 2, 78), bool)).shape == (0,)


def test_other_feature_version_and_bad_shapes_are_refused():
    classifier = _classifier(4)
    with pytest.raises(ValueError, match="feature version"):
        StyleClassifier.from_tensors(classifier.tensors(), {"feature_version": 0})
    tensors = classifier.tensors()
    tensors["style.feature_mean"] = tensors["style.feature_mean"][:3]
    with pytest.raises(ValueError, match="feature_mean"):
        StyleClassifier.from_tensors(tensors, classifier.metadata)
    del tensors["style.out_bias"]
    with pytest.raises(ValueError, match="missing"):
        StyleClassifier.from_tensors(tensors, classifier.metadata)


def test_training_separates_two_textures():
    from qbdi.models.style_train import LabelledBars, train_classifier, validate

    rng = np.random.default_rng(4)
    chorale = np.concatenate([_chorale_like_bar(s) for s in range(-5, 6)] * 3)
    melody = notes_to_bars([Note(2 * i, int(60 + rng.integers(0, 12)), 2 * i + 2)
                            for i in range(8 * 33)])
    classifier = train_classifier(
        LabelledBars(chorale, np.array(["corpus"] * len(chorale))),
        LabelledBars(melody, np.array(["tunes"] * len(melody))), hidden=8, epochs=100)
    result = validate(classifier, chorale[:5], [("tunes", melody[:5])])
    assert result["heldout_corpus"] > 0.9 and result["heldout_other"] < 0.1
