"""The improviser: one bar through the paper's Figure 1, encode -> channel -> decode.

:meth:`Improviser.step` answers the live server's bars one at a time; offline rendering
(:func:`qbdi.render.improvise`) composes the same stage functions over a whole query. Modes:
``query`` (the paper: the answer follows the query through the rate-limited channel),
``free`` (z drawn from the corpus's aggregate statistics, or from the prior N(0, I), the
paper's random generation, as the checkpoint's answer config says), ``echo`` (the input
unchanged, for routing checks) and ``mute`` (silence).

How a model answers is its checkpoint's :class:`~qbdi.models.config.AnswerConfig`: query bars
are moved by octaves into the corpus's register before they are encoded
(:mod:`qbdi.models.register`), and the decoder's probabilities become bars by the calibrated
method (:mod:`qbdi.models.decoding`). Checkpoints without one answer as before (the player's
register, each cell by the settings' threshold, free mode from the prior).
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qbdi.bars import BAR_SHAPE, BAR_SIZE, sounding_bars
from qbdi.channel import ChannelParams, LatentStats, RunningStats, WindowStats, transmitter
from qbdi.channel import channel_params as _channel_params
from qbdi.defaults import DEFAULT_THRESHOLD
from qbdi.models.checkpoint import (
    Checkpoint,
    CorpusStats,
    load_checkpoint,
    model_path,
    shipped_models,
)
from qbdi.models.config import LEGACY_ANSWER, AnswerConfig
from qbdi.models.decoding import NoteDecoding, note_decoding, voices
from qbdi.models.decoding import decode as decode_note_bars
from qbdi.models.register import centre_octaves
from qbdi.models.runtime import CHUNK_BARS, InferenceModel, Latents, decode_bars, encode_bars
from qbdi.settings import ImproviserSettings


@dataclass(frozen=True, slots=True)
class Answer:
    """One bar's answer: the bar, the bits each latent dimension received (None at full
    rate or outside query mode), the compute time, and the latent the decoder turned into
    the bar (``z_d``, after the channel; None in echo and mute modes)."""

    bar: np.ndarray  # (16, 2, 78) bool
    bits: np.ndarray | None
    compute_s: float
    z_d: np.ndarray | None = None  # (latent,) float32

    @property
    def dims_with_bits(self) -> int:
        return 0 if self.bits is None else int(np.count_nonzero(self.bits))


class Improviser:
    """Answers bars one at a time with a model. It remembers what answers depend on beyond
    the bar itself: the random stream, and the statistics of the bars heard. A change of
    seed, window, encoding or allocation starts both afresh; a change of statistics source
    keeps the stream and starts the bars heard afresh. Owned by one thread."""

    def __init__(self, model: InferenceModel, corpus_stats: CorpusStats,
                 answer: AnswerConfig = LEGACY_ANSWER) -> None:
        self.model = model
        self.corpus_stats = corpus_stats
        self.answer = answer
        self._stream_key: tuple | None = None
        self.rng = np.random.default_rng(0)
        self.heard: WindowStats | RunningStats | None = None
        self._heard_source: str | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> Improviser:
        return cls(InferenceModel.from_checkpoint(checkpoint), checkpoint.stats,
                   checkpoint.answer)

    def restart(self, settings: ImproviserSettings) -> None:
        """Start afresh: the random stream from the seed, no bars heard."""
        self.rng = np.random.default_rng(settings.seed)
        self._stream_key = _stream_key(settings)
        self._start_hearing(settings)

    def _start_hearing(self, settings: ImproviserSettings) -> None:
        """No bars heard: live, ``window`` statistics are those of the last bars, ``query``
        those of every bar so far, both seeded by :meth:`seed_stats`."""
        seed = self.seed_stats(settings)
        self.heard = (WindowStats(seed, settings.window_bars) if settings.stats == "window"
                      else RunningStats(seed) if settings.stats == "query" else None)
        self._heard_source = settings.stats

    def step(self, query: np.ndarray | None, settings: ImproviserSettings) -> Answer:
        """Answer one bar, ``(16, 2, 78)`` bool (None: no input this bar, heard as silence)."""
        started_s = time.perf_counter()
        if _stream_key(settings) != self._stream_key:
            self.restart(settings)
        elif settings.stats != self._heard_source:
            self._start_hearing(settings)
        bar = np.zeros(BAR_SHAPE, dtype=bool) if query is None else np.asarray(query, bool)
        if settings.mode in ("echo", "mute"):
            out = bar.copy() if settings.mode == "echo" else np.zeros(BAR_SHAPE, dtype=bool)
            return Answer(out, None, time.perf_counter() - started_s)
        params = None
        if settings.mode == "free":
            z_d = free_latents(self.rng, 1, self.model.latent_size, self.answer,
                               self.corpus_stats)
        else:
            bar = in_register(bar[None], self.answer)[0]
            latents = encode_bars(self.model, bar.reshape(1, BAR_SIZE),
                                  settings.encoding == "sample", self.rng,
                                  with_logvar=settings.needs_logvar)
            params = self._channel(latents, settings)
            z_d = (latents.z_e if params is None
                   else transmitter(settings.channel)(latents.z_e, params, self.rng))
        out = decode(self.model, z_d, settings, self.rng, self.answer,
                     played_bars(bar[None], settings))
        bits = None if params is None else params.bits.reshape(-1)
        return Answer(out.reshape(BAR_SHAPE), bits, time.perf_counter() - started_s, z_d[0])

    def _channel(self, latents: Latents, settings: ImproviserSettings) -> ChannelParams | None:
        """The bar's channel, after it joins the bars heard (which learn at full rate too)."""
        if self.heard is not None:
            logvar = latents.logvar[0] if settings.needs_logvar else None
            self.heard.push(latents.z_e[0], logvar)
        if settings.full_rate:
            return None
        stats = self.heard.current() if self.heard is not None else self.seed_stats(settings)
        return channel_params_for(self.spread(stats, settings), settings, latents.z_e)

    def spread(self, stats: LatentStats, settings: ImproviserSettings) -> LatentStats:
        """``stats``, or with ``spread = corpus`` their mean with the variances of
        :meth:`seed_stats` (the answer keeps the player's mean, the corpus's spread)."""
        if settings.spread == "stats":
            return stats
        seed = self.seed_stats(settings)
        return LatentStats(stats.mean, seed.source_var, seed.posterior_var)

    def seed_stats(self, settings: ImproviserSettings) -> LatentStats:
        """The corpus statistics for the settings' encoding (the prior when
        ``stats == 'prior'``): what zero bits fall back on, and what live statistics start
        from."""
        if settings.stats == "prior":
            return LatentStats.prior(self.model.latent_size)
        corpus = self.corpus_stats
        source_var = corpus.z_var if settings.encoding == "sample" else corpus.mu_var
        return LatentStats(corpus.z_mean, source_var, corpus.posterior_var)


