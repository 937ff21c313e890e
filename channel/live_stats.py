"""Latent statistics kept live, a bar at a time: over the last bars (:class:`WindowStats`) or
over every bar since the start (:class:`RunningStats`), both seeded from the corpus (or the
prior) so that the first bars do not leave a zero variance."""

from __future__ import annotations

import numbers

import numpy as np

from qbdi.channel.checks import all_finite
from qbdi.channel.stats import LatentStats, Moments, exp_logvar


class WindowStats:
    """Latent statistics over the last ``window_bars`` bars, for live use.

    Scheme: the seed (the corpus statistics, or the prior) counts as ``seed_weight_bars``
    pseudo-bars with the seed's mean and variances, pooled with the ``k`` bars in the window
    (``k <= window_bars``, ``w = seed_weight_bars``, ``m``/``s2`` the window's own mean and
    population variance):

    * ``mean = (w * seed.mean + k * m) / (w + k)``,
    * ``source_var = (w * seed.source_var + k * s2 + w k / (w + k) (m - seed.mean)^2) / (w + k)``,
      the variance of the pooled set,
    * ``posterior_var = (w * seed.posterior_var + sum exp(logvar)) / (w + k)``.

    So one bar does not leave a zero variance, and the seed's pull is fixed at
    ``w / (w + window_bars)`` once the window is full (it does not decay further). With
    ``seed_weight_bars = 0`` :meth:`current` equals ``LatentStats.from_latents`` of the
    window's bars (and is the seed while the window is empty). With an even integer ``w`` it
    equals ``from_latents`` of the bars plus ``w / 2`` rows at
    ``seed.mean + sqrt(seed.source_var)`` and ``w / 2`` at ``seed.mean - sqrt(...)``.

    :meth:`push` and :meth:`current` cost O(d): a sliding Welford update of the window's mean
    and sum of squared deviations (no cancellation of large raw sums), re-summed exactly from
    the ring buffer once every ``window_bars`` pushes so rounding cannot drift.
    """

    def __init__(
        self, seed: LatentStats, window_bars: int = 16, seed_weight_bars: float = 4.0
    ) -> None:
        if isinstance(window_bars, bool) or not isinstance(window_bars, numbers.Integral):
            raise ValueError(f"window_bars must be an int >= 1, got {window_bars!r}")
        if window_bars < 1:
            raise ValueError(f"window_bars must be an int >= 1, got {window_bars!r}")
        if not np.isfinite(seed_weight_bars) or seed_weight_bars < 0:
            raise ValueError(f"seed_weight_bars must be finite and >= 0, got {seed_weight_bars}")
        if seed.posterior_var is None:
            raise ValueError("the seed statistics need a posterior variance")
        self._seed = seed
        self._window_bars = int(window_bars)
        self._seed_weight_bars = float(seed_weight_bars)
        d = seed.dim
        self._z = np.zeros((self._window_bars, d))  # ring buffer of z_e rows
        self._pv = np.zeros((self._window_bars, d))  # ring buffer of exp(logvar) rows
        self._has_pv = np.zeros(self._window_bars, dtype=bool)  # which rows have exp(logvar)
        self.reset()

    @property
    def window_bars(self) -> int:
        return self._window_bars

    @property
    def seed_weight_bars(self) -> float:
        return self._seed_weight_bars

    @property
    def bars(self) -> int:
        """How many bars the window holds now (at most ``window_bars``)."""
        return self._count

    def reset(self) -> None:
        """Empty the window; :meth:`current` is the seed again."""
        self._count = 0
        self._next = 0
        self._pushes_since_resum = 0
        d = self._seed.dim
        self._mean = np.zeros(d)  # window mean of z_e
        self._m2 = np.zeros(d)  # window sum of squared deviations from its mean
        self._sum_pv = np.zeros(d)
        self._has_pv[:] = False

    def push(self, z_e_row: np.ndarray, logvar_row: np.ndarray | None) -> None:
        """Add one bar (``(d,)`` each), dropping the oldest when the window is full.

        ``logvar_row`` None: the bar's posterior variance is not known (nothing allocates by
        it); :meth:`current` then has no posterior variance until that bar leaves the window.

        Raises ValueError for a wrong shape or non-finite values, leaving the window as it was.
        """
        d = self._seed.dim
        z = np.asarray(z_e_row, dtype=np.float64)
        if z.shape != (d,):
            raise ValueError(f"rows must be ({d},), got z_e {z.shape}")
        if not all_finite(z):
            raise ValueError("z_e_row must be finite (found NaN or inf)")
        pv = 0.0
        if logvar_row is not None:
            logvar = np.asarray(logvar_row, dtype=np.float64)
            if logvar.shape != (d,):
                raise ValueError(f"rows must be ({d},), got logvar {logvar.shape}")
            pv = exp_logvar(logvar)
        slot = self._next
        if self._count == self._window_bars:  # replace the oldest bar, k stays the same
            old = self._z[slot]
            new_mean = self._mean + (z - old) / self._count
            self._m2 += (z - old) * (z - new_mean + old - self._mean)
            self._mean = new_mean
            self._sum_pv += pv - self._pv[slot]
        else:  # grow the window by one bar
            self._count += 1
            delta = z - self._mean
            self._mean = self._mean + delta / self._count
            self._m2 += delta * (z - self._mean)
            self._sum_pv += pv
        self._z[slot] = z
        self._pv[slot] = pv
        self._has_pv[slot] = logvar_row is not None
        self._next = (slot + 1) % self._window_bars
        self._pushes_since_resum += 1
        if self._pushes_since_resum >= self._window_bars:
            self._resum()

    def current(self) -> LatentStats:
        """The statistics now, by the scheme in the class docstring."""
        k = self._count
        posterior_sum = self._sum_pv if self._has_pv[:k].all() else None  # ring's first k
        return _pooled(self._seed, self._seed_weight_bars, k, self._mean, self._m2,
                       posterior_sum)

    def _resum(self) -> None:
        held = self._z[: self._count]
        self._mean = held.mean(axis=0)
        self._m2 = ((held - self._mean) ** 2).sum(axis=0)
        self._sum_pv = self._pv[: self._count].sum(axis=0)
        self._pushes_since_resum = 0


