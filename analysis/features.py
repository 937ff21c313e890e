"""Chroma features from bar arrays, at three time resolutions.

Every function takes a ``(n_bars, 16, 2, 78)`` bar array (see :mod:`qbdi.bars`) and returns
float64 duration-weighted pitch-class counts: each *sounding* step of a pitch adds one to
its pitch class in the frame that holds the step. Silent frames are all-zero rows.
"""

from __future__ import annotations

import numpy as np

from qbdi.analysis.errors import AnalysisInputError
from qbdi.bars import BAR_SHAPE, LOWEST_PITCH, N_PITCHES, SOUNDING, STEPS_PER_BAR

N_PITCH_CLASSES = 12
FRAMES_PER_BAR_CHOICES = (1, 4, 16)  # bar, beat, sixteenth step

# (78, 12) one-hot map pitch column -> pitch class; a matmul sums a step's pitches per class.
_PITCH_TO_CLASS = np.eye(N_PITCH_CLASSES)[(np.arange(N_PITCHES) + LOWEST_PITCH) % 12]


def check_bars(bars: np.ndarray) -> np.ndarray:
    """Return ``bars`` as a bool array, or raise :class:`AnalysisInputError` on a bad shape."""
    bars = np.asarray(bars)
    if bars.ndim != 4 or bars.shape[1:] != BAR_SHAPE:
        raise AnalysisInputError(f"bars must have shape (n_bars, 16, 2, 78), got {bars.shape}")
    return bars.astype(bool, copy=False)


def chroma_per_step(bars: np.ndarray) -> np.ndarray:
    """``(n_bars * 16, 12)``: sounding pitch classes of each sixteenth step (0/1 per pitch)."""
    bars = check_bars(bars)
    sounding = bars[:, :, SOUNDING, :].reshape(-1, N_PITCHES).astype(np.float64)
    return sounding @ _PITCH_TO_CLASS


def chroma(bars: np.ndarray, frames_per_bar: int) -> np.ndarray:
    """``(n_bars * frames_per_bar, 12)``: sounding steps per pitch class in each frame.

    ``frames_per_bar`` is 16 (steps), 4 (beats) or 1 (bars).
    """
    if frames_per_bar not in FRAMES_PER_BAR_CHOICES:
        raise AnalysisInputError(
            f"frames_per_bar must be one of {FRAMES_PER_BAR_CHOICES}, got {frames_per_bar}"
        )
    steps = chroma_per_step(bars)  # (n_steps, 12)
    steps_per_frame = STEPS_PER_BAR // frames_per_bar
    return steps.reshape(-1, steps_per_frame, N_PITCH_CLASSES).sum(axis=1)


def chroma_per_beat(bars: np.ndarray) -> np.ndarray:
    """``(n_bars * 4, 12)``: sounding steps per pitch class in each beat."""
    return chroma(bars, 4)


def chroma_per_bar(bars: np.ndarray) -> np.ndarray:
    """``(n_bars, 12)``: sounding steps per pitch class in each bar."""
    return chroma(bars, 1)
