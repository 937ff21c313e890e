"""A style measure: how corpus-like a bar's texture is, ``P(corpus | bar)``.

Pure numpy inference; trained by :mod:`qbdi.models.style_train` (torch), stored in the
model's checkpoint. **Features** (:func:`bar_features`, ``FEATURE_NAMES``) of one bar's
``(16, 2, 78)`` array. A note *starts* at an articulated cell, or where a pitch begins
sounding without one (as :func:`qbdi.bars.bars_to_notes` reads bars); one sounding at step 0
unarticulated is *held in* from the bar before, not a start. Groups:

* density and rhythm: log of the number of starts; starts at each of the 16 steps (counts,
  capped at 6) and whether any starts there; notes held in; the fraction of steps with one;
* polyphony: voices per step (mean, spread, min, max), the fraction of steps with 0-5, 6+;
* note lengths within the bar (a note still sounding at step 15 counts to the barline): the
  fraction of notes of 1, 2, 3, 4, 5-7, 8, 9-15 and 16 steps, the mean log length, and the
  fraction of starts that re-strike a pitch sounding the step before (sixteenth jitter from
  cell-by-cell decoding shows up here and in the short lengths);
* chords at onsets: the fraction of onset steps with 1-4 and 5+ starts, and their mean;
* register: lowest, highest and mean sounding pitch (octaves from middle C) and the range;
  the spacing of adjacent sounding voices (fraction of gaps of 1-2, 3-4, 5-7, 8-12 and 13+
  semitones, and the mean gap);
* pitch classes, transposition-invariant: distinct pitch classes, the duration-weighted
  interval-class vector (6), the best fit to a major or minor triad and to a diatonic scale
  (fraction of the bar's sounding weight inside it), and the chroma's entropy;
* melodic motion of the top and bottom voices where they change: the fraction of moves of
  1-2, 3-4, 5-7 and 8+ semitones, and moves per bar.

Density and polyphony are inputs on purpose: a decoder that turned every bar into one held
chord would otherwise score well on pitch content alone. A silent bar has all-zero features
but its silence flag (the corpus has almost none, so it scores low).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from qbdi.bars import ARTICULATED, BAR_SHAPE, LOWEST_PITCH, N_PITCHES, SOUNDING, STEPS_PER_BAR

FEATURE_VERSION = 1
"""Bumped whenever :func:`bar_features` changes; a stored classifier names the version it
was trained on and is refused by another."""

_MAX_STARTS_PER_STEP = 6
_VOICE_BINS = 7  # 0..5, 6+
# length bins [1], [2], [3], [4], [5, 8), [8], [9, 16), [16]
_LENGTH_EDGES_STEPS = (1, 2, 3, 4, 5, 8, 9, 16, 17)
_CHORD_BINS = 5  # 1..4, 5+
_GAP_EDGES = (1, 3, 5, 8, 13, 1000)
_MOVE_EDGES = (1, 3, 5, 8, 1000)
_PITCH_CLASS = (np.arange(N_PITCHES) + LOWEST_PITCH) % 12
_PITCH_OCTAVES = ((np.arange(N_PITCHES) + LOWEST_PITCH) - 60) / 12.0


def _pitch_class_templates() -> np.ndarray:
    """``(36, 12)`` 0/1 templates: 12 major triads, 12 minor triads, 12 diatonic scales."""
    rows = []
    for shape in ((0, 4, 7), (0, 3, 7), (0, 2, 4, 5, 7, 9, 11)):
        for root in range(12):
            row = np.zeros(12)
            row[[(root + step) % 12 for step in shape]] = 1
            rows.append(row)
    return np.array(rows)


_TEMPLATES = _pitch_class_templates()

FEATURE_NAMES: tuple[str, ...] = (
    "log_starts",
    *(f"starts_at_{t}" for t in range(STEPS_PER_BAR)),
    *(f"any_start_at_{t}" for t in range(STEPS_PER_BAR)),
    "held_in", "steps_with_start",
    "voices_mean", "voices_std", "voices_min", "voices_max",
    *(f"steps_with_{k}_voices" for k in range(_VOICE_BINS)),
    "silent",
    "len_1", "len_2", "len_3", "len_4", "len_5_7", "len_8", "len_9_15", "len_16",
    "log_len_mean", "restrikes",
    *(f"chord_{k}" for k in range(1, _CHORD_BINS + 1)), "chord_mean",
    "lowest", "highest", "mean_pitch", "range",
    "gap_1_2", "gap_3_4", "gap_5_7", "gap_8_12", "gap_13_up", "gap_mean",
    "pitch_classes", *(f"interval_class_{k}" for k in range(1, 7)),
    "triad_fit", "diatonic_fit", "chroma_entropy",
    *(f"{voice}_move_{b}" for voice in ("top", "bass")
      for b in ("1_2", "3_4", "5_7", "8_up", "count")),
)
N_FEATURES = len(FEATURE_NAMES)


def _fractions(counts: np.ndarray) -> np.ndarray:
    """Rows of counts -> rows of fractions (all-zero rows stay zero)."""
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts, dtype=np.float64),
                     where=total > 0)


def _binned(values: np.ndarray, weights: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    """Per row, the weighted count of ``values`` in ``[edges[k], edges[k+1])``: ``(n, bins)``."""
    return np.stack([((values >= lo) & (values < hi) & weights).sum(axis=tuple(
        range(1, values.ndim))) for lo, hi in itertools.pairwise(edges)], axis=1)


def note_starts(bars: np.ndarray) -> np.ndarray:
    """``(n, 16, 78)`` bool: where a note starts inside the bar (held-in notes excluded)."""
    sounding = bars[:, :, SOUNDING, :]
    articulated = bars[:, :, ARTICULATED, :]
    on = sounding | articulated
    starts = articulated.copy()
    starts[:, 1:] |= on[:, 1:] & ~on[:, :-1]
    return starts


def _note_lengths_steps(bars: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``(n, 16, 78)`` int: at each start, its length in steps up to the barline (else 0)."""
    continues = bars[:, :, SOUNDING, :] & ~starts  # a step that carries the note on
    remaining = np.zeros(starts.shape, dtype=np.int16)
    for step in range(STEPS_PER_BAR - 2, -1, -1):
        remaining[:, step] = np.where(continues[:, step + 1], remaining[:, step + 1] + 1, 0)
    return np.where(starts, remaining + 1, 0)


