"""The bar VAE's inference in numpy, and the two model stages of the improviser: encode bars
to latents, decode latents to bars.

Start-up matters for a live instrument and for ``qbdi render`` (importing torch costs about a
second), so inference runs on float32 numpy arrays. ``tests/test_models.py`` holds it equal
to the torch model.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qbdi.bars import ARTICULATED, BAR_SHAPE, BAR_SIZE, N_PITCHES, SOUNDING, STEPS_PER_BAR
from qbdi.models.checkpoint import Checkpoint
from qbdi.models.config import ModelConfig

CHUNK_BARS = 2048
"""Long runs of bars go through the layers this many at a time, which bounds the memory of
the activations (a 2496-wide float32 row a bar) however long the input."""


class InferenceModel:
    """Encoder and decoder of one checkpoint. Thread-compatible, not thread-safe: the
    server's loop thread alone calls it."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config

        def linear(name: str) -> tuple[np.ndarray, np.ndarray]:
            # (in, out), contiguous: the first layer's rows are gathered per bar
            weight = np.ascontiguousarray(weights[f"{name}.weight"].T, dtype=np.float32)
            return weight, np.ascontiguousarray(weights[f"{name}.bias"], dtype=np.float32)

        self._enc_hidden = linear("enc_hidden")
        self._enc_mu = linear("enc_mu")
        self._enc_logvar = linear("enc_logvar")  # read only when asked: 1 MB a bar saved
        self._dec_hidden = linear("dec_hidden")
        # The output layer in its two halves (the bar's cells: per step, every pitch's
        # sounding cell, then every pitch's articulated cell). The voices decoding needs
        # every sounding cell but only the articulated cells of notes held on, a few dozen,
        # so those are kept one row per cell: a live bar reads 2.5 MB of the layer, not 5.
        out_weight, out_bias = linear("dec_out")
        cells = out_weight.reshape(-1, STEPS_PER_BAR, 2, N_PITCHES)
        cell_bias = out_bias.reshape(STEPS_PER_BAR, 2, N_PITCHES)
        self._sounding = (np.ascontiguousarray(cells[:, :, SOUNDING].reshape(len(cells), -1)),
                          np.ascontiguousarray(cell_bias[:, SOUNDING].reshape(-1)))
        self._articulated_rows = (
            np.ascontiguousarray(cells[:, :, ARTICULATED].reshape(len(cells), -1).T),
            np.ascontiguousarray(cell_bias[:, ARTICULATED].reshape(-1)))

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> InferenceModel:
        return cls(checkpoint.config, checkpoint.weights)

    @property
    def latent_size(self) -> int:
        return self.config.latent_size

    def encode(self, flat_bars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, 2496)`` 0/1 values (bool or float) -> ``mu, logvar``, each ``(n, latent)``
        float32."""
        hidden = self._encoder_hidden(flat_bars)
        return _linear(hidden, *self._enc_mu), _linear(hidden, *self._enc_logvar)

    def encode_mu(self, flat_bars: np.ndarray) -> np.ndarray:
        """:meth:`encode`'s ``mu`` alone (what a step needs unless something uses the
        posterior variance)."""
        return _linear(self._encoder_hidden(flat_bars), *self._enc_mu)

    def _encoder_hidden(self, flat_bars: np.ndarray) -> np.ndarray:
        if len(flat_bars) > CHUNK_BARS:
            return np.concatenate([self._encoder_hidden(flat_bars[i : i + CHUNK_BARS])
                                   for i in range(0, len(flat_bars), CHUNK_BARS)])
        weight, bias = self._enc_hidden
        # A bar has a few dozen of its 2496 features on, and features off in every bar add
        # exactly zero, so only the used rows of the first layer are read (5 MB otherwise).
        used = flat_bars.any(axis=0).nonzero()[0]
        hidden = np.asarray(flat_bars[:, used], dtype=np.float32) @ weight[used]
        hidden += bias
        return np.maximum(hidden, 0.0, out=hidden)

    def decode_hidden(self, z: np.ndarray) -> np.ndarray:
        """``(n, latent)`` -> the decoder's hidden layer, ``(n, hidden)`` float32."""
        weight, bias = self._dec_hidden
        hidden = np.asarray(z, dtype=np.float32) @ weight
        hidden += bias  # in place: a long run's activations are not allocated twice
        return np.maximum(hidden, 0.0, out=hidden)

    def decode_logits(self, z: np.ndarray) -> np.ndarray:
        """``(n, latent)`` -> logits ``(n, 2496)`` float32."""
        hidden = self.decode_hidden(z)
        logits = np.empty((len(hidden), *BAR_SHAPE), dtype=np.float32)
        logits[:, :, SOUNDING] = self.sounding_logits(hidden)
        rows, bias = self._articulated_rows
        articulated = hidden @ rows.T
        articulated += bias  # in place: a long run's logits are not allocated twice
        logits[:, :, ARTICULATED] = articulated.reshape(len(hidden), STEPS_PER_BAR, N_PITCHES)
        return logits.reshape(len(hidden), BAR_SIZE)

    def sounding_logits(self, hidden: np.ndarray) -> np.ndarray:
        """The decoder's hidden layer ``(n, hidden)`` -> the sounding cells' logits,
        ``(n, 16, 78)`` float32."""
        weight, bias = self._sounding
        logits = hidden @ weight
        logits += bias
        return logits.reshape(len(hidden), STEPS_PER_BAR, N_PITCHES)

    def articulated_logits_at(self, hidden: np.ndarray, bar: np.ndarray, step: np.ndarray,
                              pitch: np.ndarray) -> np.ndarray:
        """The articulated cells' logits at ``(bar[i], step[i], pitch[i])`` alone, ``(m,)``
        float32, from the decoder's hidden layer ``(n, hidden)``: one row of the layer read
        per cell. (Each is the dot product of its row with its bar's hidden layer, summed
        the same way however many are asked: the live step and a batch agree.)"""
        rows, bias = self._articulated_rows
        cell = step * N_PITCHES + pitch
        out = np.empty(len(cell), dtype=np.float32)
        for start in range(0, len(cell), _CELLS_PER_PASS):
            part = slice(start, start + _CELLS_PER_PASS)
            out[part] = np.einsum("ij,ij->i", rows[cell[part]], hidden[bar[part]])
        out += bias[cell]
        return out

    def decode_above(self, z: np.ndarray, threshold: float) -> np.ndarray:
        """``p > threshold`` for every feature, ``(n, 2496)`` bool. The bias moves to the
        threshold's side (``h W > logit(t) - b``): no pass over the logits is needed."""
        hidden = self.decode_hidden(z)
        out = np.empty((len(hidden), *BAR_SHAPE), dtype=bool)
        limit = _logit(threshold)
        for cell, (weight, bias) in ((SOUNDING, self._sounding),
                                     (ARTICULATED, (self._articulated_rows[0].T,
                                                    self._articulated_rows[1]))):
            above = hidden @ weight > limit - bias
            out[:, :, cell] = above.reshape(len(hidden), STEPS_PER_BAR, N_PITCHES)
        return out.reshape(len(hidden), BAR_SIZE)


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    out = x @ weight
    out += bias
    return out


