"""Reverse water-filling: split a bit budget over latent dimensions (paper, section 2.1).

The paper's greedy gives one bit at a time to the dimension of largest current variance and
divides that variance by 4 (one bit lowers a Gaussian's distortion by a factor 2^-2). Its
result is the top ``budget_bits`` values of the multiset ``{v_i / 4^k : k >= 0}``. A loop of
``budget_bits`` steps would cost the live bar more than the rest of its answer, so the top
values are found at once: write ``v_i = phase_i * 4^level_i`` exactly (``phase_i`` in
[0.5, 2), from the float's own mantissa and exponent); a candidate ``v_i / 4^k`` then sits at
level ``level_i - k`` with phase ``phase_i``. Find the lowest level the budget reaches (the
water level), give every dimension all its candidates above it, and hand the bits left at
that level to the largest phases, lowest index first on ties.
"""

from __future__ import annotations

import numbers

import numpy as np

from qbdi.channel.checks import all_finite, finite_non_negative
from qbdi.settings import MAX_BUDGET_BITS


def allocate_bits(variances: np.ndarray, budget_bits: int) -> np.ndarray:
    """Bits per dimension by reverse water-filling, as int64 of the same shape as ``variances``.

    ``variances`` is ``(d,)`` or a batch ``(n, d)``; each row is allocated on its own with the
    same ``budget_bits``.

    Guarantees, per row:

    * the result equals the paper's greedy (give a bit to the largest current ``v``, divide
      it by 4, ties to the lowest index), with ``v_i / 4^k`` compared exactly; this is the
      step-by-step greedy whenever its repeated divisions stay in the normal float range;
    * a dimension of zero variance never receives a bit; ``sum == budget_bits`` whenever
      some variance in the row is positive, and a row of all zeros gets no bits at all;
    * every dimension's bits never decrease as ``budget_bits`` grows; budget 0 gives zeros.

    Raises ValueError for a budget that is not an int in ``[0, MAX_BUDGET_BITS]``, and for
    variances that are not finite and non-negative or not 1-D/2-D.
    """
    _check_budget(budget_bits)
    v = _checked_variances(variances)
    if v.ndim == 2:
        return np.stack([_allocate_row(row, int(budget_bits)) for row in v]).reshape(v.shape)
    return _allocate_row(v, int(budget_bits))


def _allocate_row(v: np.ndarray, budget_bits: int) -> np.ndarray:
    bits = np.zeros(v.shape[0], dtype=np.int64)
    positive = v.nonzero()[0]
    if budget_bits == 0 or positive.size == 0:
        return bits
    mantissa, exponent = np.frexp(v[positive])  # v = mantissa * 2^exponent, exactly
    level = exponent.astype(np.int64) >> 1  # floor(exponent / 2)
    phase = np.ldexp(mantissa, exponent - 2 * level)  # v = phase * 4^level, exactly
    water = _water_level(level, budget_bits)
    got = np.maximum(level - water, 0)  # every candidate above the water level
    at_water = (level >= water).nonzero()[0]  # in index order, so ties go to the lowest
    chosen = at_water[(-phase[at_water]).argsort(kind="stable")[: budget_bits - got.sum()]]
    got[chosen] += 1
    bits[positive] = got
    return bits


def _water_level(level: np.ndarray, budget_bits: int) -> int:
    """The largest level L whose candidates at levels >= L number at least ``budget_bits``.

    That count is ``N(L) = sum_i max(0, level_i - L + 1)``, which equals the largest over j of
    ``S_j - j (L - 1)``, ``S_j`` the sum of the j highest levels (all its terms are positive
    for the right j; dropping or adding terms only lowers the sum). So ``N(L) >= budget``
    exactly when ``L <= floor((S_j - budget) / j) + 1`` for some j: L is the largest bound.
    """
    sums = np.sort(level)[::-1].cumsum()  # S_j for j = 1..d
    return int(((sums - budget_bits) // np.arange(1, len(sums) + 1) + 1).max())


def _check_budget(budget_bits: object) -> None:
    if isinstance(budget_bits, bool) or not isinstance(budget_bits, numbers.Integral):
        raise ValueError(f"budget_bits must be a non-negative int, got {budget_bits!r} "
                         f"({type(budget_bits).__name__})")
    if not 0 <= budget_bits <= MAX_BUDGET_BITS:
        raise ValueError(f"budget_bits must be in [0, {MAX_BUDGET_BITS}], got {budget_bits}")


def _checked_variances(variances: np.ndarray) -> np.ndarray:
    v = np.asarray(variances, dtype=np.float64)
    if v.ndim not in (1, 2):
        raise ValueError(f"variances must be (d,) or (n, d), got shape {v.shape}")
    if not finite_non_negative(v):
        if not all_finite(v):
            raise ValueError("variances must be finite (found NaN or inf)")
        raise ValueError(f"variances must be >= 0, found minimum {v.min()}")
    return v
