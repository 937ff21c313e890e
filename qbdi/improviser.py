"""The one improviser: encode -> channel -> decode, over bars.

Offline rendering (:meth:`Improviser.improvise`) and the live server (:meth:`Improviser.step`)
both run :meth:`Improviser._answer`; there is no second copy of this path.

Modes: ``query`` (the paper: the answer follows the query through the rate-limited channel),
``free`` (z drawn from the prior N(0, I): the paper's random generation), ``echo`` (the input
unchanged, for routing checks) and ``mute`` (silence).
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from qbdi.bars import BAR_SHAPE, BAR_SIZE
from qbdi.blocks import block_slices, map_blocks
from qbdi.channel import LatentStats, Moments, WindowStats, allocate_bits, transmit
from qbdi.channel.normals import standard_normals
from qbdi.channel.waterfill import MAX_BUDGET_BITS
from qbdi.defaults import DEFAULT_THRESHOLD
from qbdi.models.checkpoint import Checkpoint, CorpusStats
from qbdi.models.runtime import FoldedDecoder, InferenceModel, logits_to_bars

Mode = Literal["query", "free", "echo", "mute"]
StatsSource = Literal["query", "window", "corpus", "prior"]
FULL = "full"


class ImproviserSettings(BaseModel):
    """What shapes an answer. Immutable: a change builds a new, validated settings object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "query"
    budget_bits: Annotated[int, Field(ge=0, le=MAX_BUDGET_BITS)] | Literal["full"] = Field(
        256, description="bits per bar through the channel, or 'full' to bypass it")
    stats: StatsSource = Field(
        "window", description="where mu_e and sigma2_e come from: the whole query (offline), "
        "a window of recent bars seeded by the corpus, the corpus, or the prior N(0, 1)")
    window_bars: int = Field(16, ge=1, le=4096)
    allocation: Literal["source", "posterior"] = "source"
    reallocate_per_bar: bool = Field(
        False, description="allocate each bar's bits by how far that bar's z_e is from mu_e")
    # Defaults measured on the shipped model (README, "Choices"): with mu alone the channel's
    # own noise is the only randomness, so the knob is smoother and full rate keeps the
    # query's harmony (chroma >= 0.85 on every shipped query); the threshold: see
    # qbdi.defaults.DEFAULT_THRESHOLD.
    encoding: Literal["sample", "mean"] = Field(
        "mean", description="z_e = mu alone, or mu + exp(logvar/2) eps (the paper)")
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0.0, lt=1.0)
    sampling: bool = Field(False, description="Bernoulli draws instead of the threshold")
    seed: int = Field(0, ge=0, le=2**63 - 1)


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


class Answers(Sequence[Answer]):
    """The answers to a run of bars, held as arrays; ``answers[i]`` is bar i's
    :class:`Answer`, built when asked for (a long rendering answers thousands of bars and
    its callers mostly want the arrays)."""

    def __init__(self, bars: np.ndarray, bits: np.ndarray | None,
                 z_d: list[np.ndarray] | None, compute_s: float) -> None:
        self.bars = bars  # (n, 16, 2, 78) bool
        self._bits = bits  # (n | 1, latent), one row when every bar got the same bits
        self._z_d_blocks = z_d
        self.compute_s = compute_s  # per bar
        self._z_d: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.bars)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]  # negative indices, and IndexError past the end
        z_d = self.z_d
        bits = None if self._bits is None else self._bits[min(i, len(self._bits) - 1)]
        return Answer(self.bars[i], bits, self.compute_s, None if z_d is None else z_d[i])

    @property
    def z_d(self) -> np.ndarray | None:
        """``(n, latent)`` float32, or None in echo and mute modes."""
        if self._z_d is None and self._z_d_blocks is not None:
            self._z_d = (self._z_d_blocks[0] if len(self._z_d_blocks) == 1
                         else np.concatenate(self._z_d_blocks))
        return self._z_d

    def mean_dims_with_bits(self) -> float:
        """Latent dimensions given at least one bit, averaged over the bars (0 without a
        channel, or for no bars)."""
        if self._bits is None or len(self) == 0:
            return 0.0
        return float(np.count_nonzero(self._bits, axis=1).mean())


