"""Soak: two hours of music at 240 BPM (60 bars a minute: 7200 bars) without a missed bar,
with the bar count exact and resident memory growing by at most 5 MB after a warm-up.

CI plays twenty minutes on the manual clock (as fast as the loop runs), and one minute on a
real clock sped up 60 times; ``--run-slow`` plays the two hours on the manual clock, and
again on the real clock sped up 60 times (two minutes of wall time, the loop on its own
thread, sleeping between wake-ups as in ``qbdi serve``).

What each clock can check:

* The manual clock stops while the loop works, so every answer is ready in time by
  construction: there it checks, exactly, that no bar is skipped, none overruns and none
  fails, the count of bars and notes, the memory and that every note ends.
* The accelerated clock runs while the loop works, so it checks the loop's timing on a real
  thread: no bar skipped (the loop never fell a bar behind, 16.7 ms of wall time at 60x),
  none failed, the bar count and the notes in exact, memory, every note ended. It cannot
  check the deadline: a bar closes half a sixteenth (``close_ahead_steps``) before its end
  to leave the answer time to compute; 31 ms at 240 BPM, but 0.52 ms of wall time at 60x,
  less than an answer takes end to end (about 2 ms here: the model, the notes, scheduling).
  Every answer is late by design at that speed, so overruns are counted and printed, not
  asserted; the deadline in real time is checked by ``test_load`` (a real clock at 1x, under
  load). A speed-up keeping the lead above ~3 ms (10x at most) would take over 12 minutes.
"""
from __future__ import annotations

import gc
import logging
import threading
import time

import mido
import pytest
from stress_rig import RecordingPorts, rss_kb

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server.clocks import InternalClock, ManualClock
from qbdi.server.events import LoopCounters
from qbdi.server.manual import run_until
from qbdi.server.session import Server
from qbdi.settings import changed

TEMPO_BPM = 240.0
BARS = 7200  # 2 h x 60 bars/min
CI_BARS = 1200  # 20 min of music: seconds of wall time
WARMUP_BARS = 400
MAX_GROWTH_KB = 5 * 1024
PHRASE = [(0, 60, 3), (4, 64, 7), (8, 67, 11), (12, 72, 16)]  # (start, pitch, end) steps


def _server(checkpoint, make_clock):
    # Threshold 0.5 pins the note load this test was sized for: the tiny, barely trained
    # model answers ~700 notes a bar there (the shipped model ~10) and ~1250 at the default
    # 0.35, which is tuned to the shipped model and would make bars_to_notes alone outlast
    # the half-sixteenth (0.5 ms) that a bar has at 60x speed.
    state = changed(load_preset("default"), tempo_bpm=TEMPO_BPM,
                    improviser={"mode": "query", "budget_bits": 64, "threshold": 0.5},
                    playing={"velocity": "fixed", "fixed_velocity": 80})  # never an echo
    improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
    clock = make_clock()  # after loading: the real clock starts at bar 0, step 0
    ports = RecordingPorts(clock.now_s)
    server = Server(ports, clock, improviser, state, feedback=None)
    server.start()
    return server, ports, clock


def _manual(checkpoint, bars: int) -> None:
    server, ports, _ = _server(checkpoint, lambda: ManualClock(TEMPO_BPM))
    baseline_kb = 0
    for bar in range(bars):
        if bar == WARMUP_BARS:
            baseline_kb = rss_kb()
        first = bar * 16
        for start, pitch, end in PHRASE:  # the player: a phrase every bar, transposed
            run_until(server.loop, first + start)
            ports.play(mido.Message("note_on", note=pitch + bar % 12, velocity=90))
            run_until(server.loop, first + end - 0.25)
            ports.play(mido.Message("note_off", note=pitch + bar % 12))
    run_until(server.loop, bars * 16)
    growth_kb = rss_kb() - baseline_kb
    counters = server.loop.counters
    assert counters.bars == bars
    assert counters.skipped_bars == 0 and counters.overruns == 0 and counters.bar_errors == 0
    assert server.loop.player.counters.notes_in == bars * len(PHRASE)
    assert growth_kb <= MAX_GROWTH_KB, f"RSS grew {growth_kb} kB over {bars} bars"
    server.shutdown()
    assert ports.recorder.sounding == set() and ports.recorder.double_note_ons == 0
    assert ports.recorder.note_ons > bars  # it played music, not silence