class RunningStats:
    """Latent statistics over every bar pushed since the last reset, seeded as
    :class:`WindowStats` is: the live counterpart of a whole query's statistics, since live
    the query so far is all there is. With ``seed_weight_bars = 0`` :meth:`current` equals
    ``LatentStats.from_latents`` of the bars pushed. O(d) a bar, constant memory."""

    def __init__(self, seed: LatentStats, seed_weight_bars: float = 4.0) -> None:
        if not np.isfinite(seed_weight_bars) or seed_weight_bars < 0:
            raise ValueError(f"seed_weight_bars must be finite and >= 0, got {seed_weight_bars}")
        self._seed = seed
        self._seed_weight_bars = float(seed_weight_bars)
        self._moments: Moments | None = None

    def reset(self) -> None:
        self._moments = None

    def push(self, z_e_row: np.ndarray, logvar_row: np.ndarray | None) -> None:
        """Add one bar (``(d,)`` each; ``logvar_row`` None when nothing needs it). Raises
        ValueError for a wrong shape or non-finite values, keeping the bars so far."""
        d = self._seed.dim
        if np.shape(z_e_row) != (d,):
            raise ValueError(f"rows must be ({d},), got z_e {np.shape(z_e_row)}")
        bar = Moments.of(np.asarray(z_e_row, dtype=np.float64)[None],
                         None if logvar_row is None else np.asarray(logvar_row)[None])
        self._moments = bar if self._moments is None else self._moments + bar

    def current(self) -> LatentStats:
        m = self._moments
        if m is None:
            return self._seed
        return _pooled(self._seed, self._seed_weight_bars, m.count, m.mean, m.m2,
                       m.posterior_sum)


def _pooled(seed: LatentStats, seed_weight_bars: float, count: int, mean: np.ndarray,
            m2: np.ndarray, posterior_sum: np.ndarray | None) -> LatentStats:
    """The seed as ``seed_weight_bars`` pseudo-bars pooled with ``count`` bars of the given
    mean, sum of squared deviations and sum of ``exp(logvar)`` (None: not known), by the
    scheme of :class:`WindowStats`."""
    w, k = seed_weight_bars, count
    if k == 0:
        return seed
    total = w + k
    offset = mean - seed.mean
    pooled_m2 = w * seed.source_var + np.maximum(m2, 0.0) + (w * k / total) * offset**2
    posterior = None
    if posterior_sum is not None:
        # a sliding sum of exp(logvar) can round a hair below zero: clip
        posterior = np.maximum((w * seed.posterior_var + posterior_sum) / total, 0.0)
    # Fresh float64 arrays from validated pushes and a validated seed: finite, and the
    # variances >= 0 (m2 is clipped above), so they are wrapped without a second check.
    return LatentStats._trusted(mean=seed.mean + (k / total) * offset,
                                source_var=pooled_m2 / total, posterior_var=posterior)
