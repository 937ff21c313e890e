"""Variable Markov Oracle (VMO) over a metric space, and its information rate (IR).

The algorithm is vmo's ``build_oracle(flag='a', suffix_method='inc')`` and its IR is
vmo's ``IR(ir_type='cum', alpha=1)`` -- the defaults of ``vmo.find_threshold`` -- rewritten
so that frames are compared through one precomputed distance matrix shared by every
threshold. States are numbered from 1 (state ``s`` is frame ``s - 1``); state 0 is the
empty prefix. Two frames *match* when their distance is strictly below the threshold.

Guarantee: for the same distances, ``sfx``, ``lrs`` and the IR equal vmo's exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# State 0 has one transition per cluster; past this many a numpy gather beats a loop.
_VECTORISE_ABOVE = 24


@dataclass(frozen=True)
class Oracle:
    """A built oracle. Lists are indexed by state ``0..n_frames``.

    ``sfx[s]``: suffix link (state 0 has none: -1). ``lrs[s]``: length of the longest
    repeated suffix ending at ``s``, in frames. ``trn[s]``: forward transitions.
    ``rsfx[s]``: states whose suffix link is ``s``, ascending. ``symbol[s]``: the cluster
    (0, 1, ...) frame ``s - 1`` was assigned to (-1 for state 0).
    """

    threshold: float
    sfx: list[int]
    lrs: list[int]
    trn: list[list[int]]
    rsfx: list[list[int]]
    symbol: list[int]

    @property
    def n_frames(self) -> int:
        return len(self.lrs) - 1


class OracleBuilder:
    """Grows an oracle one frame at a time; each frame is given as its distance row.

    Cost of :meth:`add`: a walk down the suffix chain, reading one distance per forward
    transition of each state visited (vectorised for state 0, whose transitions are one
    per cluster), plus a dict lookup instead of vmo's scan of reverse suffix links.
    """

    def __init__(self, threshold: float, capacity: int = 64) -> None:
        self.threshold = float(threshold)
        self.sfx: list[int | None] = [None]
        self.lrs: list[int] = [0]
        self.trn: list[list[int]] = [[]]
        self.rsfx: list[list[int]] = [[]]
        self.data: list[int | None] = [None]
        self.n_symbols = 0
        # (suffix target, lrs, symbol before the repeat) -> first such state; replaces
        # vmo's _find_better scan over rsfx[target], which is O(n) per frame for state 0.
        self._first_rsfx: dict[tuple[int, int, int | None], int] = {}
        # Frames (state - 1) reachable from state 0, as an array for one vectorised argmin.
        self._trn0_frames = np.empty(max(capacity, 1), dtype=np.int64)
        self._n_trn0 = 0
        # Every comparison so far came out the same for any threshold in (valid_above,
        # valid_up_to]: the oracle depends on the threshold only through these outcomes.
        self.valid_above = -np.inf
        self.valid_up_to = np.inf

    def add(self, row: np.ndarray) -> int:
        """Add a frame given ``row[j]`` = its distance to frame ``j`` (every earlier j).

        Returns the new state's number. (One flat function: this is the sweep's hot loop,
        and Python call overhead was half its time.)
        """
        sfx, lrs, trn, data = self.sfx, self.lrs, self.trn, self.data
        threshold = self.threshold
        i = len(sfx)
        sfx.append(0)
        lrs.append(0)
        trn.append([])
        self.rsfx.append([])
        self._link(i - 1, i)
        k, pi_1, candidate = sfx[i - 1], i - 1, 0
        while k is not None:
            if k == 0 and self._n_trn0 > _VECTORISE_ABOVE:
                distances = row[self._trn0_frames[: self._n_trn0]]
                j = int(distances.argmin())
                best_state, best = int(self._trn0_frames[j]) + 1, distances[j]
            else:
                best_state, best = -1, np.inf
                for state in trn[k]:
                    d = row[state - 1]
                    if d < best:  # strict: ties keep the first, as np.argmin does
                        best_state, best = state, d
            if best < threshold:
                candidate = best_state
                if best > self.valid_above:
                    self.valid_above = best
                break
            if best < self.valid_up_to:
                self.valid_up_to = best
            self._link(k, i)
            pi_1, k = k, sfx[k]
        if k is None:
            data.append(self.n_symbols)
            self.n_symbols += 1
        else:
            sfx[i] = candidate
            lrs[i] = self._common_suffix(pi_1, candidate - 1) + 1
            data.append(data[candidate])
        # vmo's _find_better: the first state already linked to sfx[i] whose repeat has the
        # same length and is preceded by the same symbol gives a repeat one frame longer.
        better = self._first_rsfx.get((sfx[i], lrs[i], data[i - lrs[i]]))
        if better is not None:
            lrs[i] += 1
            sfx[i] = better
        self.rsfx[sfx[i]].append(i)
        self._first_rsfx.setdefault((sfx[i], lrs[i], data[i - lrs[i]]), i)
        return i

    def _link(self, source: int, target: int) -> None:
        self.trn[source].append(target)
        if source == 0:
            if self._n_trn0 == len(self._trn0_frames):
                self._trn0_frames = np.resize(self._trn0_frames, 2 * self._n_trn0)
            self._trn0_frames[self._n_trn0] = target - 1
            self._n_trn0 += 1

    def _common_suffix(self, p1: int, p2: int) -> int:
        sfx, lrs = self.sfx, self.lrs
        if p2 == sfx[p1]:
            return lrs[p1]
        while sfx[p2] != sfx[p1] and p2 != 0:
            p2 = sfx[p2]
        return min(lrs[p1], lrs[p2])

    def oracle(self) -> Oracle:
        """A snapshot of the oracle so far (lists are copied)."""
        return Oracle(
            threshold=self.threshold,
            sfx=[-1, *self.sfx[1:]],
            lrs=list(self.lrs),
            trn=[list(t) for t in self.trn],
            rsfx=[list(r) for r in self.rsfx],
            symbol=[-1, *self.data[1:]],
        )


def build_oracle(distances: np.ndarray, threshold: float) -> Oracle:
    """Build the oracle of ``n`` frames from their ``(n, n)`` distance matrix."""
    builder = OracleBuilder(threshold, capacity=len(distances))
    for frame in range(len(distances)):
        builder.add(distances[frame])
    return builder.oracle()


def build_lrs(distances: np.ndarray, threshold: float) -> tuple[list[int], float, float]:
    """``lrs`` of the oracle at ``threshold``, and the interval ``(above, up_to]`` of
    thresholds that build exactly the same oracle from these distances."""
    builder = OracleBuilder(threshold, capacity=len(distances))
    for frame in range(len(distances)):
        builder.add(distances[frame])
    return builder.lrs, builder.valid_above, builder.valid_up_to


def encode(lrs: list[int]) -> list[int]:
    """vmo's Compror code-word lengths: 0 for a new frame, L for a repeated block of L."""
    n = len(lrs) - 1
    lengths = []
    j = 0
    while j < n:
        i = j
        while i < n and lrs[i + 1] >= i - j + 1:
            i += 1
        if i == j:
            i += 1
            lengths.append(0)
        else:
            lengths.append(i - j)
        j = i
    return lengths


def information_rate(lrs: list[int]) -> np.ndarray:
    """IR per frame in bits, ``(n_frames,)``, >= 0: vmo's ``IR(ir_type='cum')``.

    ``h0`` = log2 of the number of new symbols so far, ``h1`` = log2 of the number of code
    words so far divided by the length of the block the frame sits in; IR = max(h0 - h1, 0).
    """
    n = len(lrs) - 1
    new_symbol = np.zeros(n)
    code_word = np.zeros(n)
    block_length = np.zeros(n)
    j = 0
    for length in encode(lrs):
        code_word[j] = 1
        if length == 0:
            new_symbol[j] = 1
            block_length[j] = 1
            j += 1
        else:
            block_length[j : j + length] = length
            j += length
    h0 = np.log2(np.cumsum(new_symbol))
    h1 = np.log2(np.cumsum(code_word)) / block_length
    ir = h0 - h1
    ir[ir < 0] = 0
    return ir
