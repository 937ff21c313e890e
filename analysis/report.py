"""One call from bars (and optional latents) to a JSON-serialisable analysis report.

The report's schema is :class:`AnalysisReport`; ``analyze`` returns
``AnalysisReport.model_dump()``, a dict of plain lists, numbers and strings.
Units are in the key names: ``_frames`` counts analysis frames, ``_bits`` is IR in bits;
a threshold is in units of the distance (Tonnetz or cosine).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from qbdi.analysis.distances import Metric, distance_matrix
from qbdi.analysis.errors import AnalysisInputError
from qbdi.analysis.features import check_bars, chroma
from qbdi.analysis.motifs import find_motifs
from qbdi.analysis.oracle import build_oracle, information_rate
from qbdi.analysis.sweep import best_threshold, default_thresholds, ir_sweep
from qbdi.analysis.tonnetz import TonnetzNorm

SCHEMA_VERSION = 1
Feature = Literal["chroma", "latent"]


class MotifReport(BaseModel):
    """A repeated segment: ``length_frames`` long, starting at each of ``start_frames``."""

    model_config = ConfigDict(extra="forbid")
    start_frames: list[int]
    length_frames: int = Field(ge=1)
    count: int = Field(ge=2)


class AnalysisReport(BaseModel):
    """The analysis of one piece (the schema of :func:`analyze`'s result).

    Frame ``f`` covers bar ``f // frames_per_bar``. ``thresholds`` and ``total_ir_bits``
    are the sweep (same length); ``ir_bits_over_time`` has one value per frame, at
    ``best_threshold``; motifs are those at ``best_threshold``.
    """

    model_config = ConfigDict(extra="forbid")
    schema_version: int = SCHEMA_VERSION
    feature: Feature
    distance: Metric
    tonnetz_norm: TonnetzNorm | None
    frames_per_bar: int = Field(ge=1)
    n_bars: int = Field(ge=0)
    n_frames: int = Field(ge=2)
    thresholds: list[float]
    total_ir_bits: list[float]
    best_threshold: float
    best_total_ir_bits: float
    ir_bits_over_time: list[float]
    min_length_frames: int = Field(ge=1)
    min_count: int = Field(ge=2)
    motifs: list[MotifReport]


def analyze(
    bars: np.ndarray | None,
    latents: np.ndarray | None = None,
    feature: Feature = "chroma",
    *,
    frames_per_bar: int = 4,
    thresholds: np.ndarray | None = None,
    n_thresholds: int = 200,
    tonnetz_norm: TonnetzNorm = "chroma",
    min_length_frames: int = 2,
    min_count: int = 2,
    workers: int | None = None,
) -> dict:
    """Sweep the threshold, keep the one of highest total IR, report IR and motifs there.

    ``feature="chroma"``: chroma of ``bars`` at ``frames_per_bar`` (16, 4 or 1) with the
    Tonnetz distance. ``feature="latent"``: the ``(n_bars, d)`` ``latents``, one frame per
    bar, with the cosine distance (``bars`` may be None; if given, its length must match).
    Raises :class:`AnalysisInputError` (a ``ValueError``) for fewer than two frames,
    all-silent input, non-finite latents or bad shapes. Never returns NaN.
    """
    frames, metric, frames_per_bar, n_bars = _frames(bars, latents, feature, frames_per_bar)
    distances = distance_matrix(frames, metric, tonnetz_norm, lower_only=True)
    if thresholds is None:
        thresholds = default_thresholds(distances, n_thresholds)
    thresholds, totals = ir_sweep(distances, thresholds, workers)
    best = best_threshold(thresholds, totals)
    oracle = build_oracle(distances, best)
    motifs = find_motifs(oracle, min_length_frames, min_count)
    report = AnalysisReport(
        feature=feature,
        distance=metric,
        tonnetz_norm=tonnetz_norm if metric == "tonnetz" else None,
        frames_per_bar=frames_per_bar,
        n_bars=n_bars,
        n_frames=len(frames),
        thresholds=thresholds.tolist(),
        total_ir_bits=totals.tolist(),
        best_threshold=best,
        best_total_ir_bits=float(totals.max()),
        ir_bits_over_time=information_rate(oracle.lrs).tolist(),
        min_length_frames=min_length_frames,
        min_count=min_count,
        motifs=[
            MotifReport(
                start_frames=list(m.start_frames), length_frames=m.length_frames, count=m.count
            )
            for m in motifs
        ],
    )
    return report.model_dump()


def _frames(
    bars: np.ndarray | None, latents: np.ndarray | None, feature: Feature, frames_per_bar: int
) -> tuple[np.ndarray, Metric, int, int]:
    """``(frames, metric, frames_per_bar, n_bars)``, after every input check."""
    if feature == "chroma":
        if bars is None:
            raise AnalysisInputError("feature='chroma' needs bars, got None")
        frames = chroma(check_bars(bars), frames_per_bar)
        _check_frames(frames, "bars")
        return frames, "tonnetz", frames_per_bar, len(bars)
    if feature == "latent":
        if latents is None:
            raise AnalysisInputError("feature='latent' needs latents, got None")
        frames = np.asarray(latents, dtype=np.float64)
        if frames.ndim != 2:
            raise AnalysisInputError(f"latents must be (n_bars, d), got shape {frames.shape}")
        if bars is not None and len(check_bars(bars)) != len(frames):
            raise AnalysisInputError(f"{len(bars)} bars but {len(frames)} latent vectors")
        if not np.isfinite(frames).all():
            raise AnalysisInputError("latents contain NaN or infinity")
        _check_frames(frames, "latents")
        return frames, "cosine", 1, len(frames)
    raise AnalysisInputError(f"feature must be 'chroma' or 'latent', got {feature!r}")


def _check_frames(frames: np.ndarray, what: str) -> None:
    if len(frames) == 0:
        raise AnalysisInputError(f"no {what} to analyse: the input is empty")
    if len(frames) == 1:
        raise AnalysisInputError(f"one frame of {what} is too short to find any repetition")
    if not frames.any():
        raise AnalysisInputError(f"the {what} are all silent (every frame is zero)")
