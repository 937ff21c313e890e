"""Benchmark MIDI control (:mod:`qbdi.server.midi_control`): what a control message costs
the loop thread, and what a fast knob turns into.

    python benchmarks/bench_controls.py [--messages 20000]

Prints one table (manual clock, in-memory ports and feedback, the shipped model):

* route: ``MidiControl.take`` per message for a MIDI clock tick and a note (both passed on
  to the note path), an unbound CC, and a bound CC (queued);
* apply: one knob change applied (the ``/qbdi/bits`` handler: a validated new state, the
  loop's ``apply`` and its listeners, the feedback report);
* flood: a knob sending 1000 CCs a second for 4 s: changes applied, values coalesced, and
  feedback messages sent.

Targets: route p99 <= 0.01 ms; apply p99 <= 0.5 ms; flood <= 20 changes a second.
"""

from __future__ import annotations

import argparse
import time

import mido
import numpy as np

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server.clocks import ManualClock
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.ports import MemoryPorts
from qbdi.server.session import Server
from qbdi.settings import changed


def _server() -> tuple[Server, ManualClock, MemoryFeedback]:
    clock = ManualClock(120.0)
    feedback = MemoryFeedback()
    state = changed(load_preset("default"), improviser={"mode": "echo"})
    server = Server(MemoryPorts(now=clock.now_steps), clock,
                    Improviser.from_checkpoint(load_checkpoint(None)), state, feedback=feedback)
    server.start()
    return server, clock, feedback


def _stats_ms(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1e3
    return f"p50 {np.median(ms):8.4f}  p99 {np.percentile(ms, 99):8.4f}  max {ms.max():8.4f} ms"


def bench_route(messages: int) -> dict[str, list[float]]:
    server, _, _ = _server()
    midi = server.control.midi
    kinds = {"clock tick": mido.Message("clock"),
             "note": mido.Message("note_on", note=60, velocity=90),
             "unbound CC": mido.Message("control_change", control=30, value=5),
             "bound CC": mido.Message("control_change", control=1, value=5)}
    times: dict[str, list[float]] = {}
    for name, message in kinds.items():
        spent = []
        for _ in range(messages):
            started = time.perf_counter()
            midi.take(0.0, message, False)
            spent.append(time.perf_counter() - started)
        times[name] = spent
    return times


def bench_apply(changes: int) -> list[float]:
    server, clock, _ = _server()
    midi = server.control.midi
    spent = []
    for i in range(changes):
        midi.take(clock.now_s(), mido.Message("control_change", control=1, value=i % 126 + 1),
                  False)
        clock.advance_s(0.1)
        started = time.perf_counter()
        midi.flush(clock.now_s())
        spent.append(time.perf_counter() - started)
    return spent


def bench_flood(seconds: int = 4, rate_per_s: int = 1000) -> tuple[int, int, int]:
    server, clock, feedback = _server()
    for i in range(seconds * rate_per_s):
        server.post_midi(mido.Message("control_change", control=1, value=i % 128))
        server.step()
        clock.advance_s(1 / rate_per_s)
    counters = server.control.midi.counters
    return counters.applied, counters.coalesced, len(feedback.addressed("/qbdi/bits"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    print("| what | per message or change |")
    print("|---|---|")
    for name, spent in bench_route(args.messages).items():
        print(f"| route: {name} | {_stats_ms(spent)} |")
    print(f"| apply: one /qbdi/bits change | {_stats_ms(bench_apply(2000))} |")
    applied, coalesced, reported = bench_flood()
    print(f"| flood: 1000 CC/s for 4 s | {applied} changes applied ({applied / 4:.1f}/s), "
          f"{coalesced} values coalesced, {reported} /qbdi/bits sent |")


if __name__ == "__main__":
    main()
