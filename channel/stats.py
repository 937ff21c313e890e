"""Per-dimension statistics of the latent source that drive the channel.

The channel needs, per latent dimension, the source mean ``mu_e`` (what zero bits send) and a
variance to allocate bits by. The paper's equations use the *source* variance, the variance
of ``z_e`` across bars; the reference notebook used the *posterior* variance, the mean over
bars of ``exp(logvar)``. Both are kept; :meth:`LatentStats.variance_for` picks one.

Offline, :meth:`LatentStats.from_latents` takes the statistics over a whole query. Live,
:class:`WindowStats` keeps them over the last ``window_bars`` bars, seeded from the corpus.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

AllocationVariance = Literal["source", "posterior"]
"""Which variance allocates bits: ``"source"`` (the paper, the default) or ``"posterior"``
(mean ``exp(logvar)``, the reference notebook's choice, kept to reproduce its outputs)."""

ALLOCATION_VARIANCES: tuple[str, ...] = get_args(AllocationVariance)


@dataclass(frozen=True, eq=False)
class LatentStats:
    """Mean, source variance and posterior variance per latent dimension, each ``(d,)``.

    ``posterior_var`` may be None: not computed (statistics of ``mu`` alone, where nothing
    allocates by it); :meth:`variance_for` then refuses ``"posterior"``.

    Guarantees: the arrays are float64, finite, of one shape ``(d,)``, read-only copies of
    what was passed, and the variances are >= 0.
    """

    mean: np.ndarray
    source_var: np.ndarray
    posterior_var: np.ndarray | None

    def __post_init__(self) -> None:
        arrays = {}
        for name in ("mean", "source_var", "posterior_var"):
            if name == "posterior_var" and self.posterior_var is None:
                continue
            value = np.array(getattr(self, name), dtype=np.float64)  # a copy
            if value.ndim != 1:
                raise ValueError(f"{name} must be (d,), got shape {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be finite (found NaN or inf)")
            value.setflags(write=False)
            arrays[name] = value
        if len({value.shape for value in arrays.values()}) != 1:
            shapes = {name: value.shape for name, value in arrays.items()}
            raise ValueError(f"statistics must share one shape (d,), got {shapes}")
        for name in ("source_var", "posterior_var"):
            if name in arrays and np.any(arrays[name] < 0):
                raise ValueError(f"{name} must be >= 0, found {arrays[name].min()}")
        for name, value in arrays.items():
            object.__setattr__(self, name, value)

    @classmethod
    def _trusted(cls, mean: np.ndarray, source_var: np.ndarray,
                 posterior_var: np.ndarray | None) -> LatentStats:
        """Wrap float64 ``(d,)`` arrays this module computed from validated inputs, without
        re-validating them: the live window builds one every bar. The arrays are taken over
        (not copied) and made read-only; the caller must not keep writable references."""
        stats = object.__new__(cls)
        for name, value in (("mean", mean), ("source_var", source_var),
                            ("posterior_var", posterior_var)):
            if value is not None:
                value.setflags(write=False)
            object.__setattr__(stats, name, value)
        return stats

    @property
    def dim(self) -> int:
        """The latent size ``d``."""
        return int(self.mean.shape[0])

    @classmethod
    def prior(cls, dim: int) -> LatentStats:
        """The VAE prior N(0, I): mean 0, both variances 1."""
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        return cls(np.zeros(dim), np.ones(dim), np.ones(dim))

    @classmethod
    def from_latents(
        cls,
        z_e: np.ndarray,
        *,
        logvar: np.ndarray | None = None,
        posterior_var: np.ndarray | None = None,
    ) -> LatentStats:
        """Statistics over a set of bars: ``z_e`` is ``(n_bars, d)``, n_bars >= 1.

        ``mean`` and ``source_var`` are the mean and the population variance (ddof 0) of
        ``z_e`` across bars; ``posterior_var`` is the mean across bars of ``exp(logvar)`` or of
        ``posterior_var``, both ``(n_bars, d)``: give at most one of them (with neither,
        ``posterior_var`` is None).
        """
        # Inputs keep their float dtype (a long query's float32 latents are not copied to
        # float64); the reductions accumulate in float64.
        z = np.asarray(z_e, dtype=np.result_type(z_e, np.float32))
        if z.ndim != 2 or z.shape[0] < 1:
            raise ValueError(f"z_e must be (n_bars, d) with n_bars >= 1, got shape {z.shape}")
        if logvar is not None and posterior_var is not None:
            raise ValueError("give at most one of logvar and posterior_var")
        if logvar is not None:
            posterior = _exp_logvar(np.asarray(logvar, dtype=np.result_type(logvar, np.float32)))
        elif posterior_var is not None:
            posterior = np.asarray(posterior_var, dtype=np.float64)
        else:
            return cls(z.mean(axis=0, dtype=np.float64), z.var(axis=0, dtype=np.float64), None)
        if posterior.shape != z.shape:
            raise ValueError(
                f"posterior variance must have z_e's shape {z.shape}, got {posterior.shape}"
            )
        return cls(z.mean(axis=0, dtype=np.float64), z.var(axis=0, dtype=np.float64),
                   posterior.mean(axis=0, dtype=np.float64))

    def variance_for(self, allocation: AllocationVariance) -> np.ndarray:
        """The variance that allocates bits: ``source_var`` or ``posterior_var``."""
        if allocation == "source":
            return self.source_var
        if allocation == "posterior":
            if self.posterior_var is None:
                raise ValueError("these statistics have no posterior variance (mu alone)")
            return self.posterior_var
        raise ValueError(f"allocation must be one of {ALLOCATION_VARIANCES}, got {allocation!r}")


@dataclass(frozen=True, eq=False)
class Moments:
    """Running moments of a set of bars, per latent dimension: the bar count, the mean and
    the sum of squared deviations from it (``m2``) of ``z_e``, and the sum of
    ``exp(logvar)`` (None when not computed).

    Moments of blocks of bars add up (the pairwise update of Chan, Golub and LeVeque 1979,
    in float64) to the moments of all their bars, so the blocks of a long query can be
    summarised on different cores; :meth:`stats` equals :meth:`LatentStats.from_latents` of
    the bars up to float rounding.
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray
    posterior_sum: np.ndarray | None

    @classmethod
    def of(cls, z_e: np.ndarray, logvar: np.ndarray | None = None) -> Moments:
        """The moments of ``(n_bars, d)`` rows, n_bars >= 1 (``logvar`` of the same shape)."""
        z = np.asarray(z_e, dtype=np.result_type(z_e, np.float32))
        if z.ndim != 2 or z.shape[0] < 1:
            raise ValueError(f"z_e must be (n_bars, d) with n_bars >= 1, got shape {z.shape}")
        if not np.all(np.isfinite(z)):
            raise ValueError("z_e must be finite (found NaN or inf)")
        mean = z.mean(axis=0, dtype=np.float64)
        # Deviations in z's own precision (a float64 temporary of a long block costs 10x
        # more, out of cache), squared and summed in float64; taken from the mean rounded to
        # that precision, and corrected for the rounding by the parallel-axis theorem.
        centre = mean.astype(z.dtype)
        deviations = z - centre
        deviations *= deviations
        m2 = deviations.sum(axis=0, dtype=np.float64)
        m2 -= len(z) * np.square(centre - mean)
        posterior = None
        if logvar is not None:
            if np.shape(logvar) != z.shape:
                raise ValueError(f"logvar must have z_e's shape {z.shape}, "
                                 f"got {np.shape(logvar)}")
            posterior = _exp_logvar(np.asarray(logvar)).sum(axis=0, dtype=np.float64)
        return cls(len(z), mean, m2, posterior)

    def __add__(self, other: Moments) -> Moments:
        count = self.count + other.count
        delta = other.mean - self.mean
        posterior = (None if self.posterior_sum is None or other.posterior_sum is None
                     else self.posterior_sum + other.posterior_sum)
        return Moments(count, self.mean + delta * (other.count / count),
                       self.m2 + other.m2 + np.square(delta) * (self.count * other.count / count),
                       posterior)

    def stats(self) -> LatentStats:
        """Mean, population variance and mean posterior variance over the bars."""
        posterior = None if self.posterior_sum is None else self.posterior_sum / self.count
        return LatentStats(self.mean, np.maximum(self.m2, 0.0) / self.count, posterior)


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
        if not np.all(np.isfinite(z)):
            raise ValueError("z_e_row must be finite (found NaN or inf)")
        pv = 0.0
        if logvar_row is not None:
            logvar = np.asarray(logvar_row, dtype=np.float64)
            if logvar.shape != (d,):
                raise ValueError(f"rows must be ({d},), got logvar {logvar.shape}")
            pv = _exp_logvar(logvar)
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


def _exp_logvar(logvar: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(logvar)):
        raise ValueError("logvar must be finite (found NaN or inf)")
    with np.errstate(over="ignore"):
        variance = np.exp(logvar)
    if not np.all(np.isfinite(variance)):
        raise ValueError(f"exp(logvar) overflows: logvar up to {logvar.max()}")
    return variance


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
