"""How a model answers, live and offline: the checkpoint's AnswerConfig (register, calibrated
decoding, free latents) and the channel settings (paper or perception, the spread)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from query_data import CHORDS_MELODY
from seeded import tiny_model

from qbdi.bars import BAR_SIZE, SOUNDING, notes_to_bars
from qbdi.channel import CHANNELS as CHANNEL_NAMES
from qbdi.improviser import Improviser, load_improvisers
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import load_checkpoint, save_checkpoint
from qbdi.models.config import LEGACY_ANSWER, AnswerConfig, ModelCard
from qbdi.models.decoding import answer_bars
from qbdi.models.density import sounding_per_bar
from qbdi.models.register import centre_octaves, mean_pitch
from qbdi.render import improvise
from qbdi.settings import CHANNELS, ImproviserSettings

ANSWER = AnswerConfig(centre_pitch=62.0, method="voices", min_voices=3, max_voices=3,
                      sounding_bias=1.5, onset_bias=-0.5)


@pytest.fixture(scope="module")
def parts():
    model, stats, _ = tiny_model()
    return model, stats


@pytest.fixture(scope="module")
def query_bars(queries_dir):
    bars = notes_to_bars(read_midi(queries_dir / CHORDS_MELODY).notes)
    assert not bars[..., -12:].any()
    up = np.zeros_like(bars)
    up[..., 12:] = bars[..., :-12]  # the same bars an octave up
    return np.concatenate([bars, up])


def _improviser(parts, answer=ANSWER):
    return Improviser(*parts, answer)


def test_a_calibrated_model_answers_its_register_and_method_live_and_offline(parts, query_bars):
    improviser = _improviser(parts)
    settings = ImproviserSettings(budget_bits="full", stats="query")
    offline = improvise(improviser, query_bars, settings).bars
    moved = centre_octaves(query_bars, ANSWER.centre_pitch)
    mu, _ = improviser.model.encode(moved.reshape(len(moved), BAR_SIZE))
    expected = answer_bars(improviser.model.decode_logits(mu), ANSWER)
    assert np.array_equal(offline, expected)
    live = [improviser.step(bar, settings.model_copy(update={"stats": "window"})).bar
            for bar in query_bars]
    assert np.array_equal(np.stack(live), expected)
    voices = offline[:, :, SOUNDING].sum(axis=2)
    assert voices.max() <= 3 and set(np.unique(voices)) <= {0, 3}
    # the register move reached the encoder: bars far up answer as the same bars in place
    half = len(query_bars) // 2
    assert np.array_equal(offline[:half], offline[half:])


def test_a_legacy_model_answers_as_before(parts, query_bars):
    settings = ImproviserSettings(budget_bits="full", stats="query")
    legacy = improvise(Improviser(*parts), query_bars, settings).bars
    assert np.array_equal(legacy, improvise(_improviser(parts, LEGACY_ANSWER), query_bars,
                                            settings).bars)
    half = len(query_bars) // 2
    assert not np.array_equal(legacy[:half], legacy[half:])  # the player's register kept


def test_the_threshold_knob_moves_the_calibrated_biases(parts, query_bars):
    improviser = _improviser(parts, ANSWER.model_copy(update={"method": "cells"}))
    density = {t: sounding_per_bar(improvise(improviser, query_bars, ImproviserSettings(
        budget_bits="full", stats="query", threshold=t)).bars) for t in (0.2, 0.35, 0.6)}
    assert density[0.2] > density[0.35] > density[0.6]
    moved = centre_octaves(query_bars, ANSWER.centre_pitch)
    mu, _ = improviser.model.encode(moved.reshape(len(moved), BAR_SIZE))
    calibrated = answer_bars(improviser.model.decode_logits(mu), improviser.answer)
    assert density[0.35] == sounding_per_bar(calibrated)  # the default: as calibrated


def test_at_zero_bits_perception_improvises_from_the_statistics_paper_repeats_them(
        parts, query_bars):
    improviser = _improviser(parts)
    zero = {channel: improvise(improviser, query_bars, ImproviserSettings(
        budget_bits=0, stats="corpus", channel=channel)).bars for channel in CHANNELS}
    assert len({bar.tobytes() for bar in zero["paper"]}) == 1
    assert len({bar.tobytes() for bar in zero["perception"]}) > len(query_bars) // 2
    assert all(bar[:, SOUNDING].any() for bar in zero["perception"])


def test_the_corpus_spread_keeps_the_heard_mean_with_the_corpus_variance(parts, query_bars):
    improviser = _improviser(parts)
    settings = ImproviserSettings(budget_bits=0, stats="query", spread="corpus")
    improviser.restart(settings)
    improviser.heard.push(np.ones(improviser.model.latent_size), None)
    heard = improviser.heard.current()
    mixed = improviser.spread(heard, settings)
    assert np.array_equal(mixed.mean, heard.mean)
    assert np.array_equal(mixed.source_var, improviser.seed_stats(settings).source_var)
    same = improviser.spread(heard, settings.model_copy(update={"spread": "stats"}))
    assert same is heard
    # and it reaches the answers: 0 bits from the query's mean, corpus spread
    a = improvise(improviser, query_bars, settings.model_copy(update={"channel": "perception"}))
    b = improvise(improviser, query_bars, settings.model_copy(
        update={"channel": "perception", "spread": "stats"}))
    assert not np.array_equal(a.bars, b.bars)


def test_free_mode_draws_from_the_corpus_statistics_of_a_calibrated_model(parts):
    silence = np.zeros((64, 16, 2, 78), dtype=bool)
    settings = ImproviserSettings(mode="free", seed=3)
    corpus = improvise(_improviser(parts), silence, settings)
    prior = improvise(_improviser(parts, ANSWER.model_copy(update={"free_latents": "prior"})),
                      silence, settings)
    stats = parts[1]
    standardised = (corpus.z_d - stats.mu_mean) / np.sqrt(stats.mu_var)
    assert np.allclose(standardised, prior.z_d, atol=1e-4)  # the same draws, scaled


def test_bad_channel_settings_are_refused():
    assert CHANNELS == CHANNEL_NAMES
    with pytest.raises(ValidationError, match="channel"):
        ImproviserSettings(channel="lossy")
    with pytest.raises(ValidationError, match="spread"):
        ImproviserSettings(spread="window")


def test_a_checkpoint_s_answer_config_reaches_the_improvisers(tmp_path, parts):
    model, stats, weights = tiny_model()
    card = ModelCard(corpus="test", pieces_train=0, pieces_heldout=0, bars_train=0,
                     bars_heldout=0, epochs=0, seed=0, train_seconds=0.0)
    path = tmp_path / "calibrated.safetensors"
    save_checkpoint(path, model.config, card, weights, stats, answer=ANSWER)
    assert load_checkpoint(path).answer == ANSWER
    improvisers, name = load_improvisers(path)
    assert improvisers[name].answer == ANSWER
    assert mean_pitch(np.zeros((1, 16, 2, 78), bool)).shape == (1,)


def test_a_bar_the_player_played_in_is_never_answered_with_silence(parts, query_bars):
    answer = ANSWER.model_copy(update={"corpus_sounding_per_bar": 3 * 12.0})  # 12 steps
    improviser = _improviser(parts, answer)
    bars = query_bars.copy()
    bars[::5] = False  # bars where the player rests
    played = bars[:, :, SOUNDING].any(axis=(1, 2))
    # a high threshold leaves most answers with nothing likely
    settings = ImproviserSettings(budget_bits="full", stats="query", threshold=0.995)
    out = improvise(improviser, bars, settings).bars
    answered = out[:, :, SOUNDING].any(axis=(1, 2))
    assert answered[played].all() and not answered[~played].any()
    steps = out[:, :, SOUNDING].any(axis=2).sum(axis=1)
    assert set(steps[played]) <= set(range(1, 17)) and (steps[played] == 12).any()
    live = [improviser.step(bar, settings.model_copy(update={"stats": "window"})).bar
            for bar in bars]
    assert np.array_equal(np.stack(live), out)
    free = improvise(improviser, bars, settings.model_copy(update={"mode": "free"})).bars
    assert not free[:, :, SOUNDING].any(axis=(1, 2)).all()  # free play may rest
