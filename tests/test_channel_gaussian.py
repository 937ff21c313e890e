"""The Gaussian test channel (paper eq. 6-8): moments, limits, determinism, shapes."""

from __future__ import annotations

import numpy as np
import pytest

from qbdi.channel import ChannelParams, transmit

D = 6


def send(z_e, mu_e, sigma2_e, bits, rng):
    return transmit(z_e, ChannelParams(mu_e, sigma2_e, bits), rng)

BITS = np.array([0, 1, 2, 3, 5, 1])
Z_E = np.array([1.5, -2.0, 0.75, 3.0, -1.0, 0.0], dtype=np.float32)
MU_E = np.array([0.5, 1.0, -0.25, 0.0, 2.0, -3.0], dtype=np.float32)
SIGMA2_E = np.array([0.3, 4.0, 2.5, 9.0, 0.5, 0.04])


def eq7_mean(z_e, mu_e, bits):
    return z_e + 2.0 ** (-2 * bits) * (mu_e - z_e)


def eq8_variance(sigma2_e, bits):
    return 2.0 ** (-4 * bits) * (2.0 ** (2 * bits) - 1) * sigma2_e


def test_empirical_moments_match_eq7_and_eq8():
    draws = 200_000
    z = np.tile(Z_E, (draws, 1))
    z_d = send(z, MU_E, SIGMA2_E, BITS, np.random.default_rng(1)).astype(np.float64)
    mean = eq7_mean(Z_E.astype(np.float64), MU_E.astype(np.float64), BITS)
    variance = eq8_variance(SIGMA2_E, BITS)
    # Five standard errors: of the mean sqrt(var / n), of the variance var * sqrt(2 / (n - 1)).
    mean_tol = 5 * np.sqrt(variance / draws) + 1e-6
    var_tol = 5 * variance * np.sqrt(2 / (draws - 1)) + 1e-12
    assert np.all(np.abs(z_d.mean(axis=0) - mean) <= mean_tol)
    assert np.all(np.abs(z_d.var(axis=0) - variance) <= var_tol)


def test_noise_is_scaled_by_standard_deviation_not_variance():
    # R = 1, sigma2 = 16: eq. 8 gives variance 2^-4 * 3 * 16 = 3, so std sqrt(3) ~ 1.73; the
    # reference notebook's bug (unit noise times the variance) would give std 3.
    draws = 100_000
    z_d = send(
        np.zeros((draws, 1)), np.zeros(1), np.array([16.0]), np.array([1]), np.random.default_rng(2)
    )
    assert abs(z_d.std() - np.sqrt(3.0)) < 0.02


def test_zero_bits_send_mu_exactly():
    z = np.random.default_rng(3).normal(size=(50, D)).astype(np.float32) * 100
    z_d = send(z, MU_E, SIGMA2_E, np.zeros(D, dtype=np.int64), np.random.default_rng(4))
    assert np.array_equal(z_d, np.broadcast_to(MU_E, z.shape))


def test_zero_bit_dimensions_are_exact_among_others():
    z_d = send(Z_E, MU_E, SIGMA2_E, BITS, np.random.default_rng(5))
    assert z_d[0] == MU_E[0]


@pytest.mark.parametrize("bits", [30, 64, 10_000])
def test_many_bits_send_z_e(bits):
    z = np.random.default_rng(6).normal(size=(20, D)).astype(np.float32)
    z_d = send(z, MU_E, SIGMA2_E, np.full(D, bits), np.random.default_rng(7))
    assert np.all(np.isfinite(z_d))
    assert np.max(np.abs(z_d - z)) < 1e-6


def test_same_seed_same_output_and_other_seed_differs():
    z = np.random.default_rng(8).normal(size=(10, D))
    first = send(z, MU_E, SIGMA2_E, BITS, np.random.default_rng(42))
    again = send(z, MU_E, SIGMA2_E, BITS, np.random.default_rng(42))
    other = send(z, MU_E, SIGMA2_E, BITS, np.random.default_rng(43))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_draws_do_not_depend_on_bits():
    # Same stream consumption whatever the bits: the next draw after the call is the same.
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    send(Z_E, MU_E, SIGMA2_E, np.zeros(D, dtype=int), rng_a)
    send(Z_E, MU_E, SIGMA2_E, np.full(D, 4), rng_b)
    assert rng_a.random() == rng_b.random()


@pytest.mark.parametrize(
    ("z_shape", "stat_shape", "bits_shape"),
    [((D,), (D,), (D,)), ((7, D), (D,), (D,)), ((7, D), (7, D), (7, D)), ((7, D), (D,), (7, D))],
)
def test_shapes_and_dtype(z_shape, stat_shape, bits_shape):
    rng = np.random.default_rng(10)
    z_d = send(
        rng.normal(size=z_shape),
        rng.normal(size=stat_shape),
        rng.uniform(0.1, 2, size=stat_shape),
        rng.integers(0, 4, size=bits_shape),
        rng,
    )
    assert z_d.shape == z_shape
    assert z_d.dtype == np.float32


def test_per_row_bits_are_applied_per_row():
    z = np.tile(Z_E, (2, 1))
    bits = np.stack([np.zeros(D, dtype=int), np.full(D, 40)])
    z_d = send(z, MU_E, SIGMA2_E, bits, np.random.default_rng(11))
    assert np.array_equal(z_d[0], MU_E)
    assert np.allclose(z_d[1], Z_E, atol=1e-6)


def test_dims_with_bits_counts_per_row():
    params = ChannelParams(MU_E, SIGMA2_E, np.stack([BITS, np.zeros(D, dtype=int)]))
    assert params.dims_with_bits.tolist() == [5, 0]
    assert ChannelParams(MU_E, SIGMA2_E, BITS).dims_with_bits == 5


@pytest.mark.parametrize(
    ("bits", "sigma2", "message"),
    [
        (np.full(D, -1), SIGMA2_E, "bits"),
        (np.full(D, 1.0), SIGMA2_E, "integer"),
        (np.full(D, True), SIGMA2_E, "integer"),
        (BITS, -SIGMA2_E, "sigma2_e"),
        (BITS, np.full(D, np.nan), "sigma2_e"),
        (np.zeros((3, D), dtype=int), SIGMA2_E, "broadcast"),
    ],
)
def test_bad_inputs_are_refused(bits, sigma2, message):
    with pytest.raises(ValueError, match=message):
        send(Z_E, MU_E, sigma2, bits, np.random.default_rng(0))


@pytest.mark.parametrize("shape", [(), (1,), (D,), (1, D), (3, D), (3, 1), (2, D), (D, 1),
                                   (1, 1, D), (0,), (4,)])
def test_parameter_shapes_follow_numpys_broadcasting(shape):
    """Parameters are accepted exactly when numpy broadcasts them to z_e's shape unchanged."""
    z = np.zeros((3, D), dtype=np.float32)
    try:
        fits = np.broadcast_shapes(z.shape, shape) == z.shape
    except ValueError:
        fits = False
    params = ChannelParams(np.zeros(shape, np.float32), np.ones(shape), np.zeros(shape, int))
    if fits:
        assert transmit(z, params, np.random.default_rng(0)).shape == z.shape
    else:
        with pytest.raises(ValueError, match="broadcast"):
            transmit(z, params, np.random.default_rng(0))
