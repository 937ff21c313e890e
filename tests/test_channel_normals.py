"""The channel's normal draws: N(0, 1) in distribution, seeded, of any shape."""

import math

import numpy as np
import pytest

from qbdi.channel.normals import BOX_MULLER_MIN_DRAWS, standard_normals

TAIL_LIMIT = math.sqrt(-2.0 * math.log(2.0**-24))


def normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def test_draws_are_standard_normal():
    draws = standard_normals(np.random.default_rng(0), 400_000).astype(np.float64)
    assert draws.shape == (400_000,)
    se = 1.0 / math.sqrt(len(draws))
    assert abs(draws.mean()) < 5 * se
    assert abs(draws.var() - 1.0) < 5 * math.sqrt(2.0) * se
    assert abs(np.mean(draws**3)) < 5 * math.sqrt(15.0) * se  # symmetric
    assert abs(np.mean(draws**4) - 3.0) < 5 * math.sqrt(96.0) * se  # Gaussian tails
    # Kolmogorov-Smirnov distance on a sorted subsample (critical value at 1e-3: 1.95/sqrt n)
    sample = np.sort(draws[:20_000])
    empirical = np.arange(1, len(sample) + 1) / len(sample)
    assert np.max(np.abs(empirical - normal_cdf(sample))) < 1.95 / math.sqrt(len(sample))
    assert np.max(np.abs(draws)) <= TAIL_LIMIT + 1e-5


def test_the_two_halves_of_each_pair_are_uncorrelated():
    draws = standard_normals(np.random.default_rng(1), 200_000)
    half = len(draws) // 2
    assert abs(np.corrcoef(draws[:half], draws[half:])[0, 1]) < 0.015


def test_small_requests_are_standard_normal_too():
    rng = np.random.default_rng(2)
    draws = np.concatenate([standard_normals(rng, 500) for _ in range(400)]).astype(float)
    se = 1.0 / math.sqrt(len(draws))
    assert abs(draws.mean()) < 5 * se and abs(draws.var() - 1.0) < 5 * math.sqrt(2.0) * se


@pytest.mark.parametrize("shape", [1, 7, (3, 5), (2, 3, 4), (0, 500), (9, 500), 9001])
def test_shapes_dtype_and_seeding(shape):
    a = standard_normals(np.random.default_rng(5), shape)
    b = standard_normals(np.random.default_rng(5), shape)
    expected = (shape,) if isinstance(shape, int) else shape
    assert a.shape == expected and a.dtype == np.float32
    assert np.array_equal(a, b) and np.all(np.isfinite(a))
    if a.size > 1:
        assert not np.array_equal(a, standard_normals(np.random.default_rng(6), shape))


def test_box_muller_draws_consume_the_generator_in_pairs():
    rng = np.random.default_rng(9)
    standard_normals(rng, BOX_MULLER_MIN_DRAWS + 1)  # rounded up to whole pairs
    reference = np.random.default_rng(9)
    reference.random(BOX_MULLER_MIN_DRAWS + 2, dtype=np.float32)
    assert rng.random() == reference.random()
