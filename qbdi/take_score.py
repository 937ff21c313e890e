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
from dataclasses import asdict, dataclass
from pathlib import Path

import mido
import numpy as np

from qbdi.bars import STEPS_PER_BAR, STEPS_PER_BEAT, n_bars_for, notes_to_bars
from qbdi.errors import MidiFileError
from qbdi.midifile import read_midi
from qbdi.scoring import agreement

MARKER = re.compile(r"^(?P<mode>\w+), (?:(?P<bits>\d+) bits|full rate)$")


@dataclass(frozen=True, slots=True)
class TakeScore:
    budget_bits: int | str
    bars: int  # answer bars scored at this budget
    chroma_cosine: float
    onset_f1: float

    def as_dict(self) -> dict:
        return asdict(self)


def read_markers(path: Path) -> tuple[list[tuple[float, str, int | str]], float]:
    """The take's ``(step, mode, budget)`` markers in time order, and its length in steps
    (its last event, a silent answer's bar included)."""
    midi = mido.MidiFile(path)
    steps_per_tick = STEPS_PER_BEAT / midi.ticks_per_beat
    markers: list[tuple[float, str, int | str]] = []
    length_steps = 0.0
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            found = MARKER.match(message.text) if message.type == "marker" else None
            if found:
                bits = int(found["bits"]) if found["bits"] else "full"
                markers.append((tick * steps_per_tick, found["mode"], bits))
        length_steps = max(length_steps, tick * steps_per_tick)
    return sorted(markers, key=lambda m: m[0]), length_steps


def settings_per_bar(markers: list[tuple[float, str, int | str]],
                     n_bars: int) -> list[tuple[str, int | str] | None]:
    """``(mode, budget)`` in force at the start of each bar (None before the first marker)."""
    per_bar: list[tuple[str, int | str] | None] = []
    for bar in range(n_bars):
        in_force = [m for m in markers if m[0] <= bar * STEPS_PER_BAR]
        per_bar.append((in_force[-1][1], in_force[-1][2]) if in_force else None)
    return per_bar


def score_take(path: str | Path) -> list[TakeScore]:
    """Per budget, the answers against the bars they answered; budgets in increasing
    order, full rate last. Raises :class:`MidiFileError` naming the file when it is not a
    take (no ``player`` or ``qbdi`` track, no notes, no markers)."""
    path = Path(path)
    player = read_midi(path, track="player").notes
    answers = read_midi(path, track="qbdi").notes
    markers, length_steps = read_markers(path)
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