def load_improvisers(start: str | Path | None) -> tuple[dict[str, Improviser], str]:
    """An improviser for every shipped model and for ``start`` (a shipped model's name, a
    checkpoint file, or None for the default), by name, and the name of ``start``'s: what a
    live session may switch between without reading a file while it plays. A file takes
    its stem as its name (``file-`` first if a shipped model has that name)."""
    shipped = shipped_models()
    improvisers = {name: Improviser.from_checkpoint(load_checkpoint(path))
                   for name, path in shipped.items()}
    path = model_path(start)
    if path in shipped.values():
        return improvisers, next(name for name, p in shipped.items() if p == path)
    name = re.sub(r"[^a-z0-9_-]", "-", path.stem.lower()).strip("-")[:58] or "model"
    name = f"file-{name}" if name in improvisers else name
    improvisers[name] = Improviser.from_checkpoint(load_checkpoint(path))
    return improvisers, name


def channel_params_for(stats: LatentStats, settings: ImproviserSettings,
                       z_e: np.ndarray) -> ChannelParams:
    """The channel for ``settings``' budget from ``stats``; ``z_e`` (``(n, d)``) is used
    only to re-allocate bits per bar."""
    per_bar = z_e if settings.reallocate_per_bar else None
    return _channel_params(stats, int(settings.budget_bits), settings.allocation, per_bar)