class Improviser:
    """Answers bars with a model; owned by one thread (it keeps an RNG and a stats window)."""

    def __init__(self, model: InferenceModel, corpus_stats: CorpusStats,
                 settings: ImproviserSettings | None = None) -> None:
        self.model = model
        self.corpus_stats = corpus_stats
        self._plain_decoder: FoldedDecoder | None = None
        self.settings = settings or ImproviserSettings()
        self.reset()

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint,
                        settings: ImproviserSettings | None = None) -> Improviser:
        return cls(InferenceModel.from_checkpoint(checkpoint), checkpoint.stats, settings)

    def reset(self, settings: ImproviserSettings | None = None) -> None:
        """Apply ``settings`` (if given) and start afresh: RNG reseeded, window emptied."""
        if settings is not None:
            self.settings = settings
        self.rng = np.random.default_rng(self.settings.seed)
        self.window = WindowStats(self.seed_stats(), self.settings.window_bars)
        self._fixed_allocation: tuple[tuple, np.ndarray] | None = None

    def update(self, settings: ImproviserSettings) -> None:
        """Change settings between bars, keeping the RNG stream and the stats window (a new
        window size, seed or encoding restarts them, and so does a switch to posterior
        allocation: the window kept no posterior variances while nothing needed them)."""
        old, self.settings = self.settings, settings
        if (old.window_bars, old.seed, old.encoding) != (
                settings.window_bars, settings.seed, settings.encoding) or (
                settings.allocation == "posterior" != old.allocation):
            self.reset()

    def seed_stats(self) -> LatentStats:
        """The corpus statistics for this encoding (the prior when ``stats == 'prior'``)."""
        if self.settings.stats == "prior":
            return LatentStats.prior(self.model.latent_size)
        corpus = self.corpus_stats
        source_var = corpus.z_var if self.settings.encoding == "sample" else corpus.mu_var
        return LatentStats(corpus.z_mean, source_var, corpus.posterior_var)

    # -- offline -------------------------------------------------------------------------
    def improvise(self, bars: np.ndarray, on_progress: Callable[[int], None] | None = None
                  ) -> tuple[np.ndarray, Answers]:
        """Answer every bar of ``(n, 16, 2, 78)``; bar i of the output answers bar i.

        With ``stats == 'window'`` the bars are answered one by one as live; otherwise in
        blocks of :data:`BLOCK_BARS` spread over the CPU's cores, each block with its own
        random stream spawned from the seed. Same settings and seed -> identical output,
        whatever the number of cores. ``on_progress(k)`` (if given) is called as bars are
        finished, with counts that add up to ``n``.
        """
        self.reset()
        if self.settings.stats == "window" and self.settings.mode == "query":
            steps = []
            for bar in bars:
                steps.append(self.step(bar))
                if on_progress is not None:
                    on_progress(1)
            return _stacked(steps)
        answers = self._answer(np.asarray(bars, dtype=bool), live=False,
                               on_progress=on_progress)
        return answers.bars, answers

    # -- live ----------------------------------------------------------------------------
    def step(self, bar: np.ndarray | None) -> Answer:
        """Answer one bar (``None`` = no input this bar, answered as silence)."""
        query = np.zeros(BAR_SHAPE, dtype=bool) if bar is None else np.asarray(bar, dtype=bool)
        return self._answer(query[None], live=True)[0]

    # -- the one path --------------------------------------------------------------------
    def _answer(self, bars: np.ndarray, live: bool,
                on_progress: Callable[[int], None] | None = None) -> Answers:
        started_s = time.perf_counter()
        mode = self.settings.mode
        bits = z_d = None
        if mode == "echo":
            out = bars.copy()
        elif mode == "mute":
            out = np.zeros_like(bars)
        else:
            out = np.empty(bars.shape, dtype=bool)
            z_d, bits = self._latents_to_bars(bars, out, live, on_progress)
            on_progress = None  # reported block by block
        if on_progress is not None:
            on_progress(len(bars))
        per_bar_s = (time.perf_counter() - started_s) / max(len(bars), 1)
        return Answers(out, bits, z_d, per_bar_s)

    def _latents_to_bars(self, bars: np.ndarray, out: np.ndarray, live: bool,
                         on_progress: Callable[[int], None] | None
                         ) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Query or free mode: encode, pass through the channel and decode ``bars`` into
        ``out``; returns ``z_d`` block by block and the bits (``(n | 1, latent)`` or None).

        Live, the one bar draws from the improviser's RNG; offline, block k draws from the
        k-th stream spawned from it, so blocks can run on any core in any order."""
        n_bars = len(bars)
        if n_bars == 0:  # nothing to encode, no statistics to take
            return [np.zeros((0, self.model.latent_size), np.float32)], None
        rngs = [self.rng] if live else self.rng.spawn(len(block_slices(n_bars)))
        z_e, channel = self._sources(bars, rngs, live)
        decoder = self._decoder_for(channel, live)
        flat_out = out.reshape(n_bars, BAR_SIZE)

        def decode(k: int, part: slice) -> np.ndarray:
            z_d = z_e[k] if channel is None else transmit(
                z_e[k], channel[0], channel[1], _rows(channel[2], part), rngs[k])
            self._decide(decoder, z_d, flat_out[part], rngs[k])
            return z_d

        z_d = []
        for block in map_blocks(decode, n_bars):
            z_d.append(block)
            if on_progress is not None:
                on_progress(len(block))
        return z_d, None if channel is None else channel[2]

    def _sources(self, bars: np.ndarray, rngs: list[np.random.Generator], live: bool
                 ) -> tuple[list[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """The latents block by block (``z_e``, or prior draws in free mode) and the channel
        they go through (None: none, at full rate or in free mode)."""
        n_bars = len(bars)
        if self.settings.mode == "free":
            return [standard_normals(rngs[k], (part.stop - part.start, self.model.latent_size))
                    for k, part in enumerate(block_slices(n_bars))], None
        flat = bars.reshape(n_bars, BAR_SIZE)
        encoded = list(map_blocks(lambda k, part: self._encode(flat[part], rngs[k], live),
                                  n_bars))
        return [block.z_e for block in encoded], self._channel(encoded, live)

    def _encode(self, flat_bars: np.ndarray, rng: np.random.Generator,
                live: bool) -> _Encoded:
        """A block's ``z_e``; its ``logvar`` only where something needs it (it costs half the
        encoder's head), and its moments where the query's statistics are taken offline (on
        the block's core, so that no serial pass over the whole query is left)."""
        settings = self.settings
        needs_logvar = settings.encoding == "sample" or (
            settings.allocation == "posterior" and settings.stats in ("query", "window"))
        if needs_logvar:
            mu, logvar = self.model.encode(flat_bars)
        else:
            mu, logvar = self.model.encode_mu(flat_bars), None
        z_e = mu
        if settings.encoding == "sample":
            noise = standard_normals(rng, mu.shape)
            z_e = mu + np.exp(0.5 * logvar) * noise
        moments = None
        if not live and settings.stats == "query" and settings.budget_bits != FULL:
            moments = Moments.of(z_e, logvar)
        return _Encoded(z_e, logvar, moments)

    def _channel(self, blocks: list[_Encoded],
                 live: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(mu_e, sigma2_e, bits)`` for the channel, or None at full rate."""
        budget = self.settings.budget_bits
        if budget == FULL and not live:
            return None  # offline the statistics would only feed the bypassed channel
        stats = self._stats(blocks, live)  # live, the window keeps learning at full rate
        if budget == FULL:
            return None
        variance = stats.variance_for(self.settings.allocation)
        if self.settings.reallocate_per_bar:
            z_e = np.concatenate([block.z_e for block in blocks])
            bits = allocate_bits(np.square(z_e - stats.mean), budget)
        else:
            bits = self._allocation(variance, budget)
        return stats.mean, variance, bits

    def _allocation(self, variance: np.ndarray, budget: int) -> np.ndarray:
        """Bits per dimension, ``(1, latent)``; computed once while the statistics are fixed
        (corpus or prior), since the live loop would otherwise redo it every bar."""
        fixed = self.settings.stats in ("corpus", "prior")
        key = (self.settings.stats, self.settings.allocation, self.settings.encoding, budget)
        if fixed and self._fixed_allocation is not None and self._fixed_allocation[0] == key:
            return self._fixed_allocation[1]
        bits = allocate_bits(variance, budget)[None]
        if fixed:
            self._fixed_allocation = (key, bits)
        return bits

    def _stats(self, blocks: list[_Encoded], live: bool) -> LatentStats:
        source = self.settings.stats
        if source in ("window", "query") and live:
            # Live, "query" can only mean the query so far: the window.
            logvar = blocks[0].logvar
            self.window.push(blocks[0].z_e[0], None if logvar is None else logvar[0])
            return self.window.current()
        if source == "query":
            return functools.reduce(operator.add, [block.moments for block in blocks]).stats()
        return self.seed_stats()

    def _decoder_for(self, channel: tuple | None, live: bool) -> FoldedDecoder:
        """The decoder, with the dimensions that get no bits folded into its bias when every
        bar gets the same bits (they then hold ``mu_e`` exactly in every bar). Live, the bits
        change every bar, so the plain decoder is kept and reused."""
        latent = self.model.latent_size
        if channel is None or live or len(channel[2]) != 1:
            if self._plain_decoder is None:
                self._plain_decoder = FoldedDecoder(self.model, np.zeros(latent, bool),
                                                    np.zeros(latent, np.float32))
            return self._plain_decoder
        return FoldedDecoder(self.model, channel[2][0] == 0, channel[0])

    def _decide(self, decoder: FoldedDecoder, z_d: np.ndarray, out: np.ndarray,
                rng: np.random.Generator) -> None:
        """Bars from ``z_d`` into ``out`` (``(n, 2496)`` bool): the threshold, or Bernoulli
        draws from ``rng`` when sampling."""
        z_free = z_d[:, decoder.free_dims] if len(decoder.free_dims) < z_d.shape[1] else z_d
        if self.settings.sampling:
            out[:] = logits_to_bars(decoder.logits(z_free), rng=rng)
        else:
            decoder.decide(z_free, self.settings.threshold, out)


class _Encoded(NamedTuple):
    z_e: np.ndarray  # (n, latent) float32
    logvar: np.ndarray | None
    moments: Moments | None


def _rows(bits: np.ndarray, part: slice) -> np.ndarray:
    """A block's rows of per-bar bits, or the one row every bar shares."""
    return bits if len(bits) == 1 else bits[part]


def _stacked(steps: list[Answer]) -> tuple[np.ndarray, Answers]:
    """Answers of bars answered one by one, as one :class:`Answers`."""
    if not steps:
        return np.zeros((0, *BAR_SHAPE), bool), Answers(np.zeros((0, *BAR_SHAPE), bool),
                                                         None, None, 0.0)
    bars = np.stack([a.bar for a in steps])
    bits = None if steps[0].bits is None else np.stack([a.bits for a in steps])
    z_d = None if steps[0].z_d is None else [np.stack([a.z_d for a in steps])]
    per_bar_s = float(np.mean([a.compute_s for a in steps]))
    return bars, Answers(bars, bits, z_d, per_bar_s)
