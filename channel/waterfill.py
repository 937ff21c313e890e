"""Reverse water-filling: split a bit budget over latent dimensions (paper, section 2.1).

The paper's greedy gives one bit at a time to the dimension of largest current variance and
divides that variance by 4 (one bit lowers a Gaussian's distortion by a factor 2^-2). Its
result is the top ``budget_bits`` values of the multiset ``{v_i / 4^k : k >= 0}``, so it is
computed here without the loop: write ``v_i = phase_i * 4^level_i`` exactly (``phase_i`` in
[0.5, 2), from the float's own mantissa and exponent), find the lowest level that the budget
reaches in closed form, give every dimension all the levels above it, and hand the remaining
bits at that one level to the largest phases, lowest index first on ties.
"""

from __future__ import annotations

import numbers

import numpy as np

MAX_BUDGET_BITS = 2**31 - 1
"""The largest budget accepted; far above any use (the paper's figures use 256 and 512)."""


def allocate_bits(variances: np.ndarray, budget_bits: int) -> np.ndarray:
    """Bits per dimension by reverse water-filling, as int64 of the same shape as ``variances``.

    ``variances`` is ``(d,)`` or a batch ``(n, d)``; each row is allocated independently with
    the same ``budget_bits``, so the batch equals the rows done one by one.

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
    if v.ndim == 1 or len(v) == 1:  # the live path: one row, every bar
        return _allocate_row(v.reshape(-1), int(budget_bits)).reshape(v.shape)
    return _allocate_rows(v, int(budget_bits))


def _check_budget(budget_bits: object) -> None:
    if isinstance(budget_bits, bool) or not isinstance(budget_bits, numbers.Integral):
        raise ValueError(
            f"budget_bits must be a non-negative int, got {budget_bits!r} "
            f"({type(budget_bits).__name__}); for no rate limit pass FULL_RATE to transmit"
        )
    if not 0 <= budget_bits <= MAX_BUDGET_BITS:
        raise ValueError(f"budget_bits must be in [0, {MAX_BUDGET_BITS}], got {budget_bits}")


def _checked_variances(variances: np.ndarray) -> np.ndarray:
    v = np.asarray(variances, dtype=np.float64)
    if v.ndim not in (1, 2):
        raise ValueError(f"variances must be (d,) or (n, d), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("variances must be finite (found NaN or inf)")
    if np.any(v < 0):
        raise ValueError(f"variances must be >= 0, found minimum {v.min()}")
    return v


def _allocate_rows(v: np.ndarray, budget_bits: int) -> np.ndarray:
    """Water-filling of each row of ``v`` (n, d), already validated."""
    n, d = v.shape
    positive = v > 0  # (n, d)
    live = positive.any(axis=1)  # (n,) rows that can take bits
    if budget_bits == 0 or d == 0 or not live.any():
        return np.zeros((n, d), dtype=np.int64)

    mantissa, exponent = np.frexp(v)  # v = mantissa * 2^exponent, mantissa in [0.5, 1)
    level = exponent.astype(np.int64) >> 1  # floor(exponent / 2)
    phase = np.ldexp(mantissa, exponent - 2 * level)  # exact; v = phase * 4^level
    # Candidate v_i / 4^k sits at level level_i - k with phase phase_i: levels order the
    # candidates, phases order them within a level. Zero variances get a level far below
    # any the budget can reach, so they hold no candidates.
    level[~positive] = _NO_LEVEL

    base_level = _base_level(level, positive.sum(axis=1), budget_bits)  # (n,)
    base_level = np.where(live, base_level, 0)[:, None]  # (n, 1)
    bits = np.where(positive, np.maximum(level - base_level, 0), 0)  # all above the base level
    remaining = budget_bits - bits.sum(axis=1)  # (n,) bits to give at the base level
    at_base = positive & (level >= base_level)
    # Largest phase first; a stable sort keeps the lowest index first among equal phases.
    order = np.argsort(np.where(at_base, -phase, np.inf), axis=1, kind="stable")
    rank = np.empty_like(order)  # rank[i] = place of dimension i in that order
    rank[np.arange(n)[:, None], order] = np.arange(d)
    bits += (rank < remaining[:, None]) & live[:, None]
    return bits


_NO_LEVEL = -(2**40)


def _allocate_row(v: np.ndarray, budget_bits: int) -> np.ndarray:
    """:func:`_allocate_rows` of one row ``(d,)``, already validated, in a third less time:
    the positive dimensions alone are leveled (so no level stands for "none"), and only
    those at the base level are ranked by phase."""
    bits = np.zeros(v.shape[0], dtype=np.int64)
    positive = np.flatnonzero(v)
    if budget_bits == 0 or positive.size == 0:
        return bits
    mantissa, exponent = np.frexp(v[positive])
    level = exponent.astype(np.int64) >> 1
    phase = np.ldexp(mantissa, exponent - 2 * level)
    sums = np.cumsum(np.sort(level)[::-1])  # see _base_level: every j counts positives
    base_level = ((sums - budget_bits) // np.arange(1, len(sums) + 1) + 1).max()
    got = np.maximum(level - base_level, 0)
    at_base = np.flatnonzero(level >= base_level)  # in index order: stable ties go lowest
    chosen = at_base[np.argsort(-phase[at_base], kind="stable")[: budget_bits - got.sum()]]
    got[chosen] += 1
    bits[positive] = got
    return bits


def _base_level(level: np.ndarray, n_positive: np.ndarray, budget_bits: int) -> np.ndarray:
    """Per row, the largest level L whose candidates at levels >= L number >= budget_bits.

    That count is ``N(L) = sum_i max(0, level_i - L + 1)``, which equals the largest over j of
    ``S_j - j (L - 1)``, ``S_j`` the sum of the j highest levels (all terms positive for the
    right j, and dropping or adding terms only lowers the sum). So ``N(L) >= budget`` iff
    ``L <= floor((S_j - budget) / j) + 1`` for some j, and L is the largest of these bounds.
    Rows without positive variance give a meaningless value.
    """
    highest_first = np.sort(level, axis=1)[:, ::-1]  # (n, d)
    sums = np.cumsum(highest_first, axis=1)  # S_j for j = 1..d
    j = np.arange(1, level.shape[1] + 1)
    bounds = (sums - budget_bits) // j + 1
    bounds = np.where(j[None, :] <= n_positive[:, None], bounds, _NO_LEVEL)
    return bounds.max(axis=1)
