"""Benchmark the live IR feed (:mod:`qbdi.server.live_ir`): what it costs per bar, and that
it leaves the answers' timing alone.

    python benchmarks/bench_live_ir.py [--bars 2000] [--realtime-bars 40] [--model PATH]

Prints one table:

* threshold: the best threshold (highest total IR) of each shipped query file at beat
  chroma and Tonnetz distance, and their median, next to the default the feed uses;
* hand-off: what the loop thread pays per bar, ``LiveIr.feed`` (copy two bars, enqueue);
* analysis: the worker's time per bar, both sides, over the query bars (repeated) at the
  default window of 256 bars and at 1024 bars, oracles full;
* answer (manual clock): ``Server._answer`` per bar with the feed off and on, and whether
  the MIDI event lists are identical;
* lateness (real time): the live server on an internal clock at 480 BPM in free mode
  (notes in every bar), how late the note-ons go out after their sixteenth and how many
  answers overran, with the feed off, and on with oracles pre-filled to a full default
  window (256 bars) and to a full 1024-bar window (the worker then busy ~4x longer).

Targets: hand-off p99 <= 0.05 ms; answer p99 unchanged within noise; identical events;
lateness p99 with the feed on within 1 ms of off.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from pathlib import Path

import mido
import numpy as np

from qbdi.analysis import analyze
from qbdi.bars import ARTICULATED, LOWEST_PITCH, notes_to_bars
from qbdi.improviser import Improviser
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import default_checkpoint_path, load_checkpoint
from qbdi.presets import load_preset
from qbdi.server.clocks import InternalClock, ManualClock
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.live_ir import IrStream, LiveIr
from qbdi.server.manual import run_until
from qbdi.server.ports import MemoryPorts
from qbdi.server.session import Server
from qbdi.settings import LiveIrSettings, changed

QUERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "queries"


def query_bars() -> list[np.ndarray]:
    return [notes_to_bars(read_midi(path).notes) for path in sorted(QUERIES.glob("*.mid"))]


def stats_ms(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1e3
    return (f"p50 {np.median(ms):7.3f}  p99 {np.percentile(ms, 99):7.3f}  "
            f"max {ms.max():7.3f} ms  (n={len(ms)})")


def bench_thresholds(pieces: list[np.ndarray]) -> list[tuple[str, str]]:
    best = [analyze(bars, frames_per_bar=4)["best_threshold"] for bars in pieces]
    return [("threshold: best per query", " ".join(f"{b:.2f}" for b in best)),
            ("threshold: median / default",
             f"{np.median(best):.3f} / {LiveIrSettings().threshold}")]


def bench_handoff(bars: np.ndarray, n_bars: int) -> list[tuple[str, str]]:
    feed = LiveIr(lambda address, args: None, LiveIrSettings(enabled=True),
                  queue_bars=n_bars + 1)
    times_s = []
    for i in range(n_bars):
        bar = bars[i % len(bars)]
        started_s = time.perf_counter()
        feed.feed(i, bar, bar)
        times_s.append(time.perf_counter() - started_s)
    feed.wait_idle(60.0)
    feed.close()
    return [("hand-off (loop thread)", stats_ms(times_s))]


def bench_analysis(bars: np.ndarray, n_bars: int) -> list[tuple[str, str]]:
    rows = []
    for window_bars in (256, 1024):
        settings = LiveIrSettings(enabled=True, window_bars=window_bars)
        played, answered = IrStream(settings), IrStream(settings)
        for i in range(window_bars):  # fill the window first: the steady state
            played.add(i, bars[i % len(bars)])
            answered.add(i, bars[(i + 7) % len(bars)])
        times_s = []
        for i in range(window_bars, window_bars + n_bars):
            started_s = time.perf_counter()
            played.add(i, bars[i % len(bars)])
            answered.add(i + 1, bars[(i + 7) % len(bars)])
            times_s.append(time.perf_counter() - started_s)
        rows.append((f"analysis per bar, window {window_bars}", stats_ms(times_s)))
    return rows


def timed_server(model: Path, enabled: bool, bars: np.ndarray) -> tuple[list, list[float]]:
    """Play ``bars`` in (one note-on/off per sounding onset) on a manual clock; return the
    sent events and the time of each ``_answer``."""
    clock = ManualClock(120.0)
    ports = MemoryPorts(now=clock.now_steps)
    state = changed(load_preset("default"), tempo_bpm=120.0,
                    improviser={"encoding": "mean", "stats": "corpus"},
                    live_ir={"enabled": enabled})
    improviser = Improviser.from_checkpoint(load_checkpoint(model))
    server = Server(ports, clock, improviser, state, feedback=MemoryFeedback())
    times_s: list[float] = []
    answer = server._answer

    def timed(collected):
        started_s = time.perf_counter()
        answer(collected)
        times_s.append(time.perf_counter() - started_s)

    server._answer = timed
    server.start()
    for index, bar in enumerate(bars):
        for step, column in zip(*np.nonzero(bar[:, ARTICULATED, :]), strict=True):
            at, pitch = index * 16 + int(step), int(column) + LOWEST_PITCH
            run_until(server.loop, at)
            ports.play(mido.Message("note_on", note=pitch, velocity=80))
            server.step()
            run_until(server.loop, at + 0.5)
            ports.play(mido.Message("note_off", note=pitch, velocity=0))
            server.step()
    run_until(server.loop, (len(bars) + 2) * 16)
    server.live_ir.wait_idle(60.0)
    server.shutdown()
    return [(t, m.hex()) for t, m in ports.sent], times_s


def bench_answer(model: Path, bars: np.ndarray) -> list[tuple[str, str]]:
    events_off, off = timed_server(model, False, bars)
    events_on, on = timed_server(model, True, bars)
    return [("answer, feed off (manual clock)", stats_ms(off)),
            ("answer, feed on (manual clock)", stats_ms(on)),
            ("events identical off/on", f"{events_on == events_off} "
                                        f"({len(events_off)} messages)")]


def realtime_lateness(model: Path, window_bars: int | None, n_bars: int,
                      bars: np.ndarray) -> tuple[list[float], int]:
    """Note-on lateness in seconds and overruns; ``window_bars`` None: the feed off."""
    tempo_bpm = 480.0
    clock = InternalClock(tempo_bpm)
    ports = MemoryPorts(now=clock.now_steps)
    live_ir = {"enabled": window_bars is not None, "window_bars": window_bars or 256}
    state = changed(load_preset("default"), tempo_bpm=tempo_bpm,
                    improviser={"mode": "free"}, live_ir=live_ir)
    improviser = Improviser.from_checkpoint(load_checkpoint(model))
    server = Server(ports, clock, improviser, state, feedback=MemoryFeedback())
    for i in range(window_bars or 0):  # a full window: the costliest steady state
        server.live_ir.feed(i - window_bars, bars[i % len(bars)], bars[(i + 7) % len(bars)])
        server.live_ir.wait_idle(60.0)
    stop = threading.Event()
    server.start()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    time.sleep(n_bars * 16 * 60.0 / tempo_bpm / 4)
    stop.set()
    thread.join(5.0)
    step_s = 60.0 / tempo_bpm / 4
    late = [(t - math.floor(t + 1e-9)) * step_s for t, m in ports.sent
            if m.type == "note_on" and m.velocity > 0]
    return late, server.loop.counters.overruns


def bench_realtime(model: Path, n_bars: int, bars: np.ndarray) -> list[tuple[str, str]]:
    rows = []
    for window_bars in (None, 256, 1024):
        late, overruns = realtime_lateness(model, window_bars, n_bars, bars)
        name = "off" if window_bars is None else f"on, window {window_bars} full"
        rows.append((f"lateness 480 BPM, feed {name}",
                     f"{stats_ms(late)}  overruns {overruns}/{n_bars}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--realtime-bars", type=int, default=24)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    model = args.model or default_checkpoint_path()
    pieces = query_bars()
    bars = np.concatenate(pieces)
    rows = bench_thresholds(pieces)
    rows += bench_handoff(bars, args.bars)
    rows += bench_analysis(bars, args.bars)
    rows += bench_answer(model, bars[:48])
    rows += bench_realtime(model, args.realtime_bars, bars)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':{width}s}  value")
    for name, value in rows:
        print(f"{name:{width}s}  {value}")


if __name__ == "__main__":
    main()
