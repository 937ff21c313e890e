"""Latent statistics: offline over a query, live over a sliding window seeded from the corpus."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qbdi.channel import (
    ALLOCATION_VARIANCES,
    LatentStats,
    Moments,
    RunningStats,
    WindowStats,
    allocate_bits,
    channel_params,
)

D = 5


def random_bars(seed: int, bars: int, dim: int = D) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(loc=rng.normal(size=dim), scale=rng.uniform(0.2, 3, size=dim), size=(bars, dim))
    logvar = rng.normal(-1.0, 0.7, size=(bars, dim))
    return z, logvar


def seed_stats() -> LatentStats:
    return LatentStats(
        mean=np.array([0.1, -0.2, 0.3, 0.0, 1.0]),
        source_var=np.array([1.0, 0.5, 2.0, 0.25, 4.0]),
        posterior_var=np.array([0.2, 0.3, 0.1, 0.9, 0.4]),
    )


def test_prior():
    prior = LatentStats.prior(3)
    assert prior.dim == 3
    assert prior.mean.tolist() == [0, 0, 0]
    assert prior.source_var.tolist() == [1, 1, 1]
    assert prior.posterior_var.tolist() == [1, 1, 1]


def test_from_latents_matches_numpy():
    z, logvar = random_bars(0, 40)
    stats = LatentStats.from_latents(z, logvar=logvar)
    assert np.allclose(stats.mean, z.mean(axis=0), rtol=1e-12)
    assert np.allclose(stats.source_var, np.var(z, axis=0), rtol=1e-12)
    assert np.allclose(stats.posterior_var, np.exp(logvar).mean(axis=0), rtol=1e-12)
    same = LatentStats.from_latents(z, posterior_var=np.exp(logvar))
    assert np.allclose(same.posterior_var, stats.posterior_var, rtol=1e-12)


def test_statistics_of_mu_alone_have_no_posterior_variance():
    z, _ = random_bars(0, 40)
    stats = LatentStats.from_latents(z)
    assert stats.posterior_var is None
    assert np.allclose(stats.source_var, np.var(z, axis=0), rtol=1e-12)
    assert stats.variance_for("source") is stats.source_var
    with pytest.raises(ValueError, match="no posterior variance"):
        stats.variance_for("posterior")
    with pytest.raises(ValueError, match="posterior variance"):
        WindowStats(stats)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_moments_of_blocks_add_up_to_the_statistics_of_all_bars(dtype):
    z, logvar = random_bars(3, 101)
    z = (5.0 + 3.0 * z).astype(dtype)  # an offset mean: deviations must not cancel badly
    parts = [slice(0, 1), slice(1, 40), slice(40, 101)]
    total = Moments.of(z[parts[0]], logvar[parts[0]])
    for part in parts[1:]:
        total = total + Moments.of(z[part], logvar[part])
    assert total.count == 101
    whole = LatentStats.from_latents(z, logvar=logvar)
    stats = total.stats()
    np.testing.assert_allclose(stats.mean, whole.mean, rtol=1e-7)
    np.testing.assert_allclose(stats.source_var, whole.source_var, rtol=1e-6)
    np.testing.assert_allclose(stats.posterior_var, whole.posterior_var, rtol=1e-12)
    without = (Moments.of(z[:50]) + Moments.of(z[50:], logvar[50:])).stats()
    assert without.posterior_var is None  # a block without logvar leaves it unknown


def test_moments_refuse_bad_input():
    z, logvar = random_bars(4, 6)
    with pytest.raises(ValueError, match="n_bars"):
        Moments.of(z[0])
    with pytest.raises(ValueError, match="finite"):
        Moments.of(np.where(z > 0, np.nan, z))
    with pytest.raises(ValueError, match="shape"):
        Moments.of(z, logvar[:3])


def test_variance_for():
    stats = seed_stats()
    assert ALLOCATION_VARIANCES == ("source", "posterior")
    assert stats.variance_for("source") is stats.source_var
    assert stats.variance_for("posterior") is stats.posterior_var
    with pytest.raises(ValueError, match="allocation"):
        stats.variance_for("mean")  # type: ignore[arg-type]


def test_stats_are_read_only_copies():
    mean = np.zeros(2)
    stats = LatentStats(mean, np.ones(2), np.ones(2))
    mean[0] = 5.0
    assert stats.mean[0] == 0.0
    with pytest.raises(ValueError):
        stats.mean[0] = 1.0


@pytest.mark.parametrize(
    ("mean", "source_var", "posterior_var", "message"),
    [
        (np.zeros(2), np.ones(3), np.ones(2), "one shape"),
        (np.zeros(2), -np.ones(2), np.ones(2), "source_var"),
        (np.zeros(2), np.ones(2), np.array([1.0, np.nan]), "posterior_var"),
        (np.zeros((2, 2)), np.ones(2), np.ones(2), "mean"),
    ],
)
def test_bad_stats_are_refused(mean, source_var, posterior_var, message):
    with pytest.raises(ValueError, match=message):
        LatentStats(mean, source_var, posterior_var)


def test_from_latents_refuses_bad_input():
    z, logvar = random_bars(1, 4)
    with pytest.raises(ValueError, match="at most one"):
        LatentStats.from_latents(z, logvar=logvar, posterior_var=np.exp(logvar))
    with pytest.raises(ValueError, match="shape"):
        LatentStats.from_latents(z, logvar=logvar[:2])
    with pytest.raises(ValueError, match="n_bars"):
        LatentStats.from_latents(z[0], logvar=logvar[0])


def pooled_reference(seed: LatentStats, weight: int, z: np.ndarray, logvar: np.ndarray):
    """from_latents over the bars plus ``weight`` pseudo-bars that have the seed's mean and
    variances exactly: half at mean + std, half at mean - std (weight even)."""
    std = np.sqrt(seed.source_var)
    pseudo_z = [seed.mean + std] * (weight // 2) + [seed.mean - std] * (weight // 2)
    pseudo_logvar = [np.log(seed.posterior_var)] * weight
    return LatentStats.from_latents(
        np.vstack([*pseudo_z, z]) if weight else z,
        logvar=np.vstack([*pseudo_logvar, logvar]) if weight else logvar,
    )


def assert_stats_close(
    got: LatentStats, want: LatentStats, rtol: float = 1e-9, atol: float = 1e-12
) -> None:
    assert np.allclose(got.mean, want.mean, rtol=rtol, atol=atol)
    assert np.allclose(got.source_var, want.source_var, rtol=rtol, atol=atol)
    assert np.allclose(got.posterior_var, want.posterior_var, rtol=rtol, atol=atol)


def test_empty_window_is_the_seed():
    seed = seed_stats()
    for weight in (0.0, 4.0):
        assert_stats_close(WindowStats(seed, 8, weight).current(), seed)


def test_one_bar_is_not_degenerate():
    z, logvar = random_bars(2, 1)
    window = WindowStats(seed_stats(), window_bars=8, seed_weight_bars=4)
    window.push(z[0], logvar[0])
    assert np.all(window.current().source_var > 0)


@pytest.mark.parametrize("weight", [0, 2, 6])
@pytest.mark.parametrize("window_bars", [1, 3, 8])
def test_window_equals_recomputation_at_every_push(weight, window_bars):
    seed = seed_stats()
    z, logvar = random_bars(3, 50)
    window = WindowStats(seed, window_bars=window_bars, seed_weight_bars=weight)
    for t in range(len(z)):
        window.push(z[t], logvar[t])
        held = slice(max(0, t + 1 - window_bars), t + 1)
        assert window.bars == min(t + 1, window_bars)
        assert_stats_close(window.current(), pooled_reference(seed, weight, z[held], logvar[held]))


def test_full_window_of_same_rows_equals_their_statistics_without_seed_weight():
    rows, logvar = random_bars(4, 6)
    window = WindowStats(seed_stats(), window_bars=6, seed_weight_bars=0)
    for _ in range(5):  # cycle the same six bars through the window several times
        for row, lv in zip(rows, logvar, strict=True):
            window.push(row, lv)
    assert_stats_close(window.current(), LatentStats.from_latents(rows, logvar=logvar))


def test_seed_pull_is_w_over_w_plus_window_when_full():
    seed = seed_stats()
    window = WindowStats(seed, window_bars=12, seed_weight_bars=4)
    constant = np.full(D, 10.0)
    for _ in range(30):
        window.push(constant, np.zeros(D))
    stats = window.current()
    expected_mean = (4 * seed.mean + 12 * constant) / 16
    assert np.allclose(stats.mean, expected_mean, rtol=1e-12)
    assert np.allclose(stats.posterior_var, (4 * seed.posterior_var + 12) / 16, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    window_bars=st.integers(1, 10),
    weight=st.sampled_from([0, 2, 4]),
    bars=st.integers(1, 40),
    data_seed=st.integers(0, 10_000),
    offset=st.floats(-1e3, 1e3),
)
def test_window_against_recomputation_random(window_bars, weight, bars, data_seed, offset):
    seed = seed_stats()
    z, logvar = random_bars(data_seed, bars)
    z = z + offset  # latents far from the seed mean stress the running sums
    window = WindowStats(seed, window_bars=window_bars, seed_weight_bars=weight)
    for t in range(bars):
        window.push(z[t], logvar[t])
    held = slice(max(0, bars - window_bars), bars)
    # Rows near |offset| <= 1e3 carry float64 rounding of ~1e-13 per value, so a tiny window
    # variance is only known to ~1e-12 absolute (measured worst over 3000 draws: 5e-13).
    assert_stats_close(
        window.current(), pooled_reference(seed, weight, z[held], logvar[held]), 1e-8, 1e-11
    )


def test_reset_empties_the_window():
    seed = seed_stats()
    z, logvar = random_bars(5, 3)
    window = WindowStats(seed, window_bars=4, seed_weight_bars=0)
    for t in range(3):
        window.push(z[t], logvar[t])
    window.reset()
    assert window.bars == 0
    assert_stats_close(window.current(), seed)
    window.push(z[2], logvar[2])
    assert_stats_close(window.current(), LatentStats.from_latents(z[2:], logvar=logvar[2:]))


def test_bad_push_leaves_the_window_as_it_was():
    z, logvar = random_bars(6, 2)
    window = WindowStats(seed_stats(), window_bars=4, seed_weight_bars=2)
    window.push(z[0], logvar[0])
    before = window.current()
    bad_rows = [
        (np.full(D, np.nan), logvar[1]),
        (z[1], np.full(D, np.inf)),
        (z[1], np.full(D, 1e4)),  # exp overflows
        (z[1][:3], logvar[1][:3]),
    ]
    for row, lv in bad_rows:
        with pytest.raises(ValueError):
            window.push(row, lv)
    assert window.bars == 1
    assert_stats_close(window.current(), before, rtol=0)


@pytest.mark.parametrize(
    ("window_bars", "weight"), [(0, 1.0), (2.5, 1.0), (True, 1.0), (4, -1.0), (4, np.inf)]
)
def test_bad_window_settings_are_refused(window_bars, weight):
    with pytest.raises(ValueError):
        WindowStats(seed_stats(), window_bars=window_bars, seed_weight_bars=weight)


def test_channel_params_chain_statistics_and_water_filling():
    stats = seed_stats()
    z, _ = random_bars(7, 3)
    for allocation in ALLOCATION_VARIANCES:
        params = channel_params(stats, 9, allocation)
        variance = stats.variance_for(allocation)
        assert np.array_equal(params.bits, allocate_bits(variance, 9))
        assert params.variance is variance and params.mean is stats.mean
    per_bar = channel_params(stats, 9, "source", per_bar_z_e=z)
    assert per_bar.bits.shape == z.shape
    assert np.array_equal(per_bar.bits, allocate_bits(np.square(z - stats.mean), 9))


def test_running_stats_are_every_bar_pushed():
    z, logvar = random_bars(7, 6)
    running = RunningStats(seed_stats(), seed_weight_bars=0.0)
    assert running.current() is running._seed
    for row in range(6):
        running.push(z[row], logvar[row])
    assert_stats_close(running.current(),
                       LatentStats.from_latents(z[:6], logvar=logvar[:6]))
    running.reset()
    assert running.current() is running._seed
    with pytest.raises(ValueError):
        running.push(z[0][:3], None)


def test_running_stats_with_seed_weight_equal_an_endless_window():
    z, logvar = random_bars(7, 5)
    running, window = RunningStats(seed_stats()), WindowStats(seed_stats(), window_bars=64)
    for row in range(5):
        running.push(z[row], logvar[row])
        window.push(z[row], logvar[row])
    assert_stats_close(running.current(), window.current())


def test_window_without_logvar_has_no_posterior_until_those_bars_leave():
    z, logvar = random_bars(7, 6)
    window = WindowStats(seed_stats(), window_bars=3)
    window.push(z[0], logvar[0])
    assert window.current().posterior_var is not None
    window.push(z[1], None)  # a bar whose posterior variance nothing needed
    stats = window.current()
    assert stats.posterior_var is None
    reference = WindowStats(seed_stats(), window_bars=3)
    reference.push(z[0], logvar[0])
    reference.push(z[1], logvar[1])
    assert_stats_close(  # the mean and source variance do not depend on logvar
        LatentStats(stats.mean, stats.source_var, reference.current().posterior_var),
        reference.current())
    for row in range(2, 5):  # z[1] leaves the window after three more pushes
        window.push(z[row], logvar[row])
        reference.push(z[row], logvar[row])
        assert (window.current().posterior_var is None) == (row < 4)
    assert_stats_close(window.current(), reference.current())
    with pytest.raises(ValueError, match="logvar"):
        window.push(z[5], logvar[5][:2])
