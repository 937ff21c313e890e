"""The tests' tiny model (tests/seeded.py): the checkpoint the fixture writes is that model,
and it plays as the tests that pick thresholds assume."""

from __future__ import annotations

import numpy as np
from query_data import CHORDS_MELODY, DYNAMICS_PEDAL, MARCH, POP
from seeded import TINY_HIDDEN, TINY_LATENT, tiny_model

from qbdi.bars import BAR_SHAPE, flatten_bars, notes_to_bars
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import load_checkpoint
from qbdi.models.runtime import InferenceModel, decode_bars


def onsets_per_bar(model: InferenceModel, z: np.ndarray, threshold: float) -> np.ndarray:
    bars = decode_bars(model, z.astype(np.float32), threshold).reshape(-1, *BAR_SHAPE)
    return bars[:, :, 1].sum(axis=(1, 2))


def test_the_fixture_checkpoint_is_the_seeded_tiny_model(tiny_checkpoint) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint)
    _, stats, weights = tiny_model()
    assert (checkpoint.config.hidden_size, checkpoint.config.latent_size) == (TINY_HIDDEN,
                                                                             TINY_LATENT)
    assert checkpoint.weights.keys() == weights.keys()
    for name, value in weights.items():
        np.testing.assert_array_equal(checkpoint.weights[name], value, err_msg=name)
    np.testing.assert_array_equal(checkpoint.stats.z_var, stats.z_var)


def test_a_few_notes_a_bar_at_the_thresholds_the_tests_use(queries_dir) -> None:
    model, stats, _ = tiny_model()
    for name in (CHORDS_MELODY, MARCH, DYNAMICS_PEDAL, POP):
        mu, _ = model.encode(flatten_bars(notes_to_bars(read_midi(queries_dir / name).notes)))
        at_half = onsets_per_bar(model, mu, 0.5)
        assert at_half.min() >= 1 and 5 <= at_half.mean() <= 25, (name, at_half)
        assert 50 <= onsets_per_bar(model, mu, 0.2).mean() <= 100, name
        assert not onsets_per_bar(model, mu, 0.9999).any(), name
    free = np.random.default_rng(0).standard_normal((64, TINY_LATENT))  # free: the prior
    assert onsets_per_bar(model, free, 0.5).min() >= 1
    assert not onsets_per_bar(model, stats.mu_mean[None], 0.9999).any()  # the zero-bit bar
