"""The shipped default model's frontier on one out-of-style query (pop piano), with the live
default preset's settings: a small, fast check of the issue's targets (the full table over
the shared queries is ``qbdi score``'s, in the README)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from query_data import QUERIES

from qbdi.bars import notes_to_bars
from qbdi.frontier import score_answer
from qbdi.improviser import Improviser
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import Checkpoint, load_checkpoint
from qbdi.presets import load_preset
from qbdi.render import improvise

BUDGETS = (0, 16, 64, 256, "full")
SEEDS = 2


def frontier_problems(checkpoint: Checkpoint, query: np.ndarray) -> list[str]:
    """What the model misses of the targets on ``query`` (seeds averaged): full rate chroma
    >= 0.85, style >= 0.6, onset F1 <= 0.5; 0 bits style >= 0.6, note starts within 30 % of
    the corpus's, no silent bar; chroma non-decreasing with the budget (within 0.01)."""
    improviser = Improviser.from_checkpoint(checkpoint)
    base = load_preset("default").improviser
    rows = {}
    for budget in BUDGETS:
        scores = [score_answer(improvise(improviser, query, base.model_copy(
            update={"budget_bits": budget, "seed": seed})).bars, query, checkpoint.style)
            for seed in range(SEEDS)]
        rows[budget] = {key: float(np.mean([getattr(s, key) for s in scores])) for key in
                        ("chroma_cosine", "onset_f1", "style", "starts_per_bar", "silent_bars")}
    full, zero = rows["full"], rows[0]
    corpus_starts = checkpoint.answer.corpus_starts_per_bar or float("nan")  # none: a miss
    checks = {
        "full rate chroma >= 0.85": full["chroma_cosine"] >= 0.85,
        "full rate style >= 0.6": full["style"] >= 0.6,
        "full rate onset F1 <= 0.5": full["onset_f1"] <= 0.5,
        "0 bits style >= 0.6": zero["style"] >= 0.6,
        "0 bits starts within 30 %": abs(zero["starts_per_bar"] / corpus_starts - 1) <= 0.3,
        "0 bits never silent": zero["silent_bars"] == 0,
        "chroma rises": all(rows[b]["chroma_cosine"] >= rows[a]["chroma_cosine"] - 0.01
                            for a, b in itertools.pairwise(BUDGETS)),
    }
    return [f"{name}: {rows}" for name, ok in checks.items() if not ok]


def test_the_default_model_answers_a_pop_piano_query_in_the_corpus_s_style():
    checkpoint = load_checkpoint()
    if checkpoint.style is None:
        pytest.skip("the shipped model predates the style measure (retrain with qbdi train "
                    "--style-negatives)")
    query = notes_to_bars(read_midi(QUERIES / "pop-piano-4-4.mid").notes)
    assert frontier_problems(checkpoint, query) == []
