"""Offline rendering: a query MIDI file in, an improvisation MIDI file out.

Bar i of the output answers bar i of the query, at the same beats and tempo map. Output
velocity per bar follows the mean velocity of the query's notes starting in that bar
(80 where the query bar has none).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qbdi.bars import (
    BAR_SHAPE,
    BAR_SIZE,
    STEPS_PER_BAR,
    Note,
    bars_to_notes,
    mean_velocity,
    notes_to_bars,
)
from qbdi.channel import LatentStats, transmitter
from qbdi.chunks import chunk_slices, map_chunks
from qbdi.improviser import (
    Improviser,
    channel_params_for,
    decode,
    free_latents,
    in_register,
    played_bars,
)
from qbdi.midifile import Score, Track, write_midi
from qbdi.models.config import AnswerConfig
from qbdi.models.runtime import InferenceModel, Latents, latents_from
from qbdi.settings import ImproviserSettings

DEFAULT_VELOCITY = 80


@dataclass(frozen=True, slots=True)
class Answers:
    """The answers to a run of bars: ``bars`` ``(n, 16, 2, 78)`` bool; ``bits`` per latent
    dimension, ``(n, latent)`` or ``(1, latent)`` when every bar got the same (None without a
    channel); ``z_d`` ``(n, latent)`` (None in echo and mute modes); compute time per bar."""

    bars: np.ndarray
    bits: np.ndarray | None
    z_d: np.ndarray | None
    compute_s_per_bar: float

    def mean_dims_with_bits(self) -> float:
        """Latent dimensions given at least one bit, averaged over the bars (0 without a
        channel, or for no bars)."""
        if self.bits is None or len(self.bars) == 0:
            return 0.0
        return float(np.count_nonzero(self.bits, axis=1).mean())


def improvise(improviser: Improviser, bars: np.ndarray, settings: ImproviserSettings,
              on_progress: Callable[[int], None] | None = None) -> Answers:
    """Answer every bar of ``(n, 16, 2, 78)``; bar i of the output answers bar i.

    The random stream starts from the seed, so the same settings give the same output.
    ``window`` statistics are those of the live server, so those bars are answered one by
    one as live; otherwise the stages run over the whole query at once (``query``
    statistics are then the whole query's). ``on_progress(k)`` is called as bars are
    finished, with counts that add up to ``n``.
    """
    started_s = time.perf_counter()
    improviser.restart(settings)
    bars = np.asarray(bars, dtype=bool)
    if settings.mode == "query" and settings.stats == "window":
        return _stepped(improviser, bars, settings, on_progress)
    if settings.mode in ("echo", "mute"):
        out = bars.copy() if settings.mode == "echo" else np.zeros_like(bars)
        _report(on_progress, len(bars))
        return Answers(out, None, None, _per_bar(started_s, len(bars)))
    n_bars, model, rng, answer = len(bars), improviser.model, improviser.rng, improviser.answer
    bits = None
    if settings.mode == "free":
        z_d = free_latents(rng, n_bars, model.latent_size, answer, improviser.corpus_stats)
    else:
        latents = _encoded(model, answer, bars, settings.encoding == "sample", rng)
        z_d = latents.z_e
        if not settings.full_rate and n_bars:
            # the posterior variance only where bits go by it (as the live step keeps it)
            logvar = latents.logvar if settings.allocation == "posterior" else None
            stats = (LatentStats.from_latents(latents.z_e, logvar=logvar)
                     if settings.stats == "query" else improviser.seed_stats(settings))
            params = channel_params_for(improviser.spread(stats, settings), settings,
                                        latents.z_e)
            z_d = transmitter(settings.channel)(latents.z_e, params, rng)
            bits = np.atleast_2d(params.bits)
    out = np.empty((n_bars, BAR_SIZE), dtype=bool)
    played = played_bars(bars, settings)

    def decode_part(part: slice) -> np.ndarray:
        return decode(model, z_d[part], settings, rng, answer,
                      None if played is None else played[part])

    parts = chunk_slices(n_bars)  # in parts, to report progress; sampled draws in order
    decoded = map(decode_part, parts) if settings.sampling else map_chunks(decode_part, n_bars)
    for part, answer_bars in zip(parts, decoded, strict=True):
        out[part] = answer_bars
        _report(on_progress, len(answer_bars))
    return Answers(out.reshape(n_bars, *BAR_SHAPE), bits, z_d, _per_bar(started_s, n_bars))


def _encoded(model: InferenceModel, answer: AnswerConfig, bars: np.ndarray, sample: bool,
             rng: np.random.Generator) -> Latents:
    """Query bars ``(n, 16, 2, 78)`` moved into the corpus's register and encoded, as the
    live step does, their chunks on every core (the draws, when ``sample``, after all of
    them, in order)."""

    def encode_part(part: slice) -> tuple[np.ndarray, np.ndarray]:
        moved = in_register(bars[part], answer)
        return model.encode(moved.reshape(len(moved), BAR_SIZE))

    parts = list(map_chunks(encode_part, len(bars))) or [encode_part(slice(0, 0))]
    return latents_from(np.concatenate([mu for mu, _ in parts]),
                        np.concatenate([logvar for _, logvar in parts]), sample, rng)


def _stepped(improviser: Improviser, bars: np.ndarray, settings: ImproviserSettings,
             on_progress: Callable[[int], None] | None) -> Answers:
    steps = []
    for bar in bars:
        steps.append(improviser.step(bar, settings))
        _report(on_progress, 1)
    if not steps:
        return Answers(np.zeros((0, *BAR_SHAPE), bool), None, None, 0.0)
    bits = None if steps[0].bits is None else np.stack([a.bits for a in steps])
    return Answers(np.stack([a.bar for a in steps]), bits, np.stack([a.z_d for a in steps]),
                   float(np.mean([a.compute_s for a in steps])))


def _report(on_progress: Callable[[int], None] | None, n_bars: int) -> None:
    if on_progress is not None and n_bars:
        on_progress(n_bars)


def _per_bar(started_s: float, n_bars: int) -> float:
    return (time.perf_counter() - started_s) / max(n_bars, 1)


@dataclass(frozen=True, slots=True)
class Rendering:
    query_bars: np.ndarray
    output_bars: np.ndarray
    notes: list[Note]
    dims_with_bits: float  # mean over bars


def bar_velocities(notes: list[Note], n_bars: int) -> np.ndarray:
    """Each bar's answer velocity (:func:`~qbdi.bars.mean_velocity` of the notes starting
    in it), DEFAULT_VELOCITY for a bar where none starts."""
    struck: list[list[int]] = [[] for _ in range(n_bars)]
    for note in notes:
        bar = note.start_step // STEPS_PER_BAR
        if bar < n_bars:
            struck[bar].append(note.velocity)
    return np.array([min(max(mean_velocity(v) or DEFAULT_VELOCITY, 1), 127) for v in struck],
                    dtype=int)


def render_score(score: Score, improviser: Improviser, settings: ImproviserSettings,
                 on_progress: Callable[[int], None] | None = None) -> Rendering:
    """Answer every bar of ``score``; ``on_progress(k)`` as in :func:`improvise`."""
    query_bars = notes_to_bars(score.notes)
    answers = improvise(improviser, query_bars, settings, on_progress)
    notes = bars_to_notes(answers.bars, bar_velocities(score.notes, len(query_bars)))
    return Rendering(query_bars, answers.bars, notes, answers.mean_dims_with_bits())


def write_rendering(path: str | Path, score: Score, rendering: Rendering,
                    with_query: bool = False) -> None:
    """Write the improvisation on channel 1, and the query on channel 2 if asked."""
    tracks = [Track(rendering.notes, channel=0, name="qbdi improvisation")]
    if with_query:
        tracks.append(Track(score.notes, channel=1, name="query"))
    write_midi(path, tracks, score.tempos, score.time_signatures)


def parse_budget(text: str) -> int | str:
    """``"256"`` -> 256, ``"full"`` -> "full"; anything else raises ValueError."""
    text = text.strip().lower()
    if text == "full":
        return "full"
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"bits must be a whole number >= 0 or 'full', got {text!r}") from None
    if value < 0:
        raise ValueError(f"bits must be >= 0 or 'full', got {value}")
    return value


def sweep_path(out: Path, budget: int | str) -> Path:
    """``out.mid`` + budget 64 -> ``out.bits-64.mid``."""
    return out.with_name(f"{out.stem}.bits-{budget}{out.suffix or '.mid'}")

