"""The value checks every channel input shares, each in as few passes as it takes: the live
loop makes them on every bar, and a check on a 128-dimension row costs more in numpy's call
overhead than in arithmetic."""

from __future__ import annotations

import numpy as np


def all_finite(values: np.ndarray) -> bool:
    """No NaN or infinity in ``values`` (True when empty)."""
    return bool(np.isfinite(values).all())


def finite_non_negative(values: np.ndarray) -> bool:
    """Every value of ``values`` finite and >= 0 (True when empty): its minimum is >= 0 and
    its maximum below infinity, two reductions; a NaN fails both comparisons."""
    return bool(values.min(initial=0.0) >= 0.0 and values.max(initial=0.0) < np.inf)


def non_negative_integers(values: np.ndarray) -> bool:
    """``values`` an integer array (not bool) whose values are all >= 0 (True when empty)."""
    return values.dtype.kind in "iu" and bool(values.min(initial=0) >= 0)
