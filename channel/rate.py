"""One call for the live loop and offline rendering: statistics and a budget in, ``z_d`` out."""

from __future__ import annotations

import numpy as np

from qbdi.channel.gaussian import FULL_RATE, transmit
from qbdi.channel.stats import AllocationVariance, LatentStats
from qbdi.channel.waterfill import allocate_bits


def rate_limit(
    z_e: np.ndarray,
    stats: LatentStats,
    budget_bits: int | None,
    rng: np.random.Generator,
    *,
    allocation: AllocationVariance = "source",
) -> np.ndarray:
    """Pass ``z_e`` (``(n, d)`` or ``(d,)``) through the channel at ``budget_bits`` per bar.

    The variance chosen by ``allocation`` is the ``sigma2_e`` of the paper throughout: it
    allocates the bits (:func:`allocate_bits`, once, the same bits for every row) and sets the
    channel noise (:func:`transmit`); the mean is ``stats.mean``. ``budget_bits`` of
    :data:`FULL_RATE` returns a float32 copy of ``z_e`` and draws nothing from ``rng``.
    """
    if budget_bits is FULL_RATE:
        return transmit(z_e, stats.mean, stats.source_var, FULL_RATE, rng)
    variance = stats.variance_for(allocation)
    bits = allocate_bits(variance, budget_bits)
    return transmit(z_e, stats.mean, variance, bits, rng)
