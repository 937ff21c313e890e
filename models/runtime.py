"""The bar VAE's inference in numpy, and the two model stages of the improviser: encode bars
to latents, decode latents to bars.

Start-up matters for a live instrument and for ``qbdi render`` (importing torch costs about a
second), so inference runs on float32 numpy arrays. ``tests/test_models.py`` holds it equal
to the torch model.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qbdi.bars import (
    ARTICULATED,
    BAR_SHAPE,
    BAR_SIZE,
    LOWEST_PITCH,
    N_PITCHES,
    SOUNDING,
    STEPS_PER_BAR,
)
from qbdi.models.checkpoint import Checkpoint
from qbdi.models.config import ModelConfig

CHUNK_BARS = 2048
"""Long runs of bars go through the layers this many at a time, which bounds the memory of
the activations (a 2496-wide float32 row a bar) however long the input."""

NEVER_LOGIT = np.float32(-1e4)
"""The logit of every cell outside a model's pitch range: its probability is exactly 0 in
float32, and it is finite, so that no sum of scores made with it is NaN."""


class InferenceModel:
    """Encoder and decoder of one checkpoint. Thread-compatible, not thread-safe: the
    server's loop thread alone calls it.

    ``pitch_range`` (lowest, highest MIDI pitch; None: the codec's whole range) is where the
    decoder may sound: the pitches its corpus sounds (:attr:`AnswerConfig.pitch_range`).
    Outside it every cell's logit is :data:`NEVER_LOGIT`: a pitch its corpus never sounds
    is outside its style's register (the decoder met such pitches only in the transposed
    copies of its bars that training adds), and the live bar then reads only the range's
    part of the output layer (the chorales': 55 of 78 pitches)."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray],
                 pitch_range: tuple[int, int] | None = None) -> None:
        self.config = config
        if pitch_range is not None and not (
                LOWEST_PITCH <= pitch_range[0] <= pitch_range[1] < LOWEST_PITCH + N_PITCHES):
            raise ValueError(f"pitch_range must be (lowest, highest) MIDI pitches within "
                             f"the codec's {LOWEST_PITCH}-{LOWEST_PITCH + N_PITCHES - 1}, "
                             f"got {pitch_range}")
        self.pitch_range = pitch_range
        self._pitches = (slice(0, N_PITCHES) if pitch_range is None else
                         slice(pitch_range[0] - LOWEST_PITCH, pitch_range[1] - LOWEST_PITCH + 1))

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
        # every sounding cell in the range but only the articulated cells of notes held on,
        # a few dozen, so those are kept one row per cell.
        out_weight, out_bias = linear("dec_out")
        cells = out_weight.reshape(-1, STEPS_PER_BAR, 2, N_PITCHES)
        cell_bias = out_bias.reshape(STEPS_PER_BAR, 2, N_PITCHES)
        pitches = self._pitches
        self._sounding = (
            np.ascontiguousarray(cells[:, :, SOUNDING, pitches].reshape(len(cells), -1)),
            np.ascontiguousarray(cell_bias[:, SOUNDING, pitches].reshape(-1)))
        self._articulated_rows = (
            np.ascontiguousarray(cells[:, :, ARTICULATED].reshape(len(cells), -1).T),
            np.ascontiguousarray(cell_bias[:, ARTICULATED].reshape(-1)))

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> InferenceModel:
        return cls(checkpoint.config, checkpoint.weights, checkpoint.answer.pitch_range)

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
        self._fill_outside_range(logits[:, :, ARTICULATED], NEVER_LOGIT)
        return logits.reshape(len(hidden), BAR_SIZE)

    def sounding_logits(self, hidden: np.ndarray) -> np.ndarray:
        """The decoder's hidden layer ``(n, hidden)`` -> the sounding cells' logits,
        ``(n, 16, 78)`` float32 (:data:`NEVER_LOGIT` outside the pitch range)."""
        weight, bias = self._sounding
        in_range = hidden @ weight
        in_range += bias
        logits = np.full((len(hidden), STEPS_PER_BAR, N_PITCHES), NEVER_LOGIT, np.float32)
        logits[:, :, self._pitches] = in_range.reshape(len(hidden), STEPS_PER_BAR, -1)
        return logits

    def _fill_outside_range(self, cells: np.ndarray, value: float | bool) -> None:
        """In place: ``value`` in the pitch columns of ``cells`` (``(..., 78)``) outside the
        pitch range."""
        cells[..., : self._pitches.start] = value
        cells[..., self._pitches.stop :] = value

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
        """``p > threshold`` for every feature, ``(n, 2496)`` bool (False outside the pitch
        range). The bias moves to the threshold's side (``h W > logit(t) - b``): no pass over
        the logits is needed."""
        hidden = self.decode_hidden(z)
        n = len(hidden)
        out = np.empty((n, *BAR_SHAPE), dtype=bool)
        limit = _logit(threshold)
        weight, bias = self._sounding
        out[:, :, SOUNDING] = False
        out[:, :, SOUNDING, self._pitches] = (hidden @ weight > limit - bias).reshape(
            n, STEPS_PER_BAR, -1)
        rows, bias = self._articulated_rows
        above = hidden @ rows.T > limit - bias
        out[:, :, ARTICULATED] = above.reshape(n, STEPS_PER_BAR, N_PITCHES)
        self._fill_outside_range(out[:, :, ARTICULATED], False)
        return out.reshape(n, BAR_SIZE)


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
