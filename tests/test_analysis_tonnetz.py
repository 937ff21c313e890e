"""Distances: Tonnetz (Harte et al. 2006, and vmo's variant) and cosine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qbdi.analysis import cosine_distance, cosine_matrix, project, tonnetz_distance, tonnetz_matrix

NORMS = ["chroma", "projection"]
chroma_vectors = st.lists(st.integers(0, 16), min_size=12, max_size=12).map(
    lambda v: np.array(v, dtype=float)
)


def triad(root: int, minor: bool = False) -> np.ndarray:
    vector = np.zeros(12)
    vector[[root % 12, (root + (3 if minor else 4)) % 12, (root + 7) % 12]] = 1
    return vector


@pytest.mark.parametrize("norm", NORMS)
@settings(max_examples=100, deadline=None)
@given(a=chroma_vectors)
def test_zero_on_identical_chroma(norm, a):
    assert tonnetz_distance(a, a, norm) == 0.0
    assert tonnetz_distance(a, 3 * a, norm) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(a=chroma_vectors, b=chroma_vectors, shift=st.integers(1, 11))
def test_transposing_both_keeps_the_distance(a, b, shift):
    moved = tonnetz_distance(np.roll(a, shift), np.roll(b, shift))
    assert moved == pytest.approx(tonnetz_distance(a, b), abs=1e-9)


def test_vmo_projection_norm_is_not_transposition_invariant():
    # The L1 norm of rotated circle coordinates changes with the rotation, so vmo's variant
    # moves when both chords are transposed; documented, and why "chroma" is the default.
    silence, b_flat = np.zeros(12), np.eye(12)[10]
    distances = {tonnetz_distance(silence, np.roll(b_flat, k), "projection") for k in range(12)}
    assert max(distances) - min(distances) > 0.05


@pytest.mark.parametrize("norm", NORMS)
def test_silence_and_cancelling_chroma_give_no_nan(norm):
    silence = np.zeros(12)
    everything = np.ones(12)  # all twelve circles cancel: projection is zero
    frames = np.vstack([silence, triad(0), everything, silence])
    matrix = tonnetz_matrix(frames, norm)
    assert np.isfinite(matrix).all()
    assert matrix[0, 3] == 0.0
    assert np.array_equal(project(silence, norm), np.zeros(6))
    assert np.isfinite(tonnetz_distance(silence, everything, norm))


def test_harmonic_neighbours_are_closer():
    c_major, g_major, f_sharp_major = triad(0), triad(7), triad(6)
    assert tonnetz_distance(c_major, g_major) < tonnetz_distance(c_major, f_sharp_major)
    assert tonnetz_distance(c_major, triad(9, minor=True)) < tonnetz_distance(
        c_major, f_sharp_major
    )


def test_projection_norm_equals_vmo():
    tonnetz = pytest.importorskip("vmo.VMO.utility.distances.tonnetz")
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.integers(0, 5, size=(2, 12)).astype(float)
        if a.any() and b.any():
            # vmo takes np.linalg.norm (a BLAS dot): equal to the last bit or two.
            assert tonnetz_distance(a, b, "projection") == pytest.approx(
                tonnetz.distance(a, b), rel=1e-15, abs=1e-15
            )


def test_matrix_entries_equal_pairwise_function():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 4, size=(20, 12)).astype(float)
    matrix = tonnetz_matrix(frames)
    for i in range(20):
        for j in range(20):
            assert matrix[i, j] == tonnetz_distance(frames[i], frames[j])


def test_cosine_handles_zero_vectors():
    zero, x = np.zeros(5), np.arange(1.0, 6.0)
    assert cosine_distance(zero, zero) == 0.0
    assert cosine_distance(zero, x) == 1.0
    assert cosine_distance(x, 2 * x) == 0.0
    assert cosine_distance(x, -x) == 2.0
    matrix = cosine_matrix(np.vstack([zero, x, zero, -x]))
    assert np.isfinite(matrix).all()
    assert np.allclose(matrix, matrix.T)


def test_cosine_lower_only_matches_full():
    frames = np.random.default_rng(2).standard_normal((700, 9))
    full, lower = cosine_matrix(frames), cosine_matrix(frames, lower_only=True)
    rows, columns = np.tril_indices(700)
    assert np.array_equal(full[rows, columns], lower[rows, columns])
