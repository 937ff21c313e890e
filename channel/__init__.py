"""The rate-limited latent channel of the paper's section 2.1; pure numpy, no I/O.

``LatentStats``/``WindowStats``/``RunningStats`` hold the per-dimension source statistics
(``Moments`` sums them over bars), ``channel_params`` splits a bit budget over the latent
dimensions by reverse water-filling (``allocate_bits``), and ``transmit`` draws the
decoder's latent from the optimal Gaussian test channel at those rates (``paper``), or
``transmit_realism`` from the rate-distortion-perception channel at perfect realism
(``perception``); ``transmitter`` picks one by name.
"""

from qbdi.channel.gaussian import ChannelParams, transmit
from qbdi.channel.live_stats import RunningStats, WindowStats
from qbdi.channel.plan import channel_params
from qbdi.channel.realism import CHANNELS, ChannelName, transmit_realism, transmitter
from qbdi.channel.stats import ALLOCATION_VARIANCES, AllocationVariance, LatentStats, Moments
from qbdi.channel.waterfill import allocate_bits

__all__ = [
    "ALLOCATION_VARIANCES",
    "CHANNELS",
    "AllocationVariance",
    "ChannelName",
    "ChannelParams",
    "LatentStats",
    "Moments",
    "RunningStats",
    "WindowStats",
    "allocate_bits",
    "channel_params",
    "transmit",
    "transmit_realism",
    "transmitter",
]
