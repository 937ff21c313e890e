"""An oracle that grows one frame at a time, for the live server.

Each :meth:`IncrementalOracle.append` takes the newest frame (a bar's chroma or latent
vector), and returns the IR of that frame and the motif it just completed, if any.

Cost per append: one distance from the new frame to every earlier frame (O(n * d), a
vectorised numpy call: well under a millisecond for a few thousand bars of 500 numbers),
then one oracle step (a short walk down the suffix chain) and O(1) for the IR. Memory
grows by one frame and a few list entries per append.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qbdi.analysis.distances import Metric
from qbdi.analysis.motifs import Motif
from qbdi.analysis.oracle import Oracle, OracleBuilder
from qbdi.analysis.tonnetz import TonnetzNorm, project


@dataclass(frozen=True)
class Step:
    """What one append found.

    ``ir_bits``: the IR of the newest frame, equal to the last value of an offline
    ``ir_over_time`` over all frames so far at the same threshold. ``motif``: a repeat of
    at least ``min_length_frames`` frames that ended at the previous frame and that the
    newest frame did not continue, as (earlier start, this start); None otherwise.
    """

    frame: int
    ir_bits: float
    motif: Motif | None


class IncrementalOracle:
    """A VMO at a fixed threshold, fed one frame at a time (same oracle as offline)."""

    def __init__(
        self,
        threshold: float,
        metric: Metric = "cosine",
        tonnetz_norm: TonnetzNorm = "chroma",
        min_length_frames: int = 2,
    ) -> None:
        self._builder = OracleBuilder(threshold)
        self._metric = metric
        self._tonnetz_norm = tonnetz_norm
        self._min_length_frames = min_length_frames
        # Unit vectors (cosine) or Tonnetz coordinates, rows [0, n) in use; the buffer doubles
        # when full, so an append costs O(n * d) for the distances and amortised O(d) to store.
        self._points = np.empty((0, 0))
        self._n_points = 0
        self._zero = np.zeros(64, dtype=bool)
        # The greedy Compror parse of vmo, kept open at its last block.
        self._block_start = 0
        self._block_open = False
        self._n_new_symbols = 0
        self._n_code_words = 0

    @property
    def n_frames(self) -> int:
        return self._n_points

    def append(self, frame: np.ndarray) -> Step:
        """Add ``frame``; O(n * d) for the distances, O(suffix chain) for the oracle."""
        row = self._distances_to_earlier(np.asarray(frame, dtype=np.float64))
        state = self._builder.add(row)
        return Step(state - 1, self._ir_of_newest(state), self._completed_motif(state))

    def oracle(self) -> Oracle:
        """A snapshot of the oracle so far."""
        return self._builder.oracle()

    def _distances_to_earlier(self, frame: np.ndarray) -> np.ndarray:
        if self._metric == "tonnetz":
            point, is_zero = project(frame, self._tonnetz_norm), False
        else:
            norm = float(np.sqrt(np.dot(frame, frame)))
            point, is_zero = (frame / norm if norm > 0 else frame), norm == 0
        earlier = self._store(point, is_zero)
        if self._metric == "tonnetz":
            diff = earlier - point
            return np.sqrt(np.sum(diff * diff, axis=-1))
        return self._cosine_row(earlier, point)

    def _store(self, point: np.ndarray, is_zero: bool) -> np.ndarray:
        """Append ``point``; return a view of the points before it, ``(n, d)``."""
        n = self._n_points
        if n == len(self._points):
            grown = np.empty((max(64, 2 * n), len(point)))
            if n:
                grown[:n] = self._points[:n]
            self._points = grown
            self._zero = np.resize(self._zero, len(grown))
        self._points[n] = point
        self._zero[n] = is_zero
        self._n_points = n + 1
        return self._points[:n]

    def _cosine_row(self, earlier: np.ndarray, unit: np.ndarray) -> np.ndarray:
        # Same conventions as distances.cosine_matrix; values may differ from a batch
        # matrix in the last bit (a dot product vs a matrix product).
        row = np.clip(1.0 - earlier @ unit, 0.0, 2.0)
        row[row < 1e-12] = 0.0
        n = self._n_points
        zero = self._zero[: n - 1]
        if self._zero[n - 1]:
            row[:] = np.where(zero, 0.0, 1.0)
        else:
            row[zero] = 1.0
        return row

    def _ir_of_newest(self, state: int) -> float:
        """IR of the newest frame under vmo's 'cum' IR, updating the open Compror block."""
        lrs = self._builder.lrs
        frames_in_block = state - 1 - self._block_start
        if self._block_open and lrs[state] >= frames_in_block + 1:
            block_length = frames_in_block + 1  # the repeated block grows by this frame
        else:
            self._block_start = state - 1
            self._n_code_words += 1
            block_length = 1
            # A repeat opens a block later frames may extend; a new symbol is a closed
            # one-frame code word.
            self._block_open = lrs[state] >= 1
            self._n_new_symbols += 0 if self._block_open else 1
        h0 = np.log2(self._n_new_symbols)
        h1 = np.log2(self._n_code_words) / block_length
        return float(max(h0 - h1, 0.0))

    def _completed_motif(self, state: int) -> Motif | None:
        sfx, lrs = self._builder.sfx, self._builder.lrs
        previous = state - 1
        length = lrs[previous] if previous >= 1 else 0
        if length < self._min_length_frames:
            return None
        if sfx[state] == sfx[previous] + 1 and lrs[state] == length + 1:
            return None  # the repeat goes on
        earlier_start = sfx[previous] - length
        this_start = previous - length
        return Motif((earlier_start, this_start), length)
