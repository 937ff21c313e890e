"""How closely the live answers of a recorded take followed the player, per bit budget
(``qbdi score --take``): the paper's experiment, measured on a performance.

A take (``qbdi serve --record``) has the player's part (track ``player``), the answers as
sent (track ``qbdi``) and a marker wherever the mode or the budget changed. Live, the answer
to bar *n* sounds during bar *n + 1*, so answer bar *n + 1* is scored against player bar
*n* (:mod:`qbdi.scoring`), in bars where the player played and the mode was ``query``, and
grouped by the budget in force. Where a DAW's clock jumped, the pair that straddles the
jump compares unrelated bars; there is one such pair a jump.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qbdi.bars import STEPS_PER_BAR, STEPS_PER_BEAT, n_bars_for, notes_to_bars
from qbdi.errors import MidiFileError
from qbdi.midifile import load_smf, score_of
from qbdi.scoring import agreement
from qbdi.smf_types import Smf

MARKER = re.compile(r"^(?P<mode>\w+), (?:(?P<bits>\d+) bits|full rate)$")


@dataclass(frozen=True, slots=True)
class TakeScore:
    budget_bits: int | str
    bars: int  # answer bars scored at this budget
    chroma_cosine: float
    onset_f1: float

    def as_dict(self) -> dict:
        return asdict(self)


def read_markers(smf: Smf) -> tuple[list[tuple[float, str, int | str]], float]:
    """The take's ``(step, mode, budget)`` markers in time order, and its length in steps
    (its last event, a silent answer's bar included)."""
    steps_per_tick = STEPS_PER_BEAT / smf.ticks_per_beat
    markers: list[tuple[float, str, int | str]] = []
    for track in smf.tracks:
        for tick, text in track.markers:
            found = MARKER.match(text)
            if found:
                bits = int(found["bits"]) if found["bits"] else "full"
                markers.append((tick * steps_per_tick, found["mode"], bits))
    length_steps = max((t.end_tick for t in smf.tracks), default=0) * steps_per_tick
    return sorted(markers, key=lambda m: m[0]), length_steps


def settings_per_bar(markers: list[tuple[float, str, int | str]],
                     n_bars: int) -> list[tuple[str, int | str] | None]:
    """``(mode, budget)`` in force at the start of each bar (None before the first marker)."""
    per_bar: list[tuple[str, int | str] | None] = []
    for bar in range(n_bars):
        in_force = [m for m in markers if m[0] <= bar * STEPS_PER_BAR]
        per_bar.append((in_force[-1][1], in_force[-1][2]) if in_force else None)
    return per_bar


def score_take(path: str | Path,
               warn: Callable[[str], None] = lambda line: None) -> list[TakeScore]:
    """Per budget, the answers against the bars they answered; budgets in increasing
    order, full rate last. Raises :class:`MidiFileError` naming the file when it is not a
    take (no ``player`` or ``qbdi`` track, no notes, no markers). What reading the file
    skipped goes to ``warn``, a line at a time."""
    path = Path(path)
    smf = load_smf(path)
    player = score_of(smf, path, track="player")
    answers = score_of(smf, path, track="qbdi")
    for line in dict.fromkeys(player.warnings + answers.warnings):
        warn(line)
    player, answers = player.notes, answers.notes
    markers, length_steps = read_markers(smf)
    n_bars = max(n_bars_for(player), n_bars_for(answers), math.ceil(length_steps / STEPS_PER_BAR))
    played, answered = notes_to_bars(player, n_bars), notes_to_bars(answers, n_bars)
    settings = settings_per_bar(markers, n_bars)
    if not any(settings):
        raise MidiFileError(path, "has no mode/budget markers: not a take of qbdi serve "
                                  "--record")
    groups: dict[int | str, list[int]] = {}
    for bar in range(1, n_bars):
        setting = settings[bar]
        if setting is not None and setting[0] == "query" and played[bar - 1].any():
            groups.setdefault(setting[1], []).append(bar)
    rows = []
    for budget in sorted(groups, key=lambda b: (b == "full", b if b != "full" else 0)):
        bars = np.array(groups[budget])
        result = agreement(answered[bars], played[bars - 1])
        rows.append(TakeScore(budget, len(bars), result.chroma_cosine, result.onset_f1))
    return rows


def format_take_table(rows: list[TakeScore]) -> str:
    lines = [f"{'bits':>5} {'bars':>5} {'chroma':>7} {'onsetF1':>8}"]
    lines += [f"{row.budget_bits!s:>5} {row.bars:5d} {row.chroma_cosine:7.3f} "
              f"{row.onset_f1:8.3f}" for row in rows]
    return "\n".join(lines)
