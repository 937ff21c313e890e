"""How closely one sequence of bars follows another: pure numpy, no I/O.

Used for the default model's held-out metrics and for the channel's musical acceptance
(an improvisation scored against its query, bar by bar).

* **onset F1**: notes match when pitch and start step (within the bar) are equal; a note
  sounding at step 0 without an articulation (held over the barline) counts as an onset of
  that bar, so each bar is scored on its own.
* **frame F1**: over the 2496 binary features of each bar.
* **chroma cosine**: cosine of the duration-weighted pitch-class profiles of two bars; two
  silent bars agree (1.0), a silent and a sounding bar do not (0.0). The summary is the
  mean over the bars where the reference sounds (silent reference bars would inflate it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qbdi.bars import ARTICULATED, SOUNDING, chroma_per_bar


@dataclass(frozen=True, slots=True)
class Agreement:
    onset_f1: float
    frame_f1: float
    chroma_cosine: float
    bars: int

    def as_dict(self) -> dict[str, float | int]:
        return {"onset_f1": self.onset_f1, "frame_f1": self.frame_f1,
                "chroma_cosine": self.chroma_cosine, "bars": self.bars}


def onsets(bars: np.ndarray) -> np.ndarray:
    """``(n, 16, 78)`` bool: where a note starts, counting notes held into a bar at step 0."""
    bars = np.asarray(bars, dtype=bool)
    on = bars[:, :, SOUNDING, :] | bars[:, :, ARTICULATED, :]
    starts = bars[:, :, ARTICULATED, :].copy()
    starts[:, 0, :] |= on[:, 0, :]
    starts[:, 1:, :] |= on[:, 1:, :] & ~on[:, :-1, :]
    return starts


def f1(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Micro F1 of two boolean arrays; 1.0 when both are empty."""
    true_positive = np.count_nonzero(predicted & reference)
    total = np.count_nonzero(predicted) + np.count_nonzero(reference)
    return 1.0 if total == 0 else 2.0 * true_positive / total


def chroma_cosines(bars_a: np.ndarray, bars_b: np.ndarray) -> np.ndarray:
    """Per-bar chroma cosine, ``(n,)``, with the silent-bar convention above."""
    a, b = chroma_per_bar(bars_a), chroma_per_bar(bars_b)
    norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_silent = (norm_a == 0) & (norm_b == 0)
    denominator = np.where(norm_a * norm_b > 0, norm_a * norm_b, 1.0)
    cosine = np.where(norm_a * norm_b > 0, (a * b).sum(axis=1) / denominator, 0.0)
    return np.where(both_silent, 1.0, cosine)


def agreement(output_bars: np.ndarray, reference_bars: np.ndarray) -> Agreement:
    """Score ``output_bars`` against ``reference_bars``, bar i against bar i."""
    output_bars = np.asarray(output_bars, dtype=bool)
    reference_bars = np.asarray(reference_bars, dtype=bool)
    if output_bars.shape != reference_bars.shape:
        raise ValueError(f"shapes differ: {output_bars.shape} vs {reference_bars.shape}")
    sounding = chroma_per_bar(reference_bars).sum(axis=1) > 0
    cosines = chroma_cosines(output_bars, reference_bars)[sounding]
    return Agreement(
        onset_f1=f1(onsets(output_bars), onsets(reference_bars)),
        frame_f1=f1(output_bars, reference_bars),
        chroma_cosine=float(cosines.mean()) if len(cosines) else 1.0,
        bars=len(output_bars),
    )
