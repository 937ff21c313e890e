"""Measure the echo guard's two errors through real JACK ports, with outside programs.

    python benchmarks/bench_echo_guard.py [--seconds 60] [--tempo 480]

Each scenario runs the real ``qbdi serve`` (shipped model, ``default`` preset at
``--tempo``) on a JACK dummy-driver server of its own, fed by ``jack_midiseq`` looping a
one-bar clip of four notes at velocity 64 (a DAW clip), with the budget turned by liblo's
``oscsend`` every 0.2 s (0, 16, 64, 256, 1024, full, ...), and a take recorded:

* ``loop``: "qbdi out" connected to "qbdi in" (``jack_connect``), the answers on channel 2
  and the clip on channel 1, so the take's player track tells each echo that reached a
  query (channel 2) from the clip's notes. Echoes that arrived = dropped + reached a query.
* ``loop, one channel``: the same on channel 1 for both, where the guard counts only the
  answer's keys the clip did not strike in the last two bars as evidence. Echoes and the
  clip's notes cannot be told apart afterwards: the share is echoes dropped over notes
  sent (a direct JACK loop returns every note sent, but for the odd one lost in an xrun).
* ``clip, no loop``: no loop, answers and clip both on channel 1 at the same velocity: every
  note dropped is a player's note dropped. Run with the guard ``auto`` and, for comparison,
  ``on`` (the old rule).

Numbers only: one table on stdout. A query's notes are the clip's alone when no echo
reached it; "answers per bar" shows whether the loop changed what was played.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import mido

# The tests' harness for outside programs on a JACK server of one's own.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from jack_session import session
from outside_clients import (
    OscDump,
    oscsend,
    preset_file,
    start_clip,
    start_serve,
)

CLIP = [(0, 60, 2), (4, 64, 2), (8, 67, 2), (12, 72, 2)]
BUDGETS = (0, 16, 64, 256, 1024, "full")
TICKS_PER_STEP = 120  # in a take


def _turn_budget(port: int, stop: threading.Event) -> None:
    for budget in itertools.cycle(BUDGETS):
        if stop.wait(0.2):
            return
        if budget == "full":
            oscsend(port, "/qbdi/bits", "s", "full")
        else:
            oscsend(port, "/qbdi/bits", "i", budget)


def _player_by_bar(take: Path) -> dict[int, dict[int, int]]:
    """Note-ons in the take's player track: bar -> channel -> count."""
    track = next(t for t in mido.MidiFile(take).tracks if t.name == "player")
    ticks, bars = 0, {}
    for message in track:
        ticks += message.time
        if message.type == "note_on" and message.velocity > 0:
            bar = bars.setdefault(int(ticks / TICKS_PER_STEP // 16), {})
            bar[message.channel] = bar.get(message.channel, 0) + 1
    return bars


def run(scenario: str, seconds: float, tempo_bpm: float, guard: str) -> dict:
    loop = scenario.startswith("loop")
    channel = 2 if scenario == "loop" else 1
    folder = Path(tempfile.mkdtemp(prefix="qbdi-echo-"))
    take = folder / "take.mid"
    preset = preset_file(folder, tempo_bpm, playing={"midi_channel": channel,
                                                     "echo_guard": guard})
    with session("echo-bench") as jack:
        dump = OscDump(jack)
        serve = start_serve(jack, preset, dump.port, "--record", str(take))
        start_clip(jack, "clip", tempo_bpm, CLIP)
        jack.connect("clip:out", serve.in_port)
        if loop:
            jack.connect(serve.out_port, serve.in_port)
        stop = threading.Event()
        turner = threading.Thread(target=_turn_budget, args=(serve.osc_port, stop))
        turner.start()
        time.sleep(seconds)
        stop.set()
        turner.join()
        status = dump.status(serve.osc_port)
        serve.stop()
    found = dump.messages("/qbdi/echo/loop")
    bars = [m.args for m in dump.messages("/qbdi/bar")]
    by_bar = _player_by_bar(take)
    echo_channel = 1 if channel == 2 else None
    reached = sum(bar.get(echo_channel, 0) for bar in by_bar.values())
    found_bar = None
    if found:
        before = [m.args[0] for m in dump.messages("/qbdi/bar") if m.t_s < found[0].t_s]
        found_bar = (max(before) + 1) if before else 0
    late = sum(count.get(echo_channel, 0) for bar, count in by_bar.items()
               if found_bar is not None and bar >= found_bar + 1)
    return {"scenario": scenario, "guard": guard, "bars": status["bars"],
            "overruns": status["overruns"], "notes_in": status["notes_in"],
            "dropped": status["echo_notes_dropped"], "reached": reached, "late": late,
            "sent": status["notes_out"],
            "found": [(m.args[0], m.args[1]) for m in found], "found_bar": found_bar,
            "answers_per_bar": statistics.mean(b[4] for b in bars) if bars else 0.0,
            "query_per_bar": statistics.mean(b[3] for b in bars) if bars else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tempo", type=float, default=480.0)
    args = parser.parse_args()
    rows = [run("loop", args.seconds, args.tempo, "auto"),
            run("loop, one channel", args.seconds, args.tempo, "auto"),
            run("clip, no loop", args.seconds, args.tempo, "auto"),
            run("clip, no loop", args.seconds, args.tempo, "on")]
    print(f"{args.seconds:g} s at {args.tempo:g} BPM each, budget turned every 0.2 s\n")
    print("| scenario | guard | bars | overruns | loop reports (1/0, ms) | echoes dropped "
          "| echoes in a query (after found) | share dropped | player notes taken "
          "| player notes dropped | query / answer notes per bar |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(_cells(row)) + " |")


def _cells(row: dict) -> list[str]:
    scenario = row["scenario"]
    loop, split = scenario.startswith("loop"), scenario == "loop"
    arrived = row["dropped"] + row["reached"] if split else row["sent"]
    share = f"{row['dropped'] / arrived:.2%}" if loop and arrived else "-"
    found = f"{row['found']} in bar {row['found_bar']}" if row["found"] else "none"
    return [scenario, row["guard"], str(row["bars"]), str(row["overruns"]), found,
            str(row["dropped"]) if loop else "-",
            f"{row['reached']} ({row['late']})" if split else "-", share,
            str(row["notes_in"] - row["reached"]) if not loop or split else "-",
            "-" if loop else str(row["dropped"]),
            f"{row['query_per_bar']:.2f} / {row['answers_per_bar']:.2f}"]


if __name__ == "__main__":
    main()
