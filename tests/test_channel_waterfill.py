"""Reverse water-filling against hand-worked cases and the paper's step-by-step greedy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qbdi.channel import allocate_bits
from qbdi.settings import MAX_BUDGET_BITS


def greedy_reference(variances: np.ndarray, budget_bits: int) -> np.ndarray:
    """The paper's loop, literally: one bit to the largest v (lowest index on ties), v /= 4."""
    v = np.array(variances, dtype=np.float64)
    bits = np.zeros(v.shape, dtype=np.int64)
    for _ in range(budget_bits):
        i = int(np.argmax(v))  # first maximum: lowest index on ties
        if v[i] <= 0:
            break
        bits[i] += 1
        v[i] /= 4
    return bits


@pytest.mark.parametrize(
    ("variances", "budget_bits", "expected"),
    [
        ([4.0, 1.0], 0, [0, 0]),
        ([4.0, 1.0], 1, [1, 0]),  # v -> [1, 1]
        ([4.0, 1.0], 2, [2, 0]),  # tie at 1: lowest index; v -> [0.25, 1]
        ([4.0, 1.0], 3, [2, 1]),  # v -> [0.25, 0.25]
        ([4.0, 1.0], 4, [3, 1]),  # tie at 0.25: index 0; v -> [1/16, 0.25]
        ([4.0, 1.0], 5, [3, 2]),
        ([1.0, 1.0, 1.0], 2, [1, 1, 0]),  # three-way tie, lowest indices first
        ([1.0, 1.0, 1.0], 4, [2, 1, 1]),  # all at 1/4 after 3 bits, then index 0
        ([0.0, 2.0, 0.0], 3, [0, 3, 0]),  # zero variance never gets a bit
        ([16.0, 3.0, 1.0], 3, [2, 1, 0]),  # v -> [4, 3, 1] -> [1, 3, 1] -> [1, .75, 1]
        ([5.0, 0.0], 0, [0, 0]),
    ],
)
def test_hand_worked_cases(variances, budget_bits, expected):
    bits = allocate_bits(np.array(variances), budget_bits)
    assert bits.tolist() == expected
    assert bits.dtype == np.int64


def test_hand_case_16_3_1_step_by_step():
    # 16,3,1: bit 1 -> dim 0 (v=4,3,1); bit 2 -> dim 0 (1,3,1); bit 3 -> dim 1 (1,.75,1);
    # bit 4 -> dim 0 (tie 1 vs 1 at dims 0 and 2, lowest index) (.25,.75,1); bit 5 -> dim 2.
    v = np.array([16.0, 3.0, 1.0])
    assert [allocate_bits(v, b).tolist() for b in range(1, 6)] == [
        [1, 0, 0],
        [2, 0, 0],
        [2, 1, 0],
        [3, 1, 0],
        [3, 1, 1],
    ]


def test_all_zero_variances_stop_early():
    bits = allocate_bits(np.zeros(4), 10)
    assert bits.tolist() == [0, 0, 0, 0]


def test_zero_variances_take_nothing_even_when_budget_exceeds_positive_dims():
    bits = allocate_bits(np.array([0.0, 1e-3, 0.0, 7.0]), 1000)
    assert bits[0] == 0 and bits[2] == 0
    assert bits.sum() == 1000


def test_large_budget_matches_reference():
    rng = np.random.default_rng(7)
    v = rng.gamma(0.5, 2.0, size=500)
    assert np.array_equal(allocate_bits(v, 4096), greedy_reference(v, 4096))


def assert_water_level(v: np.ndarray, bits: np.ndarray) -> None:
    """Greedy optimality in log2 (no underflow): every bit went to a value at least as large
    as any value left, i.e. log2 v_i - 2 b_i <= log2 v_j - 2 (b_j - 1) when b_j >= 1."""
    positive = v > 0
    log_left = np.log2(v[positive]) - 2 * bits[positive]  # log2 of what is left
    given = bits[positive] >= 1
    if given.any():
        log_last_given = (log_left + 2)[given]
        assert log_left.max() <= log_last_given.min() + 1e-9


