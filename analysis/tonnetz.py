"""The Tonnetz distance of Harte, Sandler & Gasser (2006) between chroma vectors.

A 12-bin chroma vector is projected onto six dimensions: the circle of fifths (radius 1,
angle 7*pi/6 per semitone), the circle of minor thirds (radius 1, 3*pi/2 per semitone)
and the circle of major thirds (radius 0.5, 2*pi/3 per semitone). The distance is the
Euclidean distance of the projections.

Two normalisations are offered, because the literature and vmo disagree:

* ``"chroma"`` (default, Harte et al.): the chroma is divided by its L1 norm before the
  projection, so the projection is the centroid of the sounding pitch classes.
* ``"projection"`` (vmo's ``distances/tonnetz.py``, used by the paper's analysis): the
  projection is divided by its own L1 norm. The L1 norm of rotated circle coordinates
  depends on the rotation, so this variant is *not* transposition-invariant (C vs silence
  is not B-flat vs silence); ``"chroma"`` is (transposition rotates each circle).

Silence: the projection of an all-zero chroma is defined as the zero vector, so silence is
at distance 0 from silence and at a finite distance from any chord. Under ``"projection"``
a non-silent chroma whose projection is zero (e.g. all twelve classes equally loud) also
projects to the zero vector, where vmo would divide by zero. No NaN is ever returned.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

TonnetzNorm = Literal["chroma", "projection"]

RADIUS_FIFTHS = 1.0
RADIUS_MINOR_THIRDS = 1.0
RADIUS_MAJOR_THIRDS = 0.5


def _tonnetz_matrix() -> np.ndarray:
    """``(6, 12)``: rows are x and y on the fifths, minor-thirds and major-thirds circles."""
    pitch_class = np.arange(12)
    rows = []
    for radius, angle in (
        (RADIUS_FIFTHS, 7 * np.pi / 6),
        (RADIUS_MINOR_THIRDS, 3 * np.pi / 2),
        (RADIUS_MAJOR_THIRDS, 2 * np.pi / 3),
    ):
        rows.append(radius * np.sin(angle * pitch_class))
        rows.append(radius * np.cos(angle * pitch_class))
    return np.vstack(rows)


TONNETZ_MATRIX = _tonnetz_matrix()


def project(chroma: np.ndarray, norm: TonnetzNorm = "chroma") -> np.ndarray:
    """``(n, 12)`` or ``(12,)`` chroma -> ``(n, 6)`` or ``(6,)`` Tonnetz coordinates, float64.

    Each vector is projected on its own with ``np.dot`` so that a row gives bit-identical
    results whether projected alone or in a batch (thresholds compare exact floats).
    """
    chroma = np.asarray(chroma, dtype=np.float64)
    if chroma.ndim == 1:
        return _project_one(chroma, norm)
    return np.array([_project_one(c, norm) for c in chroma]).reshape(len(chroma), 6)


def _project_one(chroma: np.ndarray, norm: TonnetzNorm) -> np.ndarray:
    if norm == "chroma":
        total = np.sum(np.abs(chroma))
        if total == 0.0:
            return np.zeros(6)
        return np.dot(TONNETZ_MATRIX, chroma / total)
    if norm == "projection":
        coords = np.dot(TONNETZ_MATRIX, chroma)
        total = np.sum(np.abs(coords))
        if total == 0.0:  # silence, or a chroma whose circles all cancel out
            return np.zeros(6)
        return coords / total
    raise ValueError(f"norm must be 'chroma' or 'projection', got {norm!r}")


def tonnetz_distance(a: np.ndarray, b: np.ndarray, norm: TonnetzNorm = "chroma") -> float:
    """Tonnetz distance between two 12-bin chroma vectors; finite and >= 0, never NaN.

    Bit-identical to the entries of :func:`tonnetz_matrix` for the same vectors.
    """
    diff = project(a, norm) - project(b, norm)
    return float(np.sqrt(np.sum(diff * diff)))


def tonnetz_matrix(
    chroma: np.ndarray, norm: TonnetzNorm = "chroma", lower_only: bool = False
) -> np.ndarray:
    """``(n, n)`` float64 pairwise Tonnetz distances of ``(n, 12)`` chroma frames.

    With ``lower_only`` entries above the diagonal are unspecified.
    Memory: the matrix plus a ``(128, n, 6)`` working block.
    """
    return euclidean_matrix(project(chroma, norm), lower_only=lower_only)


def euclidean_matrix(
    points: np.ndarray, lower_only: bool = False, block_rows: int = 128
) -> np.ndarray:
    """``(n, n)`` Euclidean distances from differences (not the Gram trick, whose
    cancellation would make equal points come out at ~1e-8 instead of exactly 0)."""
    points = np.asarray(points, dtype=np.float64)
    unique, inverse = np.unique(points, axis=0, return_inverse=True)
    if 2 * len(unique) < len(points):  # chords recur: compute each distinct pair once
        inverse = inverse.reshape(-1)
        return euclidean_matrix(unique, block_rows=block_rows)[np.ix_(inverse, inverse)]
    n = len(points)
    out = np.empty((n, n))
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        columns = stop if lower_only else n
        diff = points[start:stop, None, :] - points[None, :columns, :]
        out[start:stop, :columns] = np.sqrt(np.sum(diff * diff, axis=-1))
    return out
