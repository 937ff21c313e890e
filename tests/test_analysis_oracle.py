"""The oracle, IR, sweep, motifs and incremental oracle against hand-worked values and vmo."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qbdi.analysis import (
    IncrementalOracle,
    best_threshold,
    build_oracle,
    cosine_matrix,
    default_thresholds,
    find_motifs,
    information_rate,
    ir_over_time,
    ir_sweep,
)
from qbdi.analysis.oracle import encode

vmo = pytest.importorskip("vmo", reason="vmo is the reference implementation")


def vmo_analysis():
    """vmo's analysis.py alone: ``import vmo.analysis`` would pull librosa and sklearn."""
    spec = importlib.util.spec_from_file_location(
        "vmo_analysis_only", vmo.__path__[0] + "/analysis/analysis.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def discrete_distances(symbols: str) -> np.ndarray:
    codes = np.array([ord(c) for c in symbols])
    return (codes[:, None] != codes[None, :]).astype(np.float64)


def random_with_repeats(n_frames: int, dim: int, seed: int, noise: float = 0.3) -> np.ndarray:
    """Gaussian frames where runs of earlier frames come back with noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_frames, dim))
    i = 0
    while i < n_frames:
        length = int(rng.integers(2, 12))
        if i > 20 and rng.random() < 0.6:
            source = int(rng.integers(0, max(i - length, 1)))
            segment = out[source : source + length][: n_frames - i]
            out[i : i + len(segment)] = segment + noise * rng.standard_normal(segment.shape)
            i += len(segment)
        else:
            m = min(length, n_frames - i)
            out[i : i + m] = rng.standard_normal((m, dim))
            i += m
    return out


def test_golden_oracle_abbcabcd():
    # Worked by hand: a discrete metric (0 equal, 1 different) at threshold 0.5 matches
    # equal symbols only, so this is the factor oracle of the string.
    oracle = build_oracle(discrete_distances("abbcabcd"), 0.5)
    #                state:  0  1  2  3  4  5  6  7  8
    assert oracle.sfx == [-1, 0, 0, 2, 0, 1, 2, 4, 0]
    assert oracle.lrs == [0, 0, 0, 1, 0, 1, 2, 2, 0]
    assert oracle.symbol == [-1, 0, 1, 1, 2, 0, 1, 2, 3]
    assert oracle.trn[0] == [1, 2, 4, 8]
    # Compror: new a, new b, repeat "b", new c, repeat "ab", repeat "c", new d.
    assert encode(oracle.lrs) == [0, 0, 1, 0, 2, 1, 0]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abc", min_size=1, max_size=40))
def test_symbolic_oracle_equals_vmo(symbols):
    reference = vmo.build_oracle(
        np.array([ord(c) for c in symbols], dtype=float),
        flag="a",
        threshold=0.5,
        dfunc="euclidean",
        dim=1,
    )
    oracle = build_oracle(discrete_distances(symbols), 0.5)
    assert oracle.sfx[1:] == reference.sfx[1:]
    assert oracle.lrs == reference.lrs
    assert np.array_equal(information_rate(oracle.lrs), reference.IR()[0])


def test_cosine_ir_equals_vmo_at_every_threshold():
    frames = random_with_repeats(300, 32, seed=1)
    distances = cosine_matrix(frames)
    thresholds, totals = ir_sweep(distances, default_thresholds(distances, 40), workers=1)
    for threshold, total in zip(thresholds, totals, strict=True):
        reference = vmo.build_oracle(frames, flag="a", threshold=threshold, dim=32)
        ir_ref = reference.IR()[0]
        assert total == pytest.approx(ir_ref.sum(), rel=0, abs=1e-9)
        assert np.allclose(ir_over_time(distances, threshold), ir_ref, rtol=0, atol=1e-9)


def test_find_threshold_agrees_with_vmo():
    frames = random_with_repeats(200, 16, seed=2)
    (ir_ref, threshold_ref), _ = vmo.find_threshold(frames, r=(0, 1.2, 0.05), dim=16)
    thresholds, totals = ir_sweep(cosine_matrix(frames), np.arange(0, 1.2, 0.05), workers=1)
    assert best_threshold(thresholds, totals) == threshold_ref
    assert totals.max() == pytest.approx(ir_ref, abs=1e-9)


def test_two_process_sweep_equals_serial():
    frames = random_with_repeats(1200, 24, seed=3)
    distances = cosine_matrix(frames, lower_only=True)
    thresholds = default_thresholds(distances, 60)
    assert np.array_equal(
        ir_sweep(distances, thresholds, workers=2)[1], ir_sweep(distances, thresholds, workers=1)[1]
    )


def test_sweep_keeps_caller_order():
    distances = cosine_matrix(random_with_repeats(150, 8, seed=4))
    thresholds = np.array([0.9, 0.1, 0.5, 0.3])
    out_thresholds, totals = ir_sweep(distances, thresholds, workers=1)
    assert np.array_equal(out_thresholds, thresholds)
    for threshold, total in zip(thresholds, totals, strict=True):
        assert total == ir_over_time(distances, threshold).sum()


@pytest.mark.parametrize("threshold", [0.3, 0.8, 0.95])
@pytest.mark.parametrize("min_length_frames", [1, 2, 4])
def test_motifs_equal_vmo(threshold, min_length_frames):
    frames = random_with_repeats(400, 20, seed=5)
    reference = vmo.build_oracle(frames, flag="a", threshold=threshold, dim=20)
    patterns = vmo_analysis().find_repeated_patterns(reference, lower=min_length_frames - 1)
    expected = [
        (tuple(sorted({end - p[1] for end in p[0]})), int(p[1]))
        for p in patterns
        if p[1] >= min_length_frames  # vmo can cut a pattern below `lower`; we drop those
    ]
    motifs = find_motifs(build_oracle(cosine_matrix(frames), threshold), min_length_frames)
    assert [(m.start_frames, m.length_frames) for m in motifs] == expected
    assert all(m.length_frames >= min_length_frames and m.count >= 2 for m in motifs)


def test_motif_count_filter():
    frames = random_with_repeats(400, 20, seed=5)
    oracle = build_oracle(cosine_matrix(frames), 0.8)
    assert all(m.count >= 3 for m in find_motifs(oracle, 2, min_count=3))


def test_incremental_matches_offline_at_every_step():
    frames = random_with_repeats(250, 16, seed=6)
    threshold = 0.6
    live = IncrementalOracle(threshold, metric="cosine", min_length_frames=2)
    steps = [live.append(frame) for frame in frames]
    offline = build_oracle(cosine_matrix(frames), threshold)
    assert live.oracle().lrs == offline.lrs
    assert live.oracle().sfx == offline.sfx
    for k, step in enumerate(steps):
        assert step.frame == k
        assert step.ir_bits == pytest.approx(information_rate(offline.lrs[: k + 2])[-1])
    completed = [s.motif for s in steps if s.motif is not None]
    assert completed, "a piece built of repeats completes motifs"
    for motif in completed:
        earlier, later = motif.start_frames
        assert earlier < later and motif.length_frames >= 2


def test_incremental_tonnetz_matches_offline():
    rng = np.random.default_rng(7)
    chords = rng.integers(0, 3, size=(8, 12)).astype(float)
    frames = chords[rng.integers(0, 8, size=120)]
    live = IncrementalOracle(0.2, metric="tonnetz")
    for frame in frames:
        live.append(frame)
    from qbdi.analysis import tonnetz_matrix

    assert live.oracle().lrs == build_oracle(tonnetz_matrix(frames), 0.2).lrs
