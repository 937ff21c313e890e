"""The optimal test channel of a Gaussian source at a given rate (paper eq. 6-8, Berger 1971).

Per dimension, with ``R`` bits and ``a = 2^(-2R)``::

    mean     = z_e + a (mu_e - z_e)              # eq. 7
    variance = 2^(-4R) (2^(2R) - 1) sigma2_e      # eq. 8, equal to a (1 - a) sigma2_e
    z_d      = mean + sqrt(variance) * eps,  eps ~ N(0, 1)

so ``R = 0`` sends the source mean ``mu_e`` and many bits send ``z_e`` unchanged. The noise is
scaled by the standard deviation (the reference notebook scaled it by the variance, a bug).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from qbdi.channel.normals import standard_normals

FULL_RATE: Final = None
"""Pass as ``bits`` (or as a budget) for no rate limit: the channel returns ``z_e`` itself."""


def transmit(
    z_e: np.ndarray,
    mu_e: np.ndarray,
    sigma2_e: np.ndarray,
    bits: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``z_d`` from the test channel, float32 of the shape of ``z_e``.

    ``z_e`` is ``(n, d)`` or ``(d,)``; ``mu_e``, ``sigma2_e`` and ``bits`` are ``(d,)`` or of
    ``z_e``'s shape (any shape that broadcasts to it). ``bits`` are non-negative integers,
    or :data:`FULL_RATE` for a float32 copy of ``z_e`` that draws nothing from ``rng``.

    Guarantees: where ``bits == 0`` the output is ``mu_e`` exactly (as float32); as bits
    grow it tends to ``z_e`` (it differs by about ``2^-R (sqrt(sigma2_e) + |mu_e - z_e|)``);
    exactly ``z_e.size`` normals are drawn from ``rng`` (:func:`standard_normals`) whatever
    the bits, so the same seed gives the same output, and at two budgets a dimension of a
    bar gets the same draw.

    Raises ValueError for negative or non-integer bits, a negative or non-finite
    ``sigma2_e``, or shapes that do not broadcast to ``z_e``'s.
    """
    z = np.asarray(z_e, dtype=np.float32)
    if bits is FULL_RATE:
        return z.copy()
    b = _checked_bits(bits)
    sigma2 = np.asarray(sigma2_e, dtype=np.float64)
    if not np.all(np.isfinite(sigma2)) or np.any(sigma2 < 0):
        raise ValueError("sigma2_e must be finite and >= 0")
    mu = np.asarray(mu_e, dtype=np.float32)
    shape = np.broadcast_shapes(z.shape, mu.shape, sigma2.shape, b.shape)
    if shape != z.shape:
        raise ValueError(
            f"mu_e {mu.shape}, sigma2_e {sigma2.shape} and bits {b.shape} "
            f"must broadcast to z_e's shape {z.shape}"
        )
    shrink64 = np.exp2(-2.0 * b)  # a = 2^(-2R); underflows to 0 for huge R, never NaN
    std = np.sqrt(shrink64 * (1.0 - shrink64) * sigma2).astype(np.float32)
    shrink = shrink64.astype(np.float32)
    # (1 - a) z + a mu rather than z + a (mu - z): exactly mu at a = 1, exactly z at a = 0.
    # In place, in that order: a long rendering's (n, d) temporaries cost more than the
    # arithmetic, and the result is bit-identical to ``(1 - a) z + a mu + std eps``.
    eps = standard_normals(rng, z.shape)
    eps *= std
    z_d = (1.0 - shrink) * z
    z_d += shrink * mu
    z_d += eps
    return z_d


def _checked_bits(bits: np.ndarray) -> np.ndarray:
    b = np.asarray(bits)
    if b.dtype == bool or not np.issubdtype(b.dtype, np.integer):
        raise ValueError(f"bits must be an integer array, got dtype {b.dtype}")
    if np.any(b < 0):
        raise ValueError(f"bits must be >= 0, found {b.min()}")
    return b
