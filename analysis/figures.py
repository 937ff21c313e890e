"""PNG figures like the paper's Figures 4-6, from analysis reports (see report.py).

matplotlib is imported here only, lazily, with the Agg backend, so the rest of the
analysis never needs a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qbdi.bars import HIGHEST_PITCH, LOWEST_PITCH, SOUNDING, STEPS_PER_BAR

MAX_MOTIF_LANES = 12  # more lanes than this would hide the piano roll


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _titles(titles: Sequence[str] | None, n: int) -> list[str]:
    return list(titles) if titles is not None else [f"piece {k + 1}" for k in range(n)]


def plot_motifs(
    reports: Sequence[dict],
    bars_list: Sequence[np.ndarray],
    path: str | Path,
    titles: Sequence[str] | None = None,
) -> Path:
    """Figure 4: one panel per piece, its piano roll with each motif's occurrences drawn
    as bars in a lane above the notes (longest motifs first). Returns the PNG's path."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(reports), 1, figsize=(12, 3 * len(reports)), squeeze=False)
    for ax, report, bars, title in zip(
        axes[:, 0], reports, bars_list, _titles(titles, len(reports)), strict=True
    ):
        _piano_roll(ax, bars)
        _motif_lanes(ax, report)
        ax.set_title(f"{title}: motifs at threshold {report['best_threshold']:.3g}")
    fig.tight_layout()
    return _save(fig, path, plt)


def _piano_roll(ax, bars: np.ndarray) -> None:
    roll = np.asarray(bars, dtype=bool)[:, :, SOUNDING, :].reshape(-1, bars.shape[-1]).T
    ax.imshow(
        roll,
        aspect="auto",
        origin="lower",
        cmap="Greys",
        interpolation="nearest",
        extent=(0, roll.shape[1], LOWEST_PITCH - 0.5, HIGHEST_PITCH + 0.5),
    )
    ax.set_xlabel("sixteenth steps")
    ax.set_ylabel("MIDI pitch")


def _motif_lanes(ax, report: dict) -> None:
    steps_per_frame = STEPS_PER_BAR / report["frames_per_bar"]
    motifs = sorted(report["motifs"], key=lambda m: -m["length_frames"])[:MAX_MOTIF_LANES]
    colours = _pyplot().get_cmap("tab10")
    for lane, motif in enumerate(motifs):
        y = HIGHEST_PITCH + 2 + 2 * lane
        width = motif["length_frames"] * steps_per_frame
        for start in motif["start_frames"]:
            ax.broken_barh([(start * steps_per_frame, width)], (y, 1.6), color=colours(lane % 10))
    ax.set_ylim(LOWEST_PITCH - 0.5, HIGHEST_PITCH + 3 + 2 * max(len(motifs), 1))


def plot_ir_vs_threshold(
    reports: Sequence[dict], path: str | Path, titles: Sequence[str] | None = None
) -> Path:
    """Figure 5: total IR against threshold, one panel per report side by side, the best
    threshold marked. Returns the PNG's path."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(reports), figsize=(4 * len(reports), 3), squeeze=False)
    for ax, report, title in zip(axes[0], reports, _titles(titles, len(reports)), strict=True):
        ax.plot(report["thresholds"], report["total_ir_bits"])
        ax.axvline(report["best_threshold"], color="tab:red", linestyle="--")
        ax.set_title(title)
        ax.set_xlabel(f"threshold ({report['distance']} distance)")
        ax.set_ylabel("total IR (bits)")
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_ir_over_time(
    reports: Sequence[dict], path: str | Path, titles: Sequence[str] | None = None
) -> Path:
    """Figure 6: IR of each frame over time (in bars), one panel per report stacked.
    Returns the PNG's path."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(reports), 1, figsize=(10, 2.5 * len(reports)), squeeze=False)
    for ax, report, title in zip(axes[:, 0], reports, _titles(titles, len(reports)), strict=True):
        ir_bits = np.asarray(report["ir_bits_over_time"])
        bars = np.arange(len(ir_bits)) / report["frames_per_bar"]
        ax.plot(bars, ir_bits, linewidth=0.8)
        ax.set_title(f"{title} (threshold {report['best_threshold']:.3g})")
        ax.set_xlabel("bar")
        ax.set_ylabel("IR (bits)")
    fig.tight_layout()
    return _save(fig, path, plt)


def _save(fig, path: str | Path, plt) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path
