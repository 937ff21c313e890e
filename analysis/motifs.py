"""Repeated patterns (motifs) of an oracle: vmo's ``find_repeated_patterns``, rewritten.

A motif is a segment of frames that the oracle found repeated: its length in frames and
the start frame of each occurrence. Results equal vmo's
``find_repeated_patterns(oracle, lower=min_length_frames - 1)`` (vmo gives end states;
start frame = end state - length), then filtered by length and count: vmo can return a
pattern shorter than asked for where it cuts two overlapping occurrences apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from qbdi.analysis.oracle import Oracle


@dataclass(frozen=True)
class Motif:
    """``length_frames`` frames repeated at each of ``start_frames`` (ascending, 0-based)."""

    start_frames: tuple[int, ...]
    length_frames: int

    @property
    def count(self) -> int:
        return len(self.start_frames)


def find_motifs(oracle: Oracle, min_length_frames: int = 2, min_count: int = 2) -> list[Motif]:
    """Motifs at least ``min_length_frames`` long occurring at least ``min_count`` times.

    Order: as vmo finds them, scanning from the end of the piece backwards.
    """
    patterns = _repeated_patterns(oracle, lower=max(min_length_frames - 1, 0))
    motifs = []
    for end_states, length in patterns:
        starts = tuple(sorted({state - length for state in end_states}))
        if length >= min_length_frames and len(starts) >= min_count:
            motifs.append(Motif(starts, int(length)))
    return motifs


def _repeated_patterns(oracle: Oracle, lower: int) -> list[list]:
    """``[[end_states, length], ...]``, step for step as vmo's find_repeated_patterns."""
    sfx, lrs, rsfx = oracle.sfx, oracle.lrs, oracle.rsfx
    patterns: list[list] = []
    previous_sfx = -1
    for i in range(oracle.n_frames, lower + 1, -1):  # from the end backwards
        target = sfx[i]
        if not (target != 0 and lrs[i] > lower):
            previous_sfx = -1
            continue
        found = _extend_existing(patterns, i, target, lrs[i])
        if previous_sfx - target != 1 and not found:
            _start_new(patterns, i, target, lrs, rsfx[i], lower)
        previous_sfx = target
    return patterns


def _extend_existing(patterns: list[list], i: int, target: int, repeat_length: int) -> bool:
    """Add ``i`` to the first pattern that holds ``target`` and has no occurrence
    overlapping ``i``; say whether one did."""
    for pattern in patterns:
        ends, length = pattern
        if any(end - length < i < end for end in ends):
            continue
        if target in ends:
            ends.append(i)
            pattern[1] = min(length, repeat_length)
            return True
    return False


def _start_new(
    patterns: list[list], i: int, target: int, lrs: list[int], linked: list[int], lower: int
) -> None:
    if linked:
        ends = [*linked, i, target]
        length = min(lrs[state] for state in ends[:-1])
        if i - length + 1 < target:  # the occurrences would overlap: cut at the target
            length = i - target
        if length > lower:
            patterns.append([ends, length])
    elif i - lrs[i] + 1 < target:
        patterns.append([[i, target], i - target])
    else:
        patterns.append([[i, target], lrs[i]])
