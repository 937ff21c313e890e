"""Information rate as a function of the threshold, and over time at the best one.

The sweep builds an oracle per threshold from one shared distance matrix. Each build also
reports the interval of thresholds over which every comparison it made comes out the
same; every threshold of the sweep inside that interval gets the same oracle without a
rebuild (the IR curve has long plateaus). On Linux the builds are shared between this
process and one forked child sweeping from the other end.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

import numpy as np

from qbdi.analysis.oracle import build_lrs, information_rate

# Below this many frames a second process costs more than it saves.
_POOL_MIN_FRAMES = 1000


def default_thresholds(distances: np.ndarray, n_thresholds: int = 200) -> np.ndarray:
    """``n_thresholds`` evenly spaced from 0 to just above the largest earlier-frame
    distance, so the sweep runs from "nothing matches" to "everything matches"."""
    top = max((float(distances[i, :i].max()) for i in range(1, len(distances))), default=0.0)
    return np.linspace(0.0, np.nextafter(top, np.inf), n_thresholds)


def ir_sweep(
    distances: np.ndarray, thresholds: np.ndarray, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds, total_ir_bits)``: the summed IR of the oracle at each threshold.

    ``distances`` is ``(n, n)``; only entries ``[i, j]`` with ``j < i`` are read. The
    totals equal vmo's ``find_threshold`` (``flag='a'``, ``'inc'``, ``ir_type='cum'``)
    exactly for the same distances, whatever ``workers`` is. ``workers`` None: 2 on Linux
    for inputs of 1000 frames or more, else 1; more than 2 is treated as 2.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    order = np.argsort(thresholds, kind="stable")
    ascending = thresholds[order]
    if _two_ended(distances, workers):
        totals_sorted = _sweep_two_ended(distances, ascending)
    else:
        totals_sorted = np.full(len(ascending), np.nan)
        _sweep_sorted(distances, ascending, totals_sorted, reverse=False)
    totals = np.empty_like(thresholds)
    totals[order] = totals_sorted
    return thresholds, totals


def best_threshold(thresholds: np.ndarray, total_ir_bits: np.ndarray) -> float:
    """The threshold of highest total IR (the first one on a tie, as vmo's sort keeps)."""
    return float(np.asarray(thresholds)[int(np.argmax(total_ir_bits))])


def ir_over_time(distances: np.ndarray, threshold: float) -> np.ndarray:
    """``(n_frames,)`` IR in bits of each frame at ``threshold``."""
    lrs, _, _ = build_lrs(distances, threshold)
    return information_rate(lrs)


def _sweep_sorted(
    distances: np.ndarray, ascending: np.ndarray, totals: np.ndarray, reverse: bool
) -> None:
    """Fill the NaN entries of ``totals`` (shared with another sweeper that may fill them
    too, from the other end); each build fills every threshold in its validity interval."""
    indices = range(len(ascending) - 1, -1, -1) if reverse else range(len(ascending))
    for index in indices:
        if not np.isnan(totals[index]):
            continue
        lrs, above, up_to = build_lrs(distances, ascending[index])
        same = (ascending > above) & (ascending <= up_to)
        totals[same] = information_rate(lrs).sum()


def _two_ended(distances: np.ndarray, workers: int | None) -> bool:
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(distances) >= _POOL_MIN_FRAMES else 1
    # fork shares the matrix for free; elsewhere a worker would need a pickled copy.
    return workers >= 2 and sys.platform.startswith("linux")


def _sweep_two_ended(distances: np.ndarray, ascending: np.ndarray) -> np.ndarray:
    """This process sweeps up from the lowest threshold while a forked child sweeps down
    from the highest, through one shared totals array: they meet wherever the work
    balances, and a threshold one has covered the other skips."""
    context = multiprocessing.get_context("fork")
    shared = context.RawArray("d", len(ascending))
    totals = np.frombuffer(shared, dtype=np.float64)
    totals[:] = np.nan
    child = context.Process(target=_sweep_sorted, args=(distances, ascending, totals, True))
    child.start()
    try:
        _sweep_sorted(distances, ascending, totals, reverse=False)
    finally:
        child.join()
    if child.exitcode != 0 or np.isnan(totals).any():
        raise RuntimeError(f"the sweep's worker process failed (exit code {child.exitcode})")
    return totals.copy()
