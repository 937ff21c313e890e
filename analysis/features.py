"""Chroma features of the analysis: :func:`qbdi.bars.chroma` of checked input, at one of
three time resolutions (a bar, a beat, a sixteenth step)."""

from __future__ import annotations

import numpy as np

from qbdi.analysis.errors import AnalysisInputError
from qbdi.bars import BAR_SHAPE
from qbdi.bars import chroma as bar_chroma

N_PITCH_CLASSES = 12
FRAMES_PER_BAR_CHOICES = (1, 4, 16)  # bar, beat, sixteenth step

def check_bars(bars: np.ndarray) -> np.ndarray:
    """Return ``bars`` as a bool array, or raise :class:`AnalysisInputError` on a bad shape."""
    bars = np.asarray(bars)
    if bars.ndim != 4 or bars.shape[1:] != BAR_SHAPE:
        raise AnalysisInputError(f"bars must have shape (n_bars, 16, 2, 78), got {bars.shape}")
    return bars.astype(bool, copy=False)


def chroma(bars: np.ndarray, frames_per_bar: int) -> np.ndarray:
    """``(n_bars * frames_per_bar, 12)``: sounding steps per pitch class in each frame.

    ``frames_per_bar`` is 16 (steps), 4 (beats) or 1 (bars).
    """
    if frames_per_bar not in FRAMES_PER_BAR_CHOICES:
        raise AnalysisInputError(
            f"frames_per_bar must be one of {FRAMES_PER_BAR_CHOICES}, got {frames_per_bar}"
        )
    return bar_chroma(check_bars(bars), frames_per_bar)