def _voice_moves(pitch: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sizes (semitones) of changes of one voice between successive sounding steps and a
    mask of where they happen, ``(n, 15)`` each."""
    moves = np.abs(np.diff(pitch, axis=1))
    valid = present[:, 1:] & present[:, :-1] & (moves > 0)
    return moves, valid


def bar_features(bars: np.ndarray) -> np.ndarray:
    """``(n, 16, 2, 78)`` bool bars -> ``(n, N_FEATURES)`` float32, in ``FEATURE_NAMES``
    order. Deterministic, finite for every input (silent bars included)."""
    bars = np.asarray(bars, dtype=bool)
    if bars.ndim != 4 or bars.shape[1:] != BAR_SHAPE:
        raise ValueError(f"bars must have shape (n, 16, 2, 78), got {bars.shape}")
    n = len(bars)
    sounding = bars[:, :, SOUNDING, :]
    starts = note_starts(bars)
    held_in = sounding[:, 0] & ~starts[:, 0]
    starts_per_step = starts.sum(axis=2)  # (n, 16)
    n_starts = starts_per_step.sum(axis=1)
    voices = sounding.sum(axis=2)  # (n, 16)
    out: list[np.ndarray] = [np.log1p(n_starts)[:, None],
                             np.minimum(starts_per_step, _MAX_STARTS_PER_STEP),
                             starts_per_step > 0,
                             held_in.sum(axis=1)[:, None],
                             (starts_per_step > 0).mean(axis=1)[:, None]]
    # polyphony
    out += [voices.mean(axis=1)[:, None], voices.std(axis=1)[:, None],
            voices.min(axis=1)[:, None], voices.max(axis=1)[:, None],
            _fractions(np.stack([(np.minimum(voices, _VOICE_BINS - 1) == k).sum(axis=1)
                                 for k in range(_VOICE_BINS)], axis=1)),
            (voices.sum(axis=1) == 0)[:, None]]
    # note lengths
    lengths = _note_lengths_steps(bars, starts)
    length_counts = _binned(lengths, starts, _LENGTH_EDGES_STEPS)
    log_len = np.where(starts, np.log(np.maximum(lengths, 1)), 0.0).sum(axis=(1, 2))
    restrikes = (starts[:, 1:] & sounding[:, :-1]).sum(axis=(1, 2))
    out += [_fractions(length_counts),
            np.divide(log_len, n_starts, out=np.zeros(n), where=n_starts > 0)[:, None],
            np.divide(restrikes, n_starts, out=np.zeros(n), where=n_starts > 0)[:, None]]
    # chords at onsets
    chord_counts = np.stack([(starts_per_step == k).sum(axis=1) for k in range(1, _CHORD_BINS)]
                            + [(starts_per_step >= _CHORD_BINS).sum(axis=1)], axis=1)
    onset_steps = (starts_per_step > 0).sum(axis=1)
    out += [_fractions(chord_counts),
            np.divide(n_starts, onset_steps, out=np.zeros(n), where=onset_steps > 0)[:, None]]
    out += [_register(sounding), _spacing(sounding), _pitch_content(sounding),
            _motion(sounding)]
    features = np.concatenate([np.asarray(part, dtype=np.float64).reshape(n, -1)
                               for part in out], axis=1)
    return features.astype(np.float32)


def _register(sounding: np.ndarray) -> np.ndarray:
    """Lowest, highest, mean sounding pitch (octaves from middle C) and range, ``(n, 4)``."""
    per_pitch = sounding.sum(axis=1)  # (n, 78) sounding steps
    present = per_pitch > 0
    any_sound = present.any(axis=1)
    lowest = np.where(any_sound, _PITCH_OCTAVES[np.argmax(present, axis=1)], 0.0)
    highest = np.where(any_sound, _PITCH_OCTAVES[N_PITCHES - 1 - np.argmax(present[:, ::-1],
                                                                         axis=1)], 0.0)
    total = per_pitch.sum(axis=1)
    mean = np.divide(per_pitch @ _PITCH_OCTAVES, total, out=np.zeros(len(total)),
                     where=total > 0)
    return np.stack([lowest, highest, mean, highest - lowest], axis=1)


def _spacing(sounding: np.ndarray) -> np.ndarray:
    """Gaps between adjacent sounding voices, per step, pooled over the bar: ``(n, 6)``."""
    n = len(sounding)
    flat = sounding.reshape(n * STEPS_PER_BAR, N_PITCHES)
    rows, cols = np.nonzero(flat)
    same_step = rows[1:] == rows[:-1]
    gaps = (cols[1:] - cols[:-1])[same_step]
    bar_of_gap = rows[1:][same_step] // STEPS_PER_BAR
    counts = np.zeros((n, len(_GAP_EDGES) - 1))
    bins = np.searchsorted(np.array(_GAP_EDGES), gaps, side="right") - 1
    np.add.at(counts, (bar_of_gap, bins), 1)
    total_gap = np.bincount(bar_of_gap, weights=gaps, minlength=n)
    n_gaps = counts.sum(axis=1)
    mean_gap = np.divide(total_gap, n_gaps, out=np.zeros(n), where=n_gaps > 0) / 12.0
    return np.concatenate([_fractions(counts), mean_gap[:, None]], axis=1)


def _pitch_content(sounding: np.ndarray) -> np.ndarray:
    """Distinct pitch classes, interval-class vector, triad and diatonic fit, entropy."""
    chroma = np.zeros((len(sounding), 12))
    np.add.at(chroma.T, _PITCH_CLASS, sounding.sum(axis=1).T.astype(np.float64))
    weight = _fractions(chroma)
    distinct = (chroma > 0).sum(axis=1) / 12.0
    interval_classes = np.stack([(weight * np.roll(weight, -k, axis=1)).sum(axis=1)
                                 for k in range(1, 7)], axis=1)
    fits = weight @ _TEMPLATES.T  # (n, 36)
    triad_fit = fits[:, :24].max(axis=1)
    diatonic_fit = fits[:, 24:].max(axis=1)
    logs = np.log(weight, out=np.zeros_like(weight), where=weight > 0)
    entropy = -(weight * logs).sum(axis=1) / np.log(12.0)
    return np.concatenate([distinct[:, None], interval_classes, triad_fit[:, None],
                           diatonic_fit[:, None], entropy[:, None]], axis=1)


def _motion(sounding: np.ndarray) -> np.ndarray:
    """Moves of the top and bottom voices: fractions by size and count, ``(n, 10)``."""
    present = sounding.any(axis=2)  # (n, 16)
    top = N_PITCHES - 1 - np.argmax(sounding[:, :, ::-1], axis=2)
    bass = np.argmax(sounding, axis=2)
    parts = []
    for voice in (top, bass):
        moves, valid = _voice_moves(voice, present)
        counts = _binned(moves, valid, _MOVE_EDGES)
        parts += [_fractions(counts), valid.sum(axis=1)[:, None] / STEPS_PER_BAR]
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True, slots=True)
class StyleClassifier:
    """``P(corpus | bar)`` from :func:`bar_features`: standardise, one ReLU hidden layer (or
    none: logistic regression when ``hidden_weight`` has zero rows), a sigmoid output.

    Arrays are float32: ``feature_mean``/``feature_scale`` ``(F,)``, ``hidden_weight``
    ``(H, F)``, ``hidden_bias`` ``(H,)``, ``out_weight`` ``(H or F,)``, ``out_bias`` ``(1,)``.
    ``metadata`` holds the corpus name, the feature version and the validation figures.
    """

    feature_mean: np.ndarray
    feature_scale: np.ndarray
    hidden_weight: np.ndarray
    hidden_bias: np.ndarray
    out_weight: np.ndarray
    out_bias: np.ndarray
    metadata: dict

    TENSORS = ("feature_mean", "feature_scale", "hidden_weight", "hidden_bias",
               "out_weight", "out_bias")

    def logits(self, features: np.ndarray) -> np.ndarray:
        """``(n, F)`` features -> ``(n,)`` float64 log-odds of the corpus."""
        x = (np.asarray(features, dtype=np.float64) - self.feature_mean) / self.feature_scale
        if len(self.hidden_weight):
            x = np.maximum(x @ self.hidden_weight.T.astype(np.float64) + self.hidden_bias, 0.0)
        return x @ self.out_weight.astype(np.float64) + float(self.out_bias[0])

    def probability(self, bars: np.ndarray) -> np.ndarray:
        """``(n, 16, 2, 78)`` bars -> ``(n,)`` P(corpus) in [0, 1]."""
        if len(bars) == 0:
            return np.zeros(0)
        return 1.0 / (1.0 + np.exp(-self.logits(bar_features(bars))))

    def tensors(self, prefix: str = "style.") -> dict[str, np.ndarray]:
        """The arrays, float32, named ``prefix + field`` (for a safetensors file)."""
        return {prefix + name: np.ascontiguousarray(getattr(self, name), dtype=np.float32)
                for name in self.TENSORS}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], metadata: dict,
                     prefix: str = "style.") -> StyleClassifier:
        """Rebuild from :meth:`tensors`' output; raises ValueError on a missing tensor, a
        shape that does not fit ``N_FEATURES`` or another feature version."""
        if metadata.get("feature_version") != FEATURE_VERSION:
            raise ValueError(f"feature version {metadata.get('feature_version')!r}, "
                             f"this code computes version {FEATURE_VERSION}")
        missing = [name for name in cls.TENSORS if prefix + name not in tensors]
        if missing:
            raise ValueError(f"tensor {prefix + missing[0]} missing")
        arrays = {name: np.asarray(tensors[prefix + name], dtype=np.float32)
                  for name in cls.TENSORS}
        hidden = arrays["hidden_weight"].shape[0]
        expected = {"feature_mean": (N_FEATURES,), "feature_scale": (N_FEATURES,),
                    "hidden_weight": (hidden, N_FEATURES), "hidden_bias": (hidden,),
                    "out_weight": (hidden or N_FEATURES,), "out_bias": (1,)}
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise ValueError(f"tensor {prefix + name} has shape {arrays[name].shape}, "
                                 f"expected {shape}")
            if not np.all(np.isfinite(arrays[name])):
                raise ValueError(f"tensor {prefix + name} contains NaN or infinity")
        if np.any(arrays["feature_scale"] <= 0):
            raise ValueError(f"tensor {prefix}feature_scale must be > 0")
        return cls(**arrays, metadata=dict(metadata))