def test_twenty_minutes_at_240_bpm_on_the_manual_clock(tiny_checkpoint):
    _manual(tiny_checkpoint, CI_BARS)


@pytest.mark.slow
def test_two_hours_at_240_bpm_on_the_manual_clock(tiny_checkpoint):
    _manual(tiny_checkpoint, BARS)


class AcceleratedClock(InternalClock):
    """An internal clock whose music time runs ``speed`` times faster than wall time.

    :meth:`seconds_until` answers in wall seconds, since :meth:`Server.serve` sleeps that
    long: plain ``InternalClock(now_s=lambda: speed * wall)`` answers in music seconds and
    the loop oversleeps ``speed`` times (up to ``MAX_WAIT_S``, three bars at 60x), waking
    only on the player's notes: bars closed late and skipped."""

    def __init__(self, tempo_bpm: float, speed: float) -> None:
        origin_s = time.perf_counter()
        self.speed = speed
        self.origin_s = origin_s
        super().__init__(tempo_bpm, now_s=lambda: (time.perf_counter() - origin_s) * speed)

    def seconds_until(self, step: float) -> float:
        return super().seconds_until(step) / self.speed


def _accelerated(checkpoint, speed: float, bars: int) -> LoopCounters:
    # Not the server's own memory or pauses, so kept out of the measurement: the test
    # process's heap (pytest, training the tiny model), which a full collection would scan
    # for ~0.3 s (18 bars at 60x), and the log records pytest keeps of the expected
    # overrun warnings (one a bar: ~9 MB over two hours).
    loop_log = logging.getLogger("qbdi.server.loop")
    level = loop_log.level
    loop_log.setLevel(logging.ERROR)
    gc.collect()
    gc.freeze()
    try:
        return _play_accelerated(checkpoint, speed, bars)
    finally:
        gc.unfreeze()
        loop_log.setLevel(level)


def _play_accelerated(checkpoint, speed: float, bars: int) -> LoopCounters:
    server, ports, clock = _server(checkpoint, lambda: AcceleratedClock(TEMPO_BPM, speed))
    stop = threading.Event()
    loop = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    loop.start()
    bar_s = 1.0 / speed  # wall seconds per bar: a bar is a second of music at 240 BPM
    warmup = min(WARMUP_BARS, bars // 2)  # the CI minute: memory after its first half
    baseline_kb = 0
    for bar in range(bars):
        if bar == warmup:
            baseline_kb = rss_kb()
        for start, pitch, end in PHRASE:
            for step, message in ((start, mido.Message("note_on", note=pitch, velocity=90)),
                                  (end - 0.25, mido.Message("note_off", note=pitch))):
                target_s = clock.origin_s + (bar + step / 16) * bar_s
                time.sleep(max(0.0, target_s - time.perf_counter()))
                ports.play(message)
    # Stop just after bar ``bars - 1`` closed (half a sixteenth before its end) and well
    # before bar ``bars`` closes: exactly ``bars`` bars are due.
    time.sleep(max(0.0, clock.origin_s + (bars + 0.25) * bar_s - time.perf_counter()))
    stop.set()
    server.wake()
    loop.join(timeout=5)
    assert not loop.is_alive()
    growth_kb = rss_kb() - baseline_kb
    counters = server.loop.counters
    assert counters.bar_errors == 0 and counters.skipped_bars == 0, counters
    assert counters.bars == bars, counters
    assert server.loop.player.counters.notes_in == bars * len(PHRASE), counters
    print(f"{speed:g}x, {bars} bars: {counters}, RSS grew {growth_kb} kB")
    assert growth_kb <= MAX_GROWTH_KB, f"RSS grew {growth_kb} kB"
    assert ports.recorder.sounding == set() and ports.recorder.double_note_ons == 0
    return counters


@pytest.mark.slow  # timing-based (a 17 ms stall skips a bar): not for a shared CI runner
@pytest.mark.realtime
def test_a_minute_at_240_bpm_on_a_real_clock_60_times_faster(tiny_checkpoint):
    counters = _accelerated(tiny_checkpoint, 60.0, 60)  # one second of wall time
    assert counters.bars == 60


@pytest.mark.slow
@pytest.mark.realtime
def test_two_hours_at_240_bpm_on_a_real_clock_60_times_faster(tiny_checkpoint):
    _accelerated(tiny_checkpoint, 60.0, BARS)
