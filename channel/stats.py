"""Per-dimension statistics of the latent source that drive the channel.

The channel needs, per latent dimension, the source mean ``mu_e`` (what zero bits send) and a
variance to allocate bits by. The paper's equations use the *source* variance, the variance
of ``z_e`` across bars; the reference notebook used the *posterior* variance, the mean over
bars of ``exp(logvar)``. Both are kept; :meth:`LatentStats.variance_for` picks one.

Offline, :meth:`LatentStats.from_latents` takes the statistics over a whole query; live, they
are kept bar by bar (:mod:`~qbdi.channel.live_stats`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from qbdi.channel.checks import all_finite

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
            if not all_finite(value):
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
            posterior = exp_logvar(np.asarray(logvar, dtype=np.result_type(logvar, np.float32)))
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
        if not all_finite(z):
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
            posterior = exp_logvar(np.asarray(logvar)).sum(axis=0, dtype=np.float64)
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


def exp_logvar(logvar: np.ndarray) -> np.ndarray:
    if not all_finite(logvar):
        raise ValueError("logvar must be finite (found NaN or inf)")
    with np.errstate(over="ignore"):
        variance = np.exp(logvar)
    if not all_finite(variance):
        raise ValueError(f"exp(logvar) overflows: logvar up to {logvar.max()}")
    return variance
