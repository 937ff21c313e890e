"""The bar VAE's inference in numpy: encode and decode without importing torch.

Start-up matters for a live instrument and for ``qbdi render`` (importing torch costs
about a second), and per-op overhead matters on the per-bar hot path, so inference runs on
float32 numpy arrays. ``tests/test_models.py`` holds it equal to the torch model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qbdi.models.checkpoint import Checkpoint
from qbdi.models.config import ModelConfig

if TYPE_CHECKING:
    import scipy.sparse

# Large batches run in blocks of this many bars: the intermediate activations then stay in
# cache, which measured 2.3x the throughput of one 16384-bar product on this 2-core CPU.
CHUNK_BARS = 2048

# From this many bars the encoder's first layer multiplies a sparse matrix: a bar has a few
# dozen of its 2496 features on, so that is 5x faster than the dense product of the used
# features. Below it the dense product wins, counting scipy.sparse's first import (0.1 s):
# a 3-minute file never pays for it.
SPARSE_MIN_BARS = 512


class InferenceModel:
    """Encoder and decoder of one checkpoint. Thread-compatible, not thread-safe: the
    server's model thread alone calls it."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config

        def linear(name: str) -> tuple[np.ndarray, np.ndarray]:
            # (in, out) contiguous: rows of the first layer are gathered for sparse bars
            weight = np.ascontiguousarray(weights[f"{name}.weight"].T, dtype=np.float32)
            return weight, np.ascontiguousarray(weights[f"{name}.bias"], dtype=np.float32)

        self._enc_hidden = linear("enc_hidden")
        # mu and logvar share one matmul: (hidden, 2 * latent)
        mu_w, mu_b = linear("enc_mu")
        lv_w, lv_b = linear("enc_logvar")
        self._enc_heads = (np.ascontiguousarray(np.hstack([mu_w, lv_w])), np.hstack([mu_b, lv_b]))
        # mu's own contiguous copy (1 MB): a strided view of the joint heads costs the live
        # bar 5 us more
        self._mu_head = (mu_w, mu_b)
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
        heads = self._encoder_hidden(flat_bars) @ self._enc_heads[0] + self._enc_heads[1]
        latent = self.latent_size
        return heads[:, :latent], heads[:, latent:]

    def encode_mu(self, flat_bars: np.ndarray) -> np.ndarray:
        """``mu`` alone, ``(n, latent)`` float32, equal to ``encode(flat_bars)[0]``: half the
        head's work, for when nothing needs ``logvar``."""
        weight, bias = self._mu_head
        return self._encoder_hidden(flat_bars) @ weight + bias

    def _encoder_hidden(self, flat_bars: np.ndarray) -> np.ndarray:
        weight, bias = self._enc_hidden
        if len(flat_bars) >= SPARSE_MIN_BARS:
            hidden = _sparse_rows(flat_bars) @ weight
            hidden += bias
        else:
            # Features off in every bar contribute exactly zero, so they are left out of the
            # product (a bar uses a few dozen of its 2496 features).
            used = np.flatnonzero(np.any(flat_bars, axis=0))
            hidden = np.asarray(flat_bars[:, used], dtype=np.float32) @ weight[used] + bias
        np.maximum(hidden, 0.0, out=hidden)
        return hidden

    def decode_logits(self, z: np.ndarray) -> np.ndarray:
        """``(n, latent)`` -> logits ``(n, 2496)`` float32."""
        if len(z) > CHUNK_BARS:
            return np.concatenate([self.decode_logits(z[i : i + CHUNK_BARS])
                                   for i in range(0, len(z), CHUNK_BARS)])
        weight, bias = self._dec_hidden
        hidden = np.asarray(z, dtype=np.float32) @ weight + bias
        np.maximum(hidden, 0.0, out=hidden)
        weight, bias = self._dec_out
        return hidden @ weight + bias


class FoldedDecoder:
    """The decoder for latents whose ``fixed`` dimensions hold the same ``values`` in every
    bar (the channel sends exactly ``mu_e`` on a dimension given no bits). Their share of the
    first layer is added to its bias once, so each bar multiplies only its free dimensions:
    at 256 bits about half the first layer's work. Equal to the full decoder up to float
    rounding order."""

    def __init__(self, model: InferenceModel, fixed: np.ndarray, values: np.ndarray) -> None:
        weight, bias = model._dec_hidden
        fixed = np.asarray(fixed, dtype=bool)
        self.free_dims = np.flatnonzero(~fixed)
        held = np.asarray(values, dtype=np.float32)[fixed]
        self._hidden = (np.ascontiguousarray(weight[self.free_dims]),
                        bias + held @ weight[fixed])
        self._out = model._dec_out
        self._cutoff: tuple[float, np.ndarray] | None = None  # (threshold, logit(t) - bias)

    def logits(self, z_free: np.ndarray) -> np.ndarray:
        """``(n, free)`` latents (the free dimensions, in order) -> ``(n, 2496)`` logits."""
        weight, bias = self._out
        return self._hidden_of(z_free) @ weight + bias

    def decide(self, z_free: np.ndarray, threshold: float, out: np.ndarray) -> np.ndarray:
        """``p > threshold`` for ``(n, free)`` latents into ``out``, ``(n, 2496)`` bool.

        The output bias moves to the threshold side (``h W > logit(t) - b``), which saves a
        pass over the logits; a cell decides differently only within float rounding of its
        threshold."""
        if self._cutoff is None or self._cutoff[0] != threshold:
            self._cutoff = (threshold, _logit(threshold) - self._out[1])
        return np.greater(self._hidden_of(z_free) @ self._out[0], self._cutoff[1], out=out)

    def _hidden_of(self, z_free: np.ndarray) -> np.ndarray:
        weight, bias = self._hidden
        hidden = np.asarray(z_free, dtype=np.float32) @ weight
        hidden += bias
        return np.maximum(hidden, 0.0, out=hidden)


def _logit(threshold: float) -> np.float32:
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    return np.float32(np.log(threshold / (1.0 - threshold)))


def _sparse_rows(rows: np.ndarray) -> scipy.sparse.csr_matrix:
    """``(n, features)`` as a float32 CSR matrix, built from the non-zero positions alone."""
    import scipy.sparse  # here: the live server never needs it, and it costs ~0.1 s to load

    rows = np.ascontiguousarray(rows)
    n, width = rows.shape
    flat_index = np.flatnonzero(rows)
    starts = np.searchsorted(flat_index, np.arange(n + 1) * width)
    values = rows.reshape(-1)[flat_index].astype(np.float32)
    return scipy.sparse.csr_matrix((values, flat_index % width, starts), shape=(n, width))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))


def logits_to_bars(
    logits: np.ndarray,
    threshold: float = 0.5,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Binary features from logits: ``p > threshold``, or Bernoulli draws when ``rng`` is given.

    Returns ``(n, 2496)`` bool. Thresholding compares logits with ``logit(threshold)`` so no
    sigmoid is computed on the hot path.
    """
    if rng is None:
        return logits > _logit(threshold)
    return rng.random(logits.shape, dtype=np.float32) < sigmoid(logits)