_CELLS_PER_PASS = 4096
"""Articulated cells gathered at a time (two 8 MB copies of their rows and hidden layers)."""


class Latents(NamedTuple):
    """What the encoder stage gives: ``z_e`` and the ``logvar`` of each bar, ``(n, latent)``
    float32 each (``logvar`` None where it was not asked for)."""

    z_e: np.ndarray
    logvar: np.ndarray | None


def encode_bars(model: InferenceModel, flat_bars: np.ndarray, sample: bool,
                rng: np.random.Generator, with_logvar: bool = True) -> Latents:
    """The encoder stage: ``z_e = mu``, or ``mu + exp(logvar / 2) eps`` when ``sample``
    (the paper), drawing ``n * latent`` normals from ``rng`` then and none otherwise.
    Without ``with_logvar`` (and not sampling) the posterior variance is not computed."""
    if not (sample or with_logvar):
        return Latents(model.encode_mu(flat_bars), None)
    return latents_from(*model.encode(flat_bars), sample, rng)


def latents_from(mu: np.ndarray, logvar: np.ndarray, sample: bool,
                 rng: np.random.Generator) -> Latents:
    """The encoder stage's latents from the encoder's ``mu`` and ``logvar``, as
    :func:`encode_bars` draws them."""
    if not sample:
        return Latents(mu, logvar)
    noise = rng.standard_normal(mu.shape, dtype=np.float32)
    return Latents(mu + np.exp(0.5 * logvar) * noise, logvar)


def decode_bars(model: InferenceModel, z_d: np.ndarray, threshold: float,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """The decoder stage: ``(n, latent)`` -> ``(n, 2496)`` bool, each feature on where its
    probability is above ``threshold``, or, given ``rng``, by a Bernoulli draw of that
    probability (``n * 2496`` uniform draws)."""
    out = []
    for i in range(0, max(len(z_d), 1), CHUNK_BARS):
        z = z_d[i : i + CHUNK_BARS]
        if rng is None:
            out.append(model.decode_above(z, threshold))
        else:
            out.append(logits_to_bars(model.decode_logits(z), rng=rng))
    return out[0] if len(out) == 1 else np.concatenate(out)


def _logit(threshold: float) -> np.float32:
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    return np.float32(np.log(threshold / (1.0 - threshold)))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))


def logits_to_bars(logits: np.ndarray, threshold: float = 0.5,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Binary features from logits: ``p > threshold``, or Bernoulli draws when ``rng`` is
    given. Returns ``(n, 2496)`` bool."""
    if rng is None:
        return logits > _logit(threshold)
    return rng.random(logits.shape, dtype=np.float32) < sigmoid(logits)
