"""Drawing the terminal view from a :class:`~qbdi.server.view_feed.ViewFeed`: plain
functions of the snapshots, so a test can draw one without a terminal.

The view shows: tempo and the position in the bar, mode, a bits meter, compute time,
notes in and out, overruns, the live IR (when ``/qbdi/ir/enable 1``), the last bar played
and its answer as a tiny piano roll (one column a sixteenth, two pitch bands a row), what
was refused or dropped, the last error, and the keys.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
from rich.console import Group
from rich.text import Text

from qbdi.bars import STEPS_PER_BAR
from qbdi.server.clocks import steps_per_s
from qbdi.server.view_feed import ViewFeed
from qbdi.settings import MODES

LOWEST_PITCH = 24  # the bar codec's pitch 0
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
ROLL_ROWS = 5  # rows of the piano roll (two pitch bands each)
METER_CELLS = 24
METER_TOP_BITS = 4096  # the meter is logarithmic up to here; "full" fills it
EXTRAPOLATE_MAX_S = 0.25  # the bar position is extrapolated from the last snapshot so long
ERROR_SHOWN_S = 30.0
BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄"}
KEYS_HELP = ("p panic · m mode · ↑/+ bits up · ↓/- bits down · l learn · q quit")


def note_name(midi: int) -> str:
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def bits_meter(budget: int | str, cells: int = METER_CELLS) -> str:
    """A bar of ``cells`` characters, logarithmic in the budget (0 empty, "full" full)."""
    if budget == "full":
        filled = cells
    else:
        fraction = math.log2(int(budget) + 1) / math.log2(METER_TOP_BITS + 1)
        filled = round(min(fraction, 1.0) * cells)
    return "█" * filled + "░" * (cells - filled)


def piano_roll(played: np.ndarray | None, answer: np.ndarray | None,
               rows: int = ROLL_ROWS) -> list[str]:
    """Rows of text: the bar played, then its answer, 16 columns each (a column a
    sixteenth, a dot on each beat when silent); the pitch range of both, highest first,
    split into ``2 * rows`` bands drawn with half blocks. Labels name each row's top pitch."""
    bars = [b if b is not None else np.zeros((STEPS_PER_BAR, 78), bool)
            for b in (played, answer)]
    pitches = np.flatnonzero(bars[0].any(axis=0) | bars[1].any(axis=0))
    if pitches.size == 0:
        return ["     " + _silent_columns() + "   " + _silent_columns()]
    low, high = int(pitches[0]), int(pitches[-1])
    per_band = max(1, math.ceil((high - low + 1) / (2 * rows)))
    n_rows = math.ceil((high - low + 1) / (2 * per_band))
    lines = []
    for row in range(n_rows):
        top_band = high - 2 * row * per_band  # pitches [top_band - per_band + 1, top_band]
        cells = [_roll_cells(bar, top_band, per_band, low) for bar in bars]
        lines.append(f"{note_name(top_band + LOWEST_PITCH):>4} {cells[0]}   {cells[1]}")
    return lines


def _silent_columns() -> str:
    return "".join("·" if step % 4 == 0 else " " for step in range(STEPS_PER_BAR))


def _roll_cells(bar: np.ndarray, top: int, per_band: int, low: int) -> str:
    def band(high_pitch: int) -> np.ndarray:
        lo = max(high_pitch - per_band + 1, low, 0)
        if high_pitch < lo:
            return np.zeros(STEPS_PER_BAR, bool)
        return bar[:, lo : high_pitch + 1].any(axis=1)

    upper, lower = band(top), band(top - per_band)
    return "".join(BLOCKS.get((bool(u), bool(d)), "·" if step % 4 == 0 else " ")
                   for step, (u, d) in enumerate(zip(upper, lower, strict=True)))


def position_text(feed: ViewFeed, now_s: float) -> str:
    """``bar 12  ●●○○  ██████░░░░░░░░░░``: the bar and beat the clock is in."""
    position = feed.position
    if position is None:
        return "bar -"
    ahead_s = min(max(now_s - position.at_s, 0.0), EXTRAPOLATE_MAX_S)
    steps = position.now_steps + ahead_s * steps_per_s(position.tempo_bpm)
    bar, step = divmod(max(steps, 0.0), STEPS_PER_BAR)
    beat = int(step // 4)
    beats = "".join("●" if b <= beat else "○" for b in range(4))
    sweep = "█" * (int(step) + 1) + "░" * (STEPS_PER_BAR - int(step) - 1)
    return f"bar {int(bar):5d}  {beats}  {sweep}"


def _ir_text(values: tuple[int, tuple[float, ...]] | None) -> str:
    if values is None:
        return "-"
    return " ".join(f"{v:4.1f}" for v in values[1])


def _counts_text(counts: Sequence[object]) -> str:
    pairs = dict(zip(counts[::2], counts[1::2], strict=False))
    shown = [f"{name.replace('_', ' ')} {value}" for name, value in pairs.items() if value]
    return " · ".join(shown) if shown else "nothing refused or dropped"


def render(feed: ViewFeed, title: str, counts: Sequence[object] = (),
           note: str = "", now_s: float | None = None) -> Group:
    """The whole view, from the feed's snapshots as they are now."""
    now_s = time.monotonic() if now_s is None else now_s
    state, bar = feed.state, feed.bar
    settings = state.improviser
    tempo = feed.position.tempo_bpm if feed.position is not None else state.tempo_bpm
    head = Text.assemble((f"{title} ", "bold"), f"{tempo:6.1f} BPM  ",
                         position_text(feed, now_s), "   mode ",
                         (f"{settings.mode}", "bold cyan"))
    bits = Text.assemble("bits ", (f"{settings.budget_bits!s:>5} ", "bold"),
                         (bits_meter(settings.budget_bits), "green"),
                         f"   threshold {settings.threshold:g}")
    if bar is None:
        numbers = Text("waiting for the first bar")
        roll = piano_roll(None, None)
    else:
        r = bar.report
        numbers = Text.assemble(
            f"compute {r.compute_ms:6.2f} ms  dims {r.dims_with_bits:3d}  ",
            f"notes in {bar.notes_in_total} out {bar.notes_out_total}  ",
            ("overruns ", ""), (f"{r.overruns}", "bold red" if r.overruns else ""))
        roll = piano_roll(bar.played, bar.answer)
    ir = Text(f"live IR (bits/beat)  in {_ir_text(feed.ir_in)}   out {_ir_text(feed.ir_out)}"
              if state.live_ir.enabled else "live IR off (/qbdi/ir/enable 1)", style="dim")
    lines = [head, bits, numbers, ir, Text("      played" + " " * 13 + "answer", style="dim")]
    lines += [Text(line) for line in roll]
    lines.append(Text(_counts_text(counts), style="dim"))
    error = feed.last_error
    if error is not None and now_s - error[0] <= ERROR_SHOWN_S:
        lines.append(Text(f"last error: {error[1][:200]}", style="bold red"))
    lines.append(Text(f"keys: {KEYS_HELP}" + (f"   [{note}]" if note else ""), style="dim"))
    return Group(*lines)


def next_mode(mode: str) -> str:
    return MODES[(MODES.index(mode) + 1) % len(MODES)] if mode in MODES else MODES[0]
