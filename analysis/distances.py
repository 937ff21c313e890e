"""Pairwise distance matrices for the oracle: cosine for latents, Tonnetz for chroma.

The oracle compares frames only through a precomputed ``(n, n)`` float64 matrix, so the
same matrix serves every threshold of a sweep.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from qbdi.analysis.tonnetz import TonnetzNorm, tonnetz_matrix

Metric = Literal["cosine", "tonnetz"]

# Cosine distances below this are round-off of equal directions; snapping them to 0 makes
# exact duplicates tie at exactly 0 whatever order the dot products were summed in.
COSINE_ROUNDOFF = 1e-12


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - cos(a, b)`` in ``[0, 2]``; zero vectors: 0 to another zero vector, else 1.

    (scipy and vmo give NaN for a zero vector; we treat it as orthogonal to everything
    but itself, so a silent latent never matches a sounding one at threshold <= 1.)
    """
    return float(cosine_matrix(np.vstack([a, b]))[0, 1])


def cosine_matrix(
    frames: np.ndarray, lower_only: bool = False, block_rows: int = 512
) -> np.ndarray:
    """``(n, n)`` float64 cosine distances of ``(n, d)`` frames, in ``[0, 2]``, symmetric.

    With ``lower_only`` only entries ``[i, j]`` with ``j <= i`` are computed (half the
    work; all the oracle reads) and the rest of the matrix is unspecified.
    """
    frames = np.asarray(frames, dtype=np.float64)
    n = len(frames)
    norms = np.sqrt(np.einsum("ij,ij->i", frames, frames))
    zero = norms == 0.0
    unit = frames / np.where(zero, 1.0, norms)[:, None]
    out = np.empty((n, n))
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        columns = stop if lower_only else n
        block = out[start:stop, :columns]
        np.matmul(unit[start:stop], unit[:columns].T, out=block)
        np.subtract(1.0, block, out=block)
        np.clip(block, 0.0, 2.0, out=block)
        block[block < COSINE_ROUNDOFF] = 0.0
    # A zero vector has cos 0 with everything: distance 1, and 0 to another zero vector.
    if zero.any():
        out[zero, :] = 1.0
        out[:, zero] = 1.0
        out[np.ix_(zero, zero)] = 0.0
    np.fill_diagonal(out, 0.0)
    return out


def distance_matrix(
    frames: np.ndarray,
    metric: Metric,
    tonnetz_norm: TonnetzNorm = "chroma",
    lower_only: bool = False,
) -> np.ndarray:
    """``(n, n)`` pairwise distances of ``frames`` under ``metric``, never NaN.

    With ``lower_only`` entries above the diagonal are unspecified.
    """
    if metric == "cosine":
        return cosine_matrix(frames, lower_only=lower_only)
    if metric == "tonnetz":
        return tonnetz_matrix(frames, tonnetz_norm, lower_only=lower_only)
    raise ValueError(f"metric must be 'cosine' or 'tonnetz', got {metric!r}")
