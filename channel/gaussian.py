"""The optimal test channel of a Gaussian source at a given rate (paper eq. 6-8, Berger 1971).

Per dimension, with ``R`` bits and ``a = 2^(-2R)``::

    mean     = z_e + a (mu_e - z_e)              # eq. 7
    variance = 2^(-4R) (2^(2R) - 1) sigma2_e      # eq. 8, equal to a (1 - a) sigma2_e
    z_d      = mean + sqrt(variance) * eps,  eps ~ N(0, 1)

so ``R = 0`` sends the source mean ``mu_e`` and many bits send ``z_e`` unchanged. The noise is
scaled by the standard deviation (the reference notebook scaled it by the variance, a bug).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qbdi.channel.checks import finite_non_negative, non_negative_integers


@dataclass(frozen=True, slots=True)
class ChannelParams:
    """What the channel needs besides ``z_e``: per latent dimension the source mean
    ``mu_e`` and variance ``sigma2_e``, each ``(d,)``, and the bits, ``(d,)`` for every bar
    alike or ``(n, d)`` one row per bar (non-negative integers)."""

    mean: np.ndarray
    variance: np.ndarray
    bits: np.ndarray

    @property
    def dims_with_bits(self) -> np.ndarray:
        """Dimensions given at least one bit: a number, or one per row of ``bits``."""
        return np.count_nonzero(self.bits, axis=-1)


def transmit(z_e: np.ndarray, params: ChannelParams, rng: np.random.Generator) -> np.ndarray:
    """Draw ``z_d`` from the test channel, float32 of the shape of ``z_e`` (``(n, d)`` or
    ``(d,)``; the parameters must broadcast to it).

    Guarantees: where ``bits == 0`` the output is ``mu_e`` exactly (as float32); as bits
    grow it tends to ``z_e`` (it differs by about ``2^-R (sqrt(sigma2_e) + |mu_e - z_e|)``);
    exactly ``z_e.size`` normals are drawn from ``rng`` whatever the bits, so the same seed
    gives the same output, and at two budgets a dimension of a bar gets the same draw.

    Raises ValueError for negative or non-integer bits, a negative or non-finite
    ``sigma2_e``, or parameters that do not broadcast to ``z_e``'s shape.
    """
    z, mu, sigma2, bits = checked_arrays(z_e, params)
    shrink64 = np.exp2(-2.0 * bits)  # a = 2^(-2R); underflows to 0 for huge R, never NaN
    std = np.sqrt(shrink64 * (1.0 - shrink64) * sigma2).astype(np.float32)
    shrink = shrink64.astype(np.float32)
    eps = rng.standard_normal(z.shape, dtype=np.float32)
    # (1 - a) z + a mu rather than z + a (mu - z): exactly mu at a = 1, exactly z at a = 0.
    # In place (for long runs), in the order of (1 - a) z + a mu + std eps.
    z_d = np.multiply(1.0 - shrink, z)
    z_d += shrink * mu
    eps *= std
    z_d += eps
    return z_d


def checked_arrays(z_e: np.ndarray, params: ChannelParams
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``z_e``, the mean (float32), the variance (float64) and the bits of ``params``, checked
    as every test channel needs them: integer bits >= 0, a finite variance >= 0, all
    broadcasting to ``z_e``'s shape. Raises ValueError otherwise."""
    z = np.asarray(z_e, dtype=np.float32)
    bits = _checked_bits(params.bits)
    sigma2 = np.asarray(params.variance, dtype=np.float64)
    if not finite_non_negative(sigma2):
        raise ValueError("sigma2_e must be finite and >= 0")
    mu = np.asarray(params.mean, dtype=np.float32)
    if not all(_broadcasts_to(a.shape, z.shape) for a in (mu, sigma2, bits)):
        raise ValueError(f"mu_e {mu.shape}, sigma2_e {sigma2.shape} and bits {bits.shape} "
                         f"must broadcast to z_e's shape {z.shape}")
    return z, mu, sigma2, bits


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` unchanged: numpy's rule in
    Python, because ``np.broadcast_shapes`` builds arrays to answer and every live bar asks."""
    if len(shape) > len(target):
        return False
    trailing = target[len(target) - len(shape):]
    return all(size in (1, full) for size, full in zip(shape, trailing, strict=True))


def _checked_bits(bits: np.ndarray) -> np.ndarray:
    b = np.asarray(bits)
    if not non_negative_integers(b):
        if b.dtype.kind not in "iu":
            raise ValueError(f"bits must be an integer array, got dtype {b.dtype}")
        raise ValueError(f"bits must be >= 0, found {b.min()}")
    return b
