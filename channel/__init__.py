"""The rate-limited latent channel of the paper's section 2.1; pure numpy, no I/O.

``allocate_bits`` splits a bit budget over latent dimensions by reverse water-filling,
``transmit`` draws the decoder's latent from the optimal Gaussian test channel at those
rates, ``LatentStats``/``WindowStats`` hold the per-dimension source statistics (``Moments``
sums them over blocks of bars), and
``rate_limit`` chains them for one budget.
"""

from qbdi.channel.gaussian import FULL_RATE, transmit
from qbdi.channel.rate import rate_limit
from qbdi.channel.stats import (
    ALLOCATION_VARIANCES,
    AllocationVariance,
    LatentStats,
    Moments,
    WindowStats,
)
from qbdi.channel.waterfill import allocate_bits

__all__ = [
    "ALLOCATION_VARIANCES",
    "FULL_RATE",
    "AllocationVariance",
    "LatentStats",
    "Moments",
    "WindowStats",
    "allocate_bits",
    "rate_limit",
    "transmit",
]