def test_subnormal_and_huge_variances_do_not_break_the_sum():
    v = np.array([5e-324, 1e300, 1e-310, 3.0])
    bits = allocate_bits(v, 3000)
    assert bits.sum() == 3000
    assert_water_level(v, bits)
    assert bits[1] > bits[3] > bits[2] > bits[0] > 0


# Variances drawn from a small grid of powers of 2 and 4 produce ties, and ties created by
# the divisions (4 and 1 meet at 1 after one bit); other floats check the general case.
tie_prone = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 3.0, 0.75])
general = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
variance_rows = st.lists(st.one_of(tie_prone, general, st.just(0.0)), min_size=1, max_size=24)


@settings(max_examples=300, deadline=None)
@given(variances=variance_rows, budget_bits=st.integers(min_value=0, max_value=200))
def test_equals_reference_greedy(variances, budget_bits):
    v = np.array(variances)
    assert np.array_equal(allocate_bits(v, budget_bits), greedy_reference(v, budget_bits))


@settings(max_examples=200, deadline=None)
@given(variances=variance_rows, budget_bits=st.integers(min_value=0, max_value=300))
def test_sum_equals_budget_and_zeros_get_nothing(variances, budget_bits):
    v = np.array(variances)
    bits = allocate_bits(v, budget_bits)
    assert np.all(bits >= 0)
    assert np.all(bits[v == 0] == 0)
    expected_sum = budget_bits if np.any(v > 0) else 0
    assert bits.sum() == expected_sum
    assert_water_level(v, bits)


@settings(max_examples=100, deadline=None)
@given(variances=variance_rows, budget_bits=st.integers(min_value=0, max_value=150))
def test_monotone_in_budget(variances, budget_bits):
    v = np.array(variances)
    lower = allocate_bits(v, budget_bits)
    higher = allocate_bits(v, budget_bits + 1)
    assert np.all(higher >= lower)
    assert higher.sum() - lower.sum() == (1 if np.any(v > 0) else 0)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=6),
    dim=st.integers(min_value=1, max_value=12),
    budget_bits=st.integers(min_value=0, max_value=100),
    data=st.data(),
)
def test_batch_equals_row_by_row(rows, dim, budget_bits, data):
    cells = data.draw(
        st.lists(st.one_of(tie_prone, general), min_size=rows * dim, max_size=rows * dim)
    )
    v = np.array(cells).reshape(rows, dim)
    v[0] = 0.0  # one row that can take no bits
    batch = allocate_bits(v, budget_bits)
    assert batch.shape == (rows, dim)
    for i in range(rows):
        assert np.array_equal(batch[i], allocate_bits(v[i], budget_bits))


def test_input_is_not_modified():
    v = np.array([4.0, 1.0, 2.0])
    allocate_bits(v, 5)
    assert v.tolist() == [4.0, 1.0, 2.0]


@pytest.mark.parametrize("budget_bits", [-1, 2**31, 2.0, 2.5, None, True, "8"])
def test_bad_budget_is_refused(budget_bits):
    with pytest.raises(ValueError, match="budget_bits"):
        allocate_bits(np.ones(3), budget_bits)


def test_numpy_integer_budget_is_accepted():
    assert allocate_bits(np.array([4.0, 1.0]), np.int32(3)).tolist() == [2, 1]


@pytest.mark.parametrize(
    ("variances", "message"),
    [
        ([1.0, np.nan], "finite"),
        ([1.0, np.inf], "finite"),
        ([1.0, -0.5], ">= 0"),
        ([[[1.0]]], "shape"),
    ],
)
def test_bad_variances_are_refused(variances, message):
    with pytest.raises(ValueError, match=message):
        allocate_bits(np.array(variances), 4)


def test_largest_budget_is_exact_and_keeps_zeros_at_zero():
    v = np.array([0.0, 1.0, 3.0, 0.0])
    bits = allocate_bits(v, MAX_BUDGET_BITS)
    assert bits.sum() == MAX_BUDGET_BITS
    assert bits[0] == bits[3] == 0
    assert abs(bits[1] - bits[2]) <= 1
