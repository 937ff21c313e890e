"""The analysis of query MIDI files against vmo: on ours (tests/data/queries) always, and on
the real Prokofiev queries where they are (../shared/data/queries or $QBDI_SHARED_QUERIES;
skipped, saying so, where they are not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from query_data import QUERIES, SHARED_QUERIES, shared_query_files

from qbdi.analysis import (
    analyze,
    build_oracle,
    chroma,
    default_thresholds,
    find_motifs,
    ir_sweep,
    tonnetz_distance,
    tonnetz_matrix,
)
from qbdi.bars import notes_to_bars

vmo = pytest.importorskip("vmo", reason="vmo is the reference implementation")
OURS = sorted(QUERIES.glob("*.mid"))
SHARED = shared_query_files()
NO_SHARED = [pytest.param(None, id="prokofiev", marks=pytest.mark.skip(
    reason=f"the real query files are not in {SHARED_QUERIES} (not part of the repository; "
           "QBDI_SHARED_QUERIES=FOLDER says where they are)"))]
FILES = OURS + (SHARED or NO_SHARED)


def query_chroma(path: Path, frames_per_bar: int = 4) -> tuple[np.ndarray, np.ndarray]:
    from qbdi.midifile import read_midi

    bars = notes_to_bars(read_midi(path).notes)
    return bars, chroma(bars, frames_per_bar)


def vmo_tonnetz(norm: str):
    """Our per-pair distance, for vmo to call. (vmo's own tonnetz.distance equals our
    "projection" variant to within an ulp -- test_analysis_tonnetz -- but an ulp can flip
    vmo's argmin between chords at exactly equal distance, so the oracles are compared
    on identical distances.)"""
    return lambda a, b: tonnetz_distance(a, b, norm)


@pytest.mark.parametrize("norm", ["chroma", "projection"])
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_chroma_ir_equals_vmo_at_every_threshold(path, norm):
    _, frames = query_chroma(path)
    frames = frames[:400]  # vmo is slow; 100 bars are plenty
    distances = tonnetz_matrix(frames, norm)
    thresholds, totals = ir_sweep(distances, default_thresholds(distances, 15), workers=1)
    for threshold, total in zip(thresholds, totals, strict=True):
        reference = vmo.build_oracle(
            frames,
            flag="a",
            threshold=threshold,
            dfunc="other",
            dfunc_handle=vmo_tonnetz(norm),
            dim=12,
        )
        assert total == pytest.approx(reference.IR()[0].sum(), rel=0, abs=1e-9)


@pytest.mark.parametrize("path", OURS + (SHARED[:4] or NO_SHARED), ids=lambda p: p.stem)
def test_motifs_equal_vmo(path):
    from tests.test_analysis_oracle import vmo_analysis

    _, frames = query_chroma(path)
    distances = tonnetz_matrix(frames, "projection")
    thresholds, totals = ir_sweep(distances, default_thresholds(distances, 30), workers=1)
    threshold = float(thresholds[np.argmax(totals)])
    reference = vmo.build_oracle(
        frames,
        flag="a",
        threshold=threshold,
        dfunc="other",
        dfunc_handle=vmo_tonnetz("projection"),
        dim=12,
    )
    patterns = vmo_analysis().find_repeated_patterns(reference, lower=1)
    expected = [(tuple(sorted({e - p[1] for e in p[0]})), int(p[1])) for p in patterns if p[1] >= 2]
    motifs = find_motifs(build_oracle(distances, threshold), min_length_frames=2)
    assert [(m.start_frames, m.length_frames) for m in motifs] == expected


@pytest.mark.parametrize("path", OURS[:1] + (SHARED[:1] or NO_SHARED), ids=lambda p: p.stem)
def test_analyze_a_query(path):
    bars, _ = query_chroma(path)
    report = analyze(bars, frames_per_bar=4)
    assert report["n_bars"] == len(bars) and report["best_total_ir_bits"] > 0
    assert report["motifs"]
