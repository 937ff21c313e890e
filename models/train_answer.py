"""How a trained model answers, measured on its corpus after training
(:class:`~qbdi.models.config.AnswerConfig`): the corpus's register and number of voices, and
decoding biases calibrated so that answers to re-textured held-out bars are as dense as the
corpus; and the held-out bars' answers scored against them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from qbdi.bars import flatten_bars
from qbdi.models.config import AnswerConfig
from qbdi.models.decoding import answer_bars, decode, note_decoding
from qbdi.models.density import calibrate_biases, sounding_per_bar, starts_per_bar, voices_per_step
from qbdi.models.register import centre_octaves, mean_pitch
from qbdi.models.runtime import InferenceModel
from qbdi.models.texture import retexture
from qbdi.scoring import agreement

if TYPE_CHECKING:
    from qbdi.models.train import Split, TrainSettings

DENSITY_TOLERANCE = 0.15
"""Relative error in note starts or sounding cells per bar above which a decoding method's
calibration is taken to have failed (its biases at a bound), and the next is tried."""

FALLBACK_METHODS = {"voices": ("voices", "notes", "cells"), "notes": ("notes", "cells"),
                    "cells": ("cells",)}


def calibrate_answer(runtime: InferenceModel, split: Split, settings: TrainSettings,
                     seed: int = 0) -> AnswerConfig:
    """The corpus's register, voices and pitch range (``runtime``'s), and decoding biases at
    which the answers to the held-out bars, re-textured (:func:`retexture`, every bar), have
    the training bars' note starts and sounding cells per bar: an answer to another texture
    should be as dense as the corpus. (The training bars stand in where no piece is held
    out.)

    A model whose probabilities flicker from step to step (a few epochs on a small corpus)
    can be out of the ``voices`` method's reach (every change of the most probable pitches
    starts a note); the next method of :data:`FALLBACK_METHODS` is then used, and
    ``calibrated_on`` says so."""
    reference = split.train
    targets = {"corpus_starts_per_bar": round(starts_per_bar(reference), 3),
               "corpus_sounding_per_bar": round(sounding_per_bar(reference), 3)}
    centre = float(np.nanmean(mean_pitch(reference))) if settings.centre_register else None
    voices = voices_per_step(reference)
    answer = AnswerConfig(centre_pitch=None if centre is None else round(centre, 3),
                          method=settings.answer_method, min_voices=voices,
                          max_voices=voices, pitch_range=runtime.pitch_range, **targets)
    if settings.answer_method == "threshold":
        return answer
    bars = split.heldout if len(split.heldout) else split.train
    generator = torch.Generator().manual_seed(seed)
    noisy = retexture(torch.from_numpy(bars.astype(np.float32)), 1.0, generator).numpy() > 0.5
    if centre is not None:
        noisy = centre_octaves(noisy, centre)
    logits = runtime.decode_logits(encode_all(runtime, noisy)[0])
    tried = []
    for method in FALLBACK_METHODS[settings.answer_method]:
        params = calibrate_biases(logits, targets["corpus_sounding_per_bar"],
                                  targets["corpus_starts_per_bar"],
                                  note_decoding(answer.model_copy(update={"method": method})))
        decoded = decode(logits, params)
        error = max(abs(starts_per_bar(decoded) / targets["corpus_starts_per_bar"] - 1),
                    abs(sounding_per_bar(decoded) / targets["corpus_sounding_per_bar"] - 1))
        tried.append((error, method, params))
        if error <= DENSITY_TOLERANCE:
            break
    error, method, params = min(tried, key=lambda t: t[0])
    note = "" if method == settings.answer_method else (
        f"; {settings.answer_method} missed the density by {tried[0][0]:.0%}, {method} used")
    return answer.model_copy(update={
        "method": method, "sounding_bias": round(params.sounding_bias, 4),
        "onset_bias": round(params.onset_bias, 4),
        "calibrated_on": f"{len(bars)} held-out bars re-textured (seed {seed}){note}"})


def answer_metrics(runtime: InferenceModel, bars: np.ndarray, answer: AnswerConfig
                   ) -> dict[str, float]:
    """Held-out bars decoded as the model answers (mu, in the corpus's register, by the
    calibrated decoding): chroma cosine and onset F1."""
    if len(bars) == 0:
        return {}
    if answer.centre_pitch is not None:
        bars = centre_octaves(bars, answer.centre_pitch)
    decoded = answer_bars(runtime.decode_logits(encode_all(runtime, bars)[0]), answer)
    score = agreement(decoded, bars)
    return {"heldout_answer_chroma_cosine": round(score.chroma_cosine, 4),
            "heldout_answer_onset_f1": round(score.onset_f1, 4)}


def encode_all(runtime: InferenceModel, bars: np.ndarray, chunk: int = 4096
               ) -> tuple[np.ndarray, np.ndarray]:
    """``mu, logvar`` of ``(n, 16, 2, 78)`` bars, ``chunk`` bars at a time."""
    mus, logvars = [], []
    for start in range(0, len(bars), chunk):
        mu, logvar = runtime.encode(flatten_bars(bars[start : start + chunk]))
        mus.append(mu)
        logvars.append(logvar)
    if not mus:
        return np.zeros((0, runtime.latent_size)), np.zeros((0, runtime.latent_size))
    return np.concatenate(mus), np.concatenate(logvars)
