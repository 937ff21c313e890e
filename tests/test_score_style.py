"""``qbdi score`` with a model that has a style measure: the style column per budget, the
density and silent bars beside it, and the frontier plot."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from query_data import CHORDS_MELODY
from seeded import starts_style, tiny_model

from qbdi.bars import notes_to_bars
from qbdi.frontier import score_answer
from qbdi.improviser import Improviser
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import load_checkpoint, save_checkpoint
from qbdi.models.config import AnswerConfig, ModelCard
from qbdi.render import improvise
from qbdi.settings import ImproviserSettings

ANSWER = AnswerConfig(centre_pitch=62.0, method="voices", min_voices=3, max_voices=3,
                      sounding_bias=1.5, corpus_starts_per_bar=12.5)


@pytest.fixture(scope="module")
def styled_checkpoint(tmp_path_factory):
    model, stats, weights = tiny_model()
    card = ModelCard(corpus="tests", pieces_train=0, pieces_heldout=0, bars_train=0,
                     bars_heldout=0, epochs=0, seed=0, train_seconds=0.0)
    path = tmp_path_factory.mktemp("styled") / "styled.safetensors"
    save_checkpoint(path, model.config, card, weights, stats, answer=ANSWER,
                    style=starts_style())
    return path


def test_score_reports_the_style_per_budget_and_plots_the_frontier(styled_checkpoint,
                                                                    queries_dir, tmp_path):
    query = queries_dir / CHORDS_MELODY
    rows_path, plot_path = tmp_path / "rows.json", tmp_path / "frontier.png"
    result = subprocess.run(
        [sys.executable, "-m", "qbdi.cli", "score", str(query), "--seeds", "1", "--bits",
         "0,full", "--model", str(styled_checkpoint), "--json", str(rows_path), "--plot",
         str(plot_path), "--stats", "query"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "style mean" in result.stdout and "starts/bar (corpus 12.5)" in result.stdout
    assert "free mode (1000 bars, latents from the corpus): style 0." in result.stdout
    rows = json.loads(rows_path.read_text())
    assert [row["budget_bits"] for row in rows] == [0, "full"]
    checkpoint = load_checkpoint(styled_checkpoint)
    bars = notes_to_bars(read_midi(query).notes)
    answers = improvise(Improviser.from_checkpoint(checkpoint), bars,
                        ImproviserSettings(budget_bits="full", stats="query")).bars
    expected = score_answer(answers, bars, checkpoint.style)
    assert rows[1]["style"] == pytest.approx(expected.style)
    assert rows[1]["starts_per_bar"] == pytest.approx(expected.starts_per_bar)
    assert 0.5 <= rows[0]["style"] <= 1.0
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_style_measure_the_column_is_empty(tiny_checkpoint, queries_dir):
    result = subprocess.run(
        [sys.executable, "-m", "qbdi.cli", "score", str(queries_dir / CHORDS_MELODY),
         "--seeds", "1", "--bits", "full", "--model", str(tiny_checkpoint)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "no style measure" in result.stderr
    assert "| full |" in result.stdout and "| - | - |" in result.stdout


def test_score_answer_counts_silent_answer_bars_where_the_query_sounds():
    query = np.zeros((3, 16, 2, 78), dtype=bool)
    query[:2, 0, :, 40] = True
    answer = np.zeros_like(query)
    answer[0, 0, :, 40] = True
    scored = score_answer(answer, query, starts_style())
    assert scored.silent_bars == 1 and scored.starts_per_bar == pytest.approx(1 / 3)
    assert scored.style == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
