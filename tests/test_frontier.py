"""The frontier measurement: rows per budget, deterministic, channels apart, through the
improviser's own path."""

from __future__ import annotations

import numpy as np
import pytest
from seeded import seeded_weights

from qbdi.analysis.style import FEATURE_VERSION, N_FEATURES, StyleClassifier
from qbdi.bars import Note, notes_to_bars
from qbdi.frontier import free_answers, measure_frontier
from qbdi.improviser import Improviser
from qbdi.models.checkpoint import CorpusStats
from qbdi.models.config import AnswerConfig
from qbdi.models.runtime import InferenceModel
from qbdi.render import improvise
from qbdi.settings import ImproviserSettings


@pytest.fixture(scope="module")
def parts():
    runtime = InferenceModel(*seeded_weights(0, 32, 8))
    rng = np.random.default_rng(0)
    stats = CorpusStats.from_encodings(rng.normal(size=(50, 8)), rng.normal(size=(50, 8)) - 2)
    answer = AnswerConfig(centre_pitch=62.0, method="voices", min_voices=3, max_voices=3,
                          sounding_bias=3.0)
    style = StyleClassifier(np.zeros(N_FEATURES, np.float32), np.ones(N_FEATURES, np.float32),
                            np.zeros((0, N_FEATURES), np.float32), np.zeros(0, np.float32),
                            rng.normal(size=N_FEATURES).astype(np.float32) * 0.1,
                            np.zeros(1, np.float32), {"feature_version": FEATURE_VERSION})
    notes = [Note(4 * i, 72 + (i % 5), 4 * i + 4) for i in range(32)]
    queries = {"a": notes_to_bars(notes), "b": notes_to_bars(notes[:16])}
    return Improviser(runtime, stats, answer), style, queries


def test_rows_per_budget_within_bounds_and_deterministic(parts):
    improviser, style, queries = parts
    rows = measure_frontier(improviser, style, queries, budgets=(0, 16, "full"), seeds=2)
    again = measure_frontier(improviser, style, queries, budgets=(0, 16, "full"), seeds=2)
    assert rows == again
    assert [row.budget_bits for row in rows] == [0, 16, "full"]
    for row in rows:
        assert 0 <= row.chroma_cosine_min <= row.chroma_cosine_mean <= 1
        assert 0 <= row.onset_f1_mean <= row.onset_f1_max <= 1
        assert 0 <= row.style_min <= row.style_mean <= 1
        assert row.starts_per_bar >= 0 and row.silent_bars >= 0


def _answer(improviser, bars, budget, seed, **settings):
    return improvise(improviser, bars, ImproviserSettings(
        stats="query", budget_bits=budget, seed=seed, **settings)).bars


def test_at_zero_bits_the_paper_channel_repeats_the_mean_and_perception_does_not(parts):
    improviser, _, queries = parts
    bars = queries["a"]
    paper = _answer(improviser, bars, 0, 1, channel="paper")
    perception = _answer(improviser, bars, 0, 1, channel="perception")
    assert len({bar.tobytes() for bar in paper}) == 1
    assert len({bar.tobytes() for bar in perception}) > 1
    full = _answer(improviser, bars, "full", 1)
    assert np.array_equal(full, _answer(improviser, bars, "full", 2))


def test_free_answers_are_seeded_and_drawn_from_the_corpus_statistics(parts):
    improviser, _, _ = parts
    first = free_answers(improviser, 5, 3)
    assert first.shape == (5, 16, 2, 78)
    assert np.array_equal(first, free_answers(improviser, 5, 3))
    prior = Improviser(improviser.model, improviser.corpus_stats,
                       improviser.answer.model_copy(update={"free_latents": "prior"}))
    assert not np.array_equal(first, free_answers(prior, 5, 3))
