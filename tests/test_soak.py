"""Soak: two hours of music at 240 BPM (60 bars a minute: 7200 bars) without a missed bar,
with the bar count exact and resident memory growing by at most 5 MB after a warm-up.

CI plays twenty minutes on the manual clock (as fast as the loop runs); ``--run-slow`` plays
the two hours on the manual clock, and again on a real clock sped up 60 times (two minutes
of wall time, the loop on its own thread, sleeping between wake-ups as in ``qbdi serve``).
"""

from __future__ import annotations

import threading
import time

import mido
import pytest
from stress_rig import RecordingPorts, rss_kb

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import changed, load_preset
from qbdi.server.clocks import InternalClock, ManualClock
from qbdi.server.loop import Server

TEMPO_BPM = 240.0
BARS = 7200  # 2 h x 60 bars/min
CI_BARS = 1200  # 20 min of music: seconds of wall time
WARMUP_BARS = 400
MAX_GROWTH_KB = 5 * 1024
PHRASE = [(0, 60, 3), (4, 64, 7), (8, 67, 11), (12, 72, 16)]  # (start, pitch, end) steps


def _server(checkpoint, clock) -> tuple[Server, RecordingPorts]:
    state = changed(load_preset("default"), tempo_bpm=TEMPO_BPM,
                    improviser={"mode": "query", "budget_bits": 64},
                    playing={"velocity": "fixed", "fixed_velocity": 80})  # never an echo
    ports = RecordingPorts(clock.now_s)
    improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint), state.improviser)
    server = Server(ports, clock, improviser, state, feedback=None)
    server.start()
    return server, ports


def _manual(checkpoint, bars: int) -> None:
    clock = ManualClock(TEMPO_BPM)
    server, ports = _server(checkpoint, clock)
    baseline_kb = 0
    for bar in range(bars):
        if bar == WARMUP_BARS:
            baseline_kb = rss_kb()
        first = bar * 16
        for start, pitch, end in PHRASE:  # the player: a phrase every bar, transposed
            server.run_until(first + start)
            ports.play(mido.Message("note_on", note=pitch + bar % 12, velocity=90))
            server.run_until(first + end - 0.25)
            ports.play(mido.Message("note_off", note=pitch + bar % 12))
    server.run_until(bars * 16)
    growth_kb = rss_kb() - baseline_kb
    counters = server.counters
    assert counters.bars == bars
    assert counters.skipped_bars == 0 and counters.overruns == 0 and counters.bar_errors == 0
    assert counters.notes_in == bars * len(PHRASE)
    assert growth_kb <= MAX_GROWTH_KB, f"RSS grew {growth_kb} kB over {bars} bars"
    server.shutdown()
    assert ports.recorder.sounding == set() and ports.recorder.double_note_ons == 0
    assert ports.recorder.note_ons > bars  # it played music, not silence


def test_twenty_minutes_at_240_bpm_on_the_manual_clock(tiny_checkpoint):
    _manual(tiny_checkpoint, CI_BARS)


@pytest.mark.slow
def test_two_hours_at_240_bpm_on_the_manual_clock(tiny_checkpoint):
    _manual(tiny_checkpoint, BARS)


@pytest.mark.slow
def test_two_hours_at_240_bpm_on_a_real_clock_60_times_faster(tiny_checkpoint):
    speed = 60.0
    origin_s = time.perf_counter()
    clock = InternalClock(TEMPO_BPM, now_s=lambda: (time.perf_counter() - origin_s) * speed)
    server, ports = _server(tiny_checkpoint, clock)
    stop = threading.Event()
    loop = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    loop.start()
    bar_s = 1.0 / speed  # one bar a second of music at 240 BPM
    baseline_kb = 0
    for bar in range(BARS):
        if bar == WARMUP_BARS:
            baseline_kb = rss_kb()
        for start, pitch, end in PHRASE:
            for step, message in ((start, mido.Message("note_on", note=pitch, velocity=90)),
                                  (end - 0.25, mido.Message("note_off", note=pitch))):
                target_s = origin_s + (bar + step / 16) * bar_s
                time.sleep(max(0.0, target_s - time.perf_counter()))
                ports.play(message)
    time.sleep(2 * bar_s)
    stop.set()
    server.wake()
    loop.join(timeout=5)
    growth_kb = rss_kb() - baseline_kb
    counters = server.counters
    assert counters.skipped_bars == 0 and counters.overruns == 0 and counters.bar_errors == 0
    assert counters.bars >= BARS
    assert growth_kb <= MAX_GROWTH_KB, f"RSS grew {growth_kb} kB"
    assert ports.recorder.sounding == set() and ports.recorder.double_note_ons == 0
