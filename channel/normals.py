"""Standard normal draws for the channel, 2.5x faster than ``Generator.standard_normal``.

numpy's float32 ziggurat takes about 9 ns a draw here, and the channel draws one per latent
dimension per bar: at 500 dimensions that was a tenth of an offline rendering's time. The
Box-Muller transform turns pairs of uniform draws into pairs of independent standard normals
with vectorised ``log``, ``sqrt``, ``cos`` and ``sin`` (3.5 ns a draw).

Below :data:`BOX_MULLER_MIN_DRAWS` the transform's eight numpy calls cost more than they
save (one bar's 500 draws: 10 us against the ziggurat's 5), so small requests, such as the
live server's one bar, take the ziggurat.

Guarantees: the draws are N(0, 1) in distribution up to float32 resolution; through
Box-Muller ``|x|`` never exceeds ``sqrt(-2 ln 2^-24) = 5.77`` (the uniform draws have 24
bits; the normal tail beyond it has probability 8e-9) and ``n`` draws consume
``2 * ceil(n / 2)`` float32 uniforms from ``rng``. The method depends on the number of draws
alone, so the same generator state and shape give the same draws.
"""

from __future__ import annotations

import math

import numpy as np

TWO_PI = np.float32(2.0 * np.pi)
BOX_MULLER_MIN_DRAWS = 4096


def standard_normals(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    """Independent N(0, 1) float32 draws of ``shape`` from ``rng``."""
    size = math.prod(shape) if isinstance(shape, tuple) else int(shape)  # np.prod: 5 us
    if size < BOX_MULLER_MIN_DRAWS:
        return rng.standard_normal(shape, dtype=np.float32)
    pairs = (size + 1) // 2
    uniform = rng.random(2 * pairs, dtype=np.float32)  # [0, 1)
    radius = np.log1p(-uniform[:pairs])  # ln(1 - u), u < 1: finite, <= 0
    radius *= -2.0
    np.sqrt(radius, out=radius)
    angle = uniform[pairs:]
    angle *= TWO_PI  # in place: the uniforms are not needed again
    out = np.empty(2 * pairs, dtype=np.float32)
    np.multiply(radius, np.cos(angle), out=out[:pairs])
    np.multiply(radius, np.sin(angle), out=out[pairs:])
    return out[:size].reshape(shape)
