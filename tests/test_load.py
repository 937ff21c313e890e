"""Load: 1000 MIDI events/s and 1000 OSC messages/s at once into a server serving on a real
clock, and no bar may miss its deadline (no overrun, no skipped bar, no bar error).

CI runs 3 s; ``--run-slow`` 60 s. The OSC rate limit (``--osc-rate``, default 200/s) is
raised for the load run; a second test checks the limiter's documented behaviour at the
default: bursts of one second's worth, then ``rate_per_s`` a second, the rest dropped and
counted in ``osc_rate_limited``.
"""

from __future__ import annotations

import random
import threading
import time

import mido
import pytest
from stress_rig import live_server

from qbdi.presets import load_preset
from qbdi.settings import changed

RATE_PER_S = 1000


def _load(checkpoint, seconds: float) -> None:
    state = changed(load_preset("default"), tempo_bpm=240.0,
                    improviser={"mode": "query", "budget_bits": 64},
                    playing={"velocity": "fixed", "fixed_velocity": 80})
    with live_server(checkpoint, state, rate_per_s=4 * RATE_PER_S) as live:
        start_bars = live.server.loop.counters.bars

        def midi() -> None:
            rng = random.Random(1)
            t0 = time.perf_counter()
            for i in range(int(seconds * RATE_PER_S) // 2):
                time.sleep(max(0.0, t0 + 2 * i / RATE_PER_S - time.perf_counter()))
                pitch = rng.randrange(36, 96)
                live.ports.play(mido.Message("note_on", note=pitch, velocity=90))
                live.ports.play(mido.Message("note_off", note=pitch))

        player = threading.Thread(target=midi)
        player.start()
        rng = random.Random(2)
        t0 = time.perf_counter()
        sent = 0
        while sent < seconds * RATE_PER_S:
            time.sleep(max(0.0, t0 + sent / RATE_PER_S - time.perf_counter()))
            if sent % 2:
                live.client.send("/qbdi/bits", rng.randrange(0, 512))
            else:
                live.client.send("/qbdi/threshold", rng.uniform(0.3, 0.9))
            sent += 1
        player.join()
        elapsed_s = time.perf_counter() - t0
        counts = live.client.status()
        counters = live.server.loop.counters
        assert live.alive(), live.errors
        assert counters.overruns == 0, f"{counters.overruns} bars missed their deadline"
        assert counters.skipped_bars == 0 and counters.bar_errors == 0
        assert counters.bars - start_bars >= int(elapsed_s) - 1  # a bar a second at 240 BPM
        assert counts["osc_rate_limited"] == 0
        assert live.transport.counters.received >= sent
        assert live.server.loop.player.counters.notes_in >= seconds * RATE_PER_S // 2 * 0.99
        live.server.shutdown()
    assert live.ports.recorder.sounding == set()


@pytest.mark.realtime  # a bar that misses its deadline on a real clock fails it
def test_1000_midi_and_1000_osc_a_second_miss_no_bar(tiny_checkpoint):
    _load(tiny_checkpoint, 3.0)


@pytest.mark.slow
@pytest.mark.realtime
def test_a_minute_of_1000_midi_and_1000_osc_a_second(tiny_checkpoint):
    _load(tiny_checkpoint, 60.0)


@pytest.mark.realtime  # 1000 sends must take well under a second: the bucket refills
def test_the_default_osc_rate_limit_drops_and_counts_the_excess(tiny_checkpoint):
    state = changed(load_preset("default"), improviser={"mode": "mute"})
    with live_server(tiny_checkpoint, state, rate_per_s=200.0) as live:
        for i in range(1000):  # 1000 at once: one second's worth (200) gets through
            live.client.send("/qbdi/seed", i)
        time.sleep(0.3)
        counters = live.transport.counters
        assert counters.rate_limited >= 1000 - 200 - 0.5 * 200
        assert counters.received + counters.rate_limited == 1000
        time.sleep(1.0)  # the bucket refills at 200 a second
        assert live.client.status()["osc_rate_limited"] == counters.rate_limited
        assert live.alive()
