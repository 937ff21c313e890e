"""analyze(): the report's schema, its errors, and the figures drawn from it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from qbdi.analysis import AnalysisInputError, AnalysisReport, analyze
from qbdi.analysis.figures import plot_ir_over_time, plot_ir_vs_threshold, plot_motifs
from qbdi.bars import Note, notes_to_bars

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def riff_bars(n_repeats: int = 6) -> np.ndarray:
    """A two-bar C-G riff played ``n_repeats`` times, then a coda."""
    notes = []
    for r in range(n_repeats):
        base = 32 * r
        notes += [
            Note(base + 4 * k, pitch, base + 4 * k + 4) for k, pitch in enumerate([60, 64, 67, 72])
        ]
        notes += [
            Note(base + 16 + 4 * k, pitch, base + 20 + 4 * k)
            for k, pitch in enumerate([67, 71, 74, 79])
        ]
    notes.append(Note(32 * n_repeats, 61, 32 * n_repeats + 16))
    return notes_to_bars(notes)


@pytest.fixture(scope="module")
def chroma_report() -> dict:
    return analyze(riff_bars(), feature="chroma", frames_per_bar=4, n_thresholds=50)


@pytest.fixture(scope="module")
def latent_report() -> dict:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 16))
    latents = np.vstack([base[k % 4] + 0.05 * rng.standard_normal(16) for k in range(24)])
    return analyze(None, latents=latents, feature="latent", n_thresholds=40)


def test_chroma_report_follows_schema(chroma_report):
    report = AnalysisReport.model_validate(chroma_report)
    assert report.feature == "chroma" and report.distance == "tonnetz"
    assert report.n_bars == 13 and report.frames_per_bar == 4 and report.n_frames == 52
    assert len(report.thresholds) == len(report.total_ir_bits) == 50
    assert len(report.ir_bits_over_time) == report.n_frames
    assert report.best_total_ir_bits == max(report.total_ir_bits) > 0
    assert report.best_threshold in report.thresholds
    assert report.motifs, "a repeated riff has motifs"
    for motif in report.motifs:
        assert motif.length_frames >= report.min_length_frames and motif.count >= 2
        assert all(0 <= s < report.n_frames for s in motif.start_frames)


def test_report_is_plain_json_without_nan(chroma_report, latent_report):
    for report in (chroma_report, latent_report):
        text = json.dumps(report, allow_nan=False)
        assert json.loads(text) == report
        values = report["total_ir_bits"] + report["ir_bits_over_time"]
        assert all(math.isfinite(v) and v >= 0 for v in values)


def test_latent_report(latent_report):
    report = AnalysisReport.model_validate(latent_report)
    assert report.distance == "cosine" and report.frames_per_bar == 1
    assert report.tonnetz_norm is None and report.n_frames == 24
    assert any(m.length_frames >= 4 for m in report.motifs)


def silent_bars(n: int) -> np.ndarray:
    return np.zeros((n, 16, 2, 78), dtype=bool)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bars": silent_bars(0)}, "empty"),
        ({"bars": riff_bars()[:1], "frames_per_bar": 1}, "one frame"),
        ({"bars": silent_bars(8)}, "silent"),
        ({"bars": None, "latents": np.zeros((0, 4)), "feature": "latent"}, "empty"),
        ({"bars": None, "latents": np.ones((1, 4)), "feature": "latent"}, "one frame"),
        ({"bars": None, "latents": np.zeros((5, 4)), "feature": "latent"}, "silent"),
        ({"bars": None, "latents": np.full((5, 4), np.nan), "feature": "latent"}, "NaN"),
        ({"bars": np.zeros((4, 16, 78))}, "shape"),
        ({"bars": riff_bars(), "frames_per_bar": 3}, "frames_per_bar"),
        ({"bars": riff_bars(), "feature": "mfcc"}, "feature"),
    ],
)
def test_bad_input_raises_a_clear_value_error(kwargs, message):
    with pytest.raises(AnalysisInputError, match=message) as caught:
        analyze(**kwargs)
    assert isinstance(caught.value, ValueError)


def test_one_bar_at_beat_rate_is_analysed():
    report = analyze(riff_bars()[:1], frames_per_bar=4, n_thresholds=5)
    assert report["n_frames"] == 4


def test_figures_are_written(tmp_path, chroma_report, latent_report):
    bars = riff_bars()
    reports = [chroma_report, chroma_report, chroma_report]
    titles = ["query", "full rate", "reduced rate"]
    paths = [
        plot_motifs(reports, [bars, bars, bars], tmp_path / "fig4.png", titles),
        plot_ir_vs_threshold(reports, tmp_path / "fig5.png", titles),
        plot_ir_over_time([latent_report, latent_report], tmp_path / "sub" / "fig6.png"),
    ]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
