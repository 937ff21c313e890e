"""The bar VAE's inference in numpy, and the two model stages of the improviser: encode bars
to latents, decode latents to bars.

Start-up matters for a live instrument and for ``qbdi render`` (importing torch costs about a
second), so inference runs on float32 numpy arrays. ``tests/test_models.py`` holds it equal
to the torch model.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

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
        mu_w, mu_b = linear("enc_mu")
        lv_w, lv_b = linear("enc_logvar")
        self._enc_heads = (np.ascontiguousarray(np.hstack([mu_w, lv_w])), np.hstack([mu_b, lv_b]))
        self._dec_hidden = linear("dec_hidden")
        self._dec_out = linear("dec_out")

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> InferenceModel:
        return cls(checkpoint.config, checkpoint.weights)

    @property
    def latent_size(self) -> int:
        return self.config.latent_size

    def encode(self, flat_bars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, 2496)`` 0/1 values (bool or float) -> ``mu, logvar``, each ``(n, latent)``
        float32."""
        if len(flat_bars) > CHUNK_BARS:
            parts = [self.encode(flat_bars[i : i + CHUNK_BARS])
                     for i in range(0, len(flat_bars), CHUNK_BARS)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        weight, bias = self._enc_hidden
        # A bar has a few dozen of its 2496 features on, and features off in every bar add
        # exactly zero, so only the used rows of the first layer are read (5 MB otherwise).
        used = np.flatnonzero(np.any(flat_bars, axis=0))
        hidden = np.asarray(flat_bars[:, used], dtype=np.float32) @ weight[used]
        hidden += bias
        np.maximum(hidden, 0.0, out=hidden)
        heads = hidden @ self._enc_heads[0]
        heads += self._enc_heads[1]
        return heads[:, : self.latent_size], heads[:, self.latent_size :]

    def decode_hidden(self, z: np.ndarray) -> np.ndarray:
        """``(n, latent)`` -> the decoder's hidden layer, ``(n, hidden)`` float32."""
        weight, bias = self._dec_hidden
        hidden = np.asarray(z, dtype=np.float32) @ weight
        hidden += bias  # in place: a long run's activations are not allocated twice
        return np.maximum(hidden, 0.0, out=hidden)

    def decode_logits(self, z: np.ndarray) -> np.ndarray:
        """``(n, latent)`` -> logits ``(n, 2496)`` float32."""
        weight, bias = self._dec_out
        logits = self.decode_hidden(z) @ weight
        logits += bias  # in place (2496 floats a bar): a third less time for a long run
        return logits

    def decode_above(self, z: np.ndarray, threshold: float) -> np.ndarray:
        """``p > threshold`` for every feature, ``(n, 2496)`` bool. The bias moves to the
        threshold's side (``h W > logit(t) - b``): no pass over the logits is needed."""
        weight, bias = self._dec_out
        return self.decode_hidden(z) @ weight > _logit(threshold) - bias


class Latents(NamedTuple):
    """What the encoder stage gives: ``z_e`` and the ``logvar`` of each bar, ``(n, latent)``
    float32 each."""

    z_e: np.ndarray
    logvar: np.ndarray


def encode_bars(model: InferenceModel, flat_bars: np.ndarray, sample: bool,
                rng: np.random.Generator) -> Latents:
    """The encoder stage: ``z_e = mu``, or ``mu + exp(logvar / 2) eps`` when ``sample``
    (the paper), drawing ``n * latent`` normals from ``rng`` then and none otherwise."""
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
