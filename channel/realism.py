"""The rate-distortion-*perception* test channel of a Gaussian source at perfect realism.

Per dimension, with ``R`` bits, ``a = 2^(-2R)`` and ``sigma_e = sqrt(sigma2_e)``::

    z_d = mu_e + sqrt(1 - a) (z_e - mu_e) + sqrt(a) sigma_e eps,   eps ~ N(0, 1)

For a source ``z_e ~ N(mu_e, sigma2_e)`` the output has the source's own distribution at every
rate (mean ``mu_e``, variance ``sigma2_e``: *perfect realism*, Blau & Michaeli 2019), its
correlation with the source is ``sqrt(1 - a)``, so ``I(z_e; z_d) = -1/2 log2(1 - rho^2) = R``
bits, as in the paper's channel (eq. 6-8, :mod:`qbdi.channel.gaussian`), at twice that
channel's distortion (``2 (1 - sqrt(1 - a)) sigma2_e`` against ``a sigma2_e``).
At ``R = 0`` it sends a fresh draw from ``N(mu_e, sigma2_e)`` (a free improvisation from the
statistics) where the paper's sends ``mu_e`` itself; at large ``R`` both send ``z_e``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal, get_args

import numpy as np

from qbdi.channel.gaussian import ChannelParams, checked_arrays, transmit

ChannelName = Literal["paper", "perception"]
CHANNELS: Final = get_args(ChannelName)


def transmit_realism(z_e: np.ndarray, params: ChannelParams,
                     rng: np.random.Generator) -> np.ndarray:
    """Draw ``z_d`` from the perfect-realism channel, float32 of the shape of ``z_e``.

    Arguments as :func:`qbdi.channel.gaussian.transmit`: ``z_e`` ``(n, d)`` or ``(d,)``;
    ``params``' mean, variance and bits broadcast to it; bits non-negative integers.

    Guarantees: where ``bits == 0`` the output is ``mu_e + sigma_e eps`` (independent of
    ``z_e``); as bits grow it tends to ``z_e`` (it differs by about
    ``2^-R sigma_e |eps| + 2^(-2R) |z_e - mu_e| / 2``); exactly ``z_e.size`` normals are drawn
    from ``rng`` whatever the bits, as the paper's channel draws them, so the same seed gives
    the same output and a dimension of a bar gets the same draw at every budget.

    Raises ValueError for negative or non-integer bits, a negative or non-finite
    ``sigma2_e``, or parameters that do not broadcast to ``z_e``'s shape.
    """
    z, mu, sigma2, bits = checked_arrays(z_e, params)
    a = np.exp2(-2.0 * bits)  # underflows to 0 for huge R: the output is then z_e exactly
    keep = np.sqrt(1.0 - a).astype(np.float32)
    noise_std = np.sqrt(a * sigma2).astype(np.float32)
    z_d = np.subtract(z, mu)  # mu + keep (z - mu) + noise_std eps, in place for long runs
    z_d *= keep
    z_d += mu
    eps = rng.standard_normal(z.shape, dtype=np.float32)
    eps *= noise_std
    z_d += eps
    return z_d


def transmitter(channel: ChannelName) -> Callable[[np.ndarray, ChannelParams,
                                                   np.random.Generator], np.ndarray]:
    """The channel's draw by its setting's name: ``paper`` (eq. 6-8, :func:`transmit`) or
    ``perception`` (:func:`transmit_realism`). Raises ValueError for another name."""
    if channel == "paper":
        return transmit
    if channel == "perception":
        return transmit_realism
    raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
