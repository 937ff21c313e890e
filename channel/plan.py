"""The channel's parameters for one budget: the statistics' mean and variance, and the bits
water-filling gives each dimension."""

from __future__ import annotations

import numpy as np

from qbdi.channel.gaussian import ChannelParams
from qbdi.channel.stats import AllocationVariance, LatentStats
from qbdi.channel.waterfill import allocate_bits


def channel_params(stats: LatentStats, budget_bits: int, allocation: AllocationVariance,
                   per_bar_z_e: np.ndarray | None = None) -> ChannelParams:
    """Parameters for ``budget_bits`` a bar.

    The bits go by the variance ``allocation`` names (the paper's source variance, or the
    notebook's posterior variance), once for every bar; with ``per_bar_z_e`` (``(n, d)``)
    each bar gets its own allocation, by how far its ``z_e`` is from the mean (the paper's
    open idea of re-allocating per bar). Either way ``sigma2_e`` stays the chosen variance.
    """
    variance = stats.variance_for(allocation)
    if per_bar_z_e is None:
        bits = allocate_bits(variance, budget_bits)
    else:
        bits = allocate_bits(np.square(per_bar_z_e - stats.mean), budget_bits)
    return ChannelParams(stats.mean, variance, bits)
