"""Models with seeded numpy weights for the tests: no training, no torch, the same bits on
every machine.

* :func:`seeded_model` is the pinned renderings' model (``tests/pins.py``); its weights
  must not change (``tests/data/pins.json`` pins what it plays).
* :func:`write_tiny_checkpoint` writes the suite's ``tiny_checkpoint``: the same recipe at
  hidden 32, latent 16, with a decoder bias shaped like piano music (notes are rare, most
  in the middle register, on the scale of C and on the beat), so that the thresholds the
  tests use give answers of some 5 to 25 onsets a bar at 0.5 and 50 to 100 at 0.2, and
  nothing reaches 0.9999 (``tests/test_seeded.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qbdi.bars import BAR_SHAPE, LOWEST_PITCH, N_PITCHES, STEPS_PER_BAR, Note, notes_to_bars
from qbdi.models.checkpoint import CorpusStats, save_checkpoint
from qbdi.models.config import ModelCard, ModelConfig
from qbdi.models.runtime import InferenceModel

TINY_SEED, TINY_HIDDEN, TINY_LATENT = 1, 32, 16
TINY_DECODER_SCALE = 0.12


def query_bars(n_bars: int, seed: int) -> np.ndarray:
    """A piano-like query: a chord per half bar and a line of eighths, random keys."""
    rng = np.random.default_rng(seed)
    notes: list[Note] = []
    for bar in range(n_bars):
        root = 48 + int(rng.integers(0, 12))
        for half in (0, 8):
            start = bar * STEPS_PER_BAR + half
            for interval in (0, 4, 7):
                notes.append(Note(start, root + interval, start + 8, 70))
        for eighth in range(8):
            start = bar * STEPS_PER_BAR + 2 * eighth
            notes.append(Note(start, 72 + int(rng.integers(0, 12)), start + 2, 90))
    return notes_to_bars(notes, n_bars)


def seeded_weights(seed: int, hidden: int, latent: int) -> tuple[ModelConfig,
                                                                  dict[str, np.ndarray]]:
    """Random layers scaled for sparse bars; the decoder's output bias is a flat -3."""
    rng = np.random.default_rng(seed)
    config = ModelConfig(hidden_size=hidden, latent_size=latent)
    sizes = {"enc_hidden": (config.input_size, hidden), "enc_mu": (hidden, latent),
             "enc_logvar": (hidden, latent), "dec_hidden": (latent, hidden),
             "dec_out": (hidden, config.input_size)}
    weights = {}
    for name, (n_in, n_out) in sizes.items():
        gain = 12.0 if name == "enc_hidden" else 2.0  # sparse bars: ~50 of 2496 inputs on
        weights[f"{name}.weight"] = (gain * rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
                                     ).astype(np.float32)
        weights[f"{name}.bias"] = (0.1 * rng.standard_normal(n_out)).astype(np.float32)
    weights["enc_logvar.bias"] -= 2.0
    weights["dec_out.bias"] -= 3.0
    return config, weights


def corpus_stats(model: InferenceModel, seed: int) -> CorpusStats:
    """Latent statistics over 64 bars of :func:`query_bars`, as a checkpoint holds them."""
    mu, logvar = model.encode(query_bars(64, seed + 1).reshape(64, -1))
    return CorpusStats.from_encodings(mu, logvar)


def seeded_model(seed: int = 7, hidden: int = 48, latent: int = 24) -> tuple[InferenceModel,
                                                                           CorpusStats]:
    """A small model with seeded random weights (no training, no torch)."""
    model = InferenceModel(*seeded_weights(seed, hidden, latent))
    return model, corpus_stats(model, seed)


def piano_bias(level: float = -0.5) -> np.ndarray:
    """Decoder output logits of an "average bar" of piano music, ``(2496,)`` float32.

    Sounding: ``level`` around E4, falling with the square of the distance in octaves;
    +0.5 on the notes of the C major chord, -0.5 on the rest of its scale, -2.5 off it.
    Articulated: one less, raised on the beats (+1.5 on 1 and 3, +0.75 on 2 and 4) and
    lowered off the eighths (-1).
    """
    pitch = np.arange(N_PITCHES) + LOWEST_PITCH
    pitch_class = pitch % 12
    colour = np.where(np.isin(pitch_class, (0, 4, 7)), 0.5,
                      np.where(np.isin(pitch_class, (2, 5, 9, 11)), -0.5, -2.5))
    sounding = level + colour - 1.5 * ((pitch - 64) / 12.0) ** 2
    step = np.arange(STEPS_PER_BAR)[:, None]
    on_beat = np.where(step % 8 == 0, 1.5, np.where(step % 4 == 0, 0.75, 0.0))
    off_eighth = np.where(step % 2 == 1, -1.0, 0.0)
    articulated = sounding[None, :] - 1.0 + on_beat + off_eighth
    bias = np.empty(BAR_SHAPE, dtype=np.float32)
    bias[:, 0, :] = sounding[None, :]
    bias[:, 1, :] = articulated
    return bias.reshape(-1)


def tiny_model() -> tuple[InferenceModel, CorpusStats, dict[str, np.ndarray]]:
    config, weights = seeded_weights(TINY_SEED, TINY_HIDDEN, TINY_LATENT)
    # The recipe's decoder swings a logit by ~12 from bar to bar: scaled to ~1.5, answers
    # vary around the average bar of piano_bias instead of drowning it.
    weights["dec_out.weight"] *= TINY_DECODER_SCALE
    weights["dec_out.bias"] = piano_bias()
    model = InferenceModel(config, weights)
    return model, corpus_stats(model, TINY_SEED), weights


def write_tiny_checkpoint(path: str | Path) -> Path:
    """Write the tests' tiny checkpoint (hidden 32, latent 16) with
    :func:`~qbdi.models.checkpoint.save_checkpoint`."""
    model, stats, weights = tiny_model()
    card = ModelCard(corpus="seeded numpy weights (tests/seeded.py)", pieces_train=0,
                     pieces_heldout=0, bars_train=0, bars_heldout=0, epochs=0,
                     seed=TINY_SEED, train_seconds=0.0, command="tests/seeded.py")
    save_checkpoint(path, model.config, card, weights, stats)
    return Path(path)
