"""The perfect-realism channel: its moments against the formulas, limits, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from qbdi.channel import ChannelParams, transmit, transmitter
from qbdi.channel import transmit_realism as _transmit_realism

D = 6


def transmit_realism(z_e, mu_e, sigma2_e, bits, rng):
    return _transmit_realism(z_e, ChannelParams(mu_e, sigma2_e, bits), rng)


BITS = np.array([0, 1, 2, 3, 5, 1])
MU_E = np.array([0.5, 1.0, -0.25, 0.0, 2.0, -3.0], dtype=np.float32)
SIGMA2_E = np.array([0.3, 4.0, 2.5, 9.0, 0.5, 0.04])
Z_E = np.array([1.5, -2.0, 0.75, 3.0, -1.0, 0.0], dtype=np.float32)


def test_conditional_mean_and_variance_match_the_formula():
    # Given z_e: mean mu + sqrt(1 - a)(z_e - mu), variance a sigma2, a = 2^(-2R).
    draws = 200_000
    z_d = transmit_realism(np.tile(Z_E, (draws, 1)), MU_E, SIGMA2_E, BITS,
                           np.random.default_rng(1)).astype(np.float64)
    a = 2.0 ** (-2 * BITS)
    mean = MU_E + np.sqrt(1 - a) * (Z_E - MU_E)
    variance = a * SIGMA2_E
    assert np.all(np.abs(z_d.mean(axis=0) - mean) <= 5 * np.sqrt(variance / draws) + 1e-6)
    assert np.all(np.abs(z_d.var(axis=0) - variance) <= 5 * variance * np.sqrt(2 / draws) + 1e-9)


def test_a_gaussian_source_keeps_its_distribution_and_correlates_by_the_rate():
    # z_e ~ N(mu, sigma2): z_d has mean mu, variance sigma2 at every rate, and correlation
    # sqrt(1 - a) with z_e, so I(z_e; z_d) = -1/2 log2(1 - rho^2) = R bits.
    draws = 200_000
    rng = np.random.default_rng(2)
    z_e = (MU_E + np.sqrt(SIGMA2_E) * rng.standard_normal((draws, D))).astype(np.float32)
    z_d = transmit_realism(z_e, MU_E, SIGMA2_E, BITS, rng).astype(np.float64)
    assert np.allclose(z_d.mean(axis=0), MU_E, atol=5 * np.sqrt(SIGMA2_E / draws))
    assert np.allclose(z_d.var(axis=0) / SIGMA2_E, 1.0, atol=5 * np.sqrt(2 / draws))
    rho = np.array([np.corrcoef(z_e[:, i], z_d[:, i])[0, 1] for i in range(D)])
    assert np.allclose(rho, np.sqrt(1 - 2.0 ** (-2 * BITS)), atol=0.01)
    assert np.allclose(-0.5 * np.log2(1 - rho[BITS > 0] ** 2), BITS[BITS > 0], atol=0.05)


def test_zero_bits_draw_from_the_statistics_whatever_z_e():
    draws = 100_000
    far = np.full((draws, D), 1e3, dtype=np.float32)
    z_d = transmit_realism(far, MU_E, SIGMA2_E, np.zeros(D, dtype=int),
                           np.random.default_rng(3)).astype(np.float64)
    assert np.allclose(z_d.mean(axis=0), MU_E, atol=5 * np.sqrt(SIGMA2_E / draws))
    assert np.allclose(z_d.var(axis=0) / SIGMA2_E, 1.0, atol=0.03)


@pytest.mark.parametrize("bits", [30, 64, 10_000])
def test_many_bits_send_z_e(bits):
    z = np.random.default_rng(4).normal(size=(20, D)).astype(np.float32)
    z_d = transmit_realism(z, MU_E, SIGMA2_E, np.full(D, bits), np.random.default_rng(5))
    assert np.all(np.isfinite(z_d))
    assert np.max(np.abs(z_d - z)) < 1e-5


def test_same_seed_same_output_other_seed_differs_and_draws_do_not_depend_on_bits():
    z = np.random.default_rng(8).normal(size=(10, D))
    first = transmit_realism(z, MU_E, SIGMA2_E, BITS, np.random.default_rng(42))
    again = transmit_realism(z, MU_E, SIGMA2_E, BITS, np.random.default_rng(42))
    other = transmit_realism(z, MU_E, SIGMA2_E, BITS, np.random.default_rng(43))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    transmit_realism(Z_E, MU_E, SIGMA2_E, np.zeros(D, dtype=int), rng_a)
    transmit_realism(Z_E, MU_E, SIGMA2_E, np.full(D, 4), rng_b)
    assert rng_a.random() == rng_b.random()


@pytest.mark.parametrize(("z_shape", "stat_shape"), [((D,), (D,)), ((7, D), (D,)),
                                                     ((7, D), (7, D))])
def test_shapes_and_dtype(z_shape, stat_shape):
    rng = np.random.default_rng(10)
    z_d = transmit_realism(rng.normal(size=z_shape), rng.normal(size=stat_shape),
                           rng.uniform(0.1, 2, size=stat_shape),
                           rng.integers(0, 4, size=stat_shape), rng)
    assert z_d.shape == z_shape
    assert z_d.dtype == np.float32


@pytest.mark.parametrize(("bits", "sigma2", "message"), [
    (np.full(D, -1), SIGMA2_E, "bits"),
    (np.full(D, 1.0), SIGMA2_E, "integer"),
    (BITS, -SIGMA2_E, "sigma2_e"),
    (BITS, np.full(D, np.inf), "sigma2_e"),
    (np.zeros((3, D), dtype=int), SIGMA2_E, "broadcast"),
])
def test_bad_inputs_are_refused(bits, sigma2, message):
    with pytest.raises(ValueError, match=message):
        transmit_realism(Z_E, MU_E, sigma2, bits, np.random.default_rng(0))


def test_it_draws_as_the_paper_channel_draws_so_both_share_a_seed_s_stream():
    z = np.random.default_rng(11).normal(size=(4, D)).astype(np.float32)
    params = ChannelParams(MU_E, SIGMA2_E, BITS)
    rng_paper, rng_realism = np.random.default_rng(12), np.random.default_rng(12)
    transmit(z, params, rng_paper)
    _transmit_realism(z, params, rng_realism)
    assert rng_paper.random() == rng_realism.random()


def test_channels_by_name():
    assert transmitter("paper") is transmit
    assert transmitter("perception") is _transmit_realism
    with pytest.raises(ValueError, match="channel"):
        transmitter("lossy")