def free_latents(rng: np.random.Generator, n_bars: int, latent_size: int,
                 answer: AnswerConfig, corpus: CorpusStats) -> np.ndarray:
    """Free mode's latents, ``(n, latent)`` float32: per dimension a draw from the corpus's
    aggregate statistics (the mean and variance of ``mu`` over its bars) or from the prior
    N(0, I), as ``answer.free_latents`` says; ``n * latent`` normals from ``rng`` either way."""
    eps = rng.standard_normal((n_bars, latent_size), dtype=np.float32)
    if answer.free_latents == "prior":
        return eps
    return (corpus.mu_mean + np.sqrt(corpus.mu_var) * eps).astype(np.float32)


def played_bars(bars: np.ndarray, settings: ImproviserSettings) -> np.ndarray | None:
    """Which query bars ``(n, 16, 2, 78)`` the player played in, the bars :func:`decode`
    never answers with silence; None in free mode, whose answers do not answer the player
    (free play may rest)."""
    return None if settings.mode == "free" else sounding_bars(bars)


def in_register(bars: np.ndarray, answer: AnswerConfig) -> np.ndarray:
    """Query bars ``(n, 16, 2, 78)`` moved by octaves into the corpus's register, or
    themselves when the model keeps the player's register."""
    if answer.centre_pitch is None:
        return bars
    return centre_octaves(bars, answer.centre_pitch)


def decode(model: InferenceModel, z_d: np.ndarray, settings: ImproviserSettings,
           rng: np.random.Generator, answer: AnswerConfig = LEGACY_ANSWER,
           played: np.ndarray | None = None) -> np.ndarray:
    """The decoder stage, ``(n, latent)`` -> ``(n, 2496)`` bool: Bernoulli draws when the
    settings sample, else the model's answer method (``threshold``: each cell above the
    settings' threshold; a calibrated method: its biases, moved by the settings' threshold
    as :func:`answer_decoding` says). With the ``voices`` method a bar flagged in ``played``
    (``(n,)`` bool, the bars the player played in) is never answered with silence."""
    if settings.sampling or answer.method == "threshold":
        return decode_bars(model, z_d, settings.threshold, rng if settings.sampling else None)
    params = answer_decoding(answer, settings.threshold)
    out = np.empty((len(z_d), BAR_SIZE), dtype=bool)
    for i in range(0, len(z_d), CHUNK_BARS):
        part = slice(i, i + CHUNK_BARS)
        bars = out[part].reshape(-1, *BAR_SHAPE)
        if params.method == "voices":  # every sounding cell, the articulated ones it asks
            hidden = model.decode_hidden(z_d[part])
            voices(model.sounding_logits(hidden),
                   functools.partial(model.articulated_logits_at, hidden), params, bars,
                   None if played is None else played[part])
        else:
            decode_note_bars(model.decode_logits(z_d[part]), params, bars)
    return out


@functools.lru_cache(maxsize=64)
def answer_decoding(answer: AnswerConfig, threshold: float) -> NoteDecoding:
    """The calibrated decoding of ``answer`` with the threshold knob applied: both biases
    move by ``logit(DEFAULT_THRESHOLD) - logit(threshold)`` nats, so the default threshold
    decodes as calibrated, a higher one thins the answer and a lower one fills it."""
    shift = _logit(DEFAULT_THRESHOLD) - _logit(threshold)
    params = note_decoding(answer)
    return replace(params, sounding_bias=params.sounding_bias + shift,
                   onset_bias=params.onset_bias + shift)


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _stream_key(settings: ImproviserSettings) -> tuple:
    """What the random stream and the bars heard depend on. (Allocation is part of it: the
    bars heard keep no posterior variances while nothing allocates by them.)"""
    return (settings.seed, settings.window_bars, settings.encoding, settings.allocation)
