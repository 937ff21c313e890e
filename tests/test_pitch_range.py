"""A model's pitch range: its answers sound where its corpus sounds, in every way of
decoding, live and offline, and the checkpoint keeps the range and refuses a bad one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
from seeded import query_bars, seeded_weights, tiny_model

from qbdi.bars import ARTICULATED, BAR_SIZE, LOWEST_PITCH, SOUNDING
from qbdi.improviser import Improviser
from qbdi.models.checkpoint import (
    CheckpointError,
    CorpusStats,
    load_checkpoint,
    save_checkpoint,
)
from qbdi.models.config import AnswerConfig, ModelCard
from qbdi.models.register import sounding_range
from qbdi.models.runtime import NEVER_LOGIT, InferenceModel, decode_bars
from qbdi.render import improvise
from qbdi.settings import ImproviserSettings

RANGE = (55, 76)
INSIDE = slice(RANGE[0] - LOWEST_PITCH, RANGE[1] - LOWEST_PITCH + 1)
VOICES = AnswerConfig(method="voices", min_voices=3, max_voices=3, sounding_bias=2.0,
                      pitch_range=RANGE)


@pytest.fixture(scope="module")
def models():
    """The tiny model whole, and the same weights with RANGE."""
    whole, stats, weights = tiny_model()
    return whole, InferenceModel(whole.config, weights, RANGE), stats


def _outside(bars: np.ndarray) -> np.ndarray:
    """The cells of bars (flat or not) outside RANGE."""
    out = bars.reshape(-1, 16, 2, 78).copy()
    out[..., INSIDE] = False
    return out


def test_logits_outside_the_range_are_never_and_inside_unchanged(models):
    whole, ranged, _ = models
    z = np.random.default_rng(0).standard_normal((40, whole.latent_size)).astype(np.float32)
    full, cut = (m.decode_logits(z).reshape(40, 16, 2, 78) for m in (whole, ranged))
    np.testing.assert_allclose(cut[..., INSIDE], full[..., INSIDE], rtol=1e-5, atol=1e-5)
    outside = np.ones(78, bool)
    outside[INSIDE] = False
    assert (cut[..., outside] == NEVER_LOGIT).all()
    # the whole-range model does sound there at a low threshold: the range is what stops it
    assert _outside(decode_bars(whole, z, 0.05)).any()
    assert not _outside(decode_bars(ranged, z, 0.05)).any()
    assert not _outside(decode_bars(ranged, z, 0.5, np.random.default_rng(1))).any()


@pytest.mark.parametrize("method", ["voices", "notes", "cells", "threshold"])
def test_answers_never_sound_outside_the_range_live_or_offline(models, method):
    _, ranged, stats = models
    answer = VOICES.model_copy(update={"method": method})
    improviser = Improviser(ranged, stats, answer)
    bars = query_bars(48, 3)
    for settings in (ImproviserSettings(stats="query", budget_bits="full", threshold=0.05),
                     ImproviserSettings(stats="query", budget_bits=0, sampling=True),
                     ImproviserSettings(mode="free", threshold=0.05)):
        offline = improvise(improviser, bars, settings).bars
        assert offline.any() and not _outside(offline).any(), settings
    live = np.stack([improviser.step(bar, ImproviserSettings(stats="window")).bar
                     for bar in bars])
    assert live.any() and not _outside(live).any()


def test_sounding_range_is_the_lowest_and_highest_pitch_sounding():
    bars = np.zeros((3, 16, 2, 78), bool)
    assert sounding_range(bars) is None
    bars[0, 3, SOUNDING, 10] = bars[2, 15, SOUNDING, 40] = True
    bars[1, 0, ARTICULATED, 70] = True  # articulated alone does not sound
    assert sounding_range(bars) == (LOWEST_PITCH + 10, LOWEST_PITCH + 40)


def test_the_checkpoint_keeps_the_range_and_names_a_bad_one(tmp_path):
    config, weights = seeded_weights(3, 16, 8)
    model = InferenceModel(config, weights)
    mu, logvar = model.encode(query_bars(16, 1).reshape(16, BAR_SIZE))
    card = ModelCard(corpus="test", pieces_train=0, pieces_heldout=0, bars_train=0,
                     bars_heldout=0, epochs=0, seed=0, train_seconds=0.0)
    path = tmp_path / "ranged.safetensors"
    save_checkpoint(path, config, card, weights, CorpusStats.from_encodings(mu, logvar),
                    answer=VOICES)
    loaded = load_checkpoint(path)
    assert loaded.answer.pitch_range == RANGE
    assert InferenceModel.from_checkpoint(loaded).pitch_range == RANGE
    for bad in ((60, 50), (10, 60), (60, 120)):  # a model built in code is held to it too
        with pytest.raises(ValueError, match="pitch_range"):
            InferenceModel(config, weights, bad)
    for bad in ([60, 50], [10, 60], [60, 120], "low"):
        with pytest.raises(ValidationError, match="pitch_range"):
            AnswerConfig(pitch_range=bad)
        tensors = load_file(str(path))
        with safe_open(str(path), "np") as handle:
            metadata = handle.metadata()
        answer = json.loads(metadata["answer"])
        answer["pitch_range"] = bad
        broken = tmp_path / "broken.safetensors"
        save_file(tensors, str(broken), metadata={**metadata, "answer": json.dumps(answer)})
        with pytest.raises(CheckpointError, match=r"broken\.safetensors.*answer"):
            load_checkpoint(broken)
