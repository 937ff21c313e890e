"""Clocks: the internal tempo clock, the manual clock, and following a DAW's MIDI clock."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server.clocks import InternalClock, ManualClock, ManualTime, MidiClockFollower
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.ports import MemoryPorts
from qbdi.server.recorder import NoteRecorder
from qbdi.server.session import Server
from qbdi.settings import changed

TICK_S = 0.01  # 24 ppqn at 250 BPM


def test_internal_clock_counts_sixteenths_and_keeps_position_over_tempo_changes():
    time = ManualTime()
    clock = InternalClock(120.0, time)  # 8 sixteenths a second
    time.t_s = 1.0
    assert clock.now_steps() == pytest.approx(8.0)
    clock.set_tempo(60.0)
    assert clock.now_steps() == pytest.approx(8.0)
    time.t_s = 2.0
    assert clock.now_steps() == pytest.approx(12.0)
    assert clock.seconds_until(16.0) == pytest.approx(1.0)


def test_manual_clock_reads_exactly_the_step_it_was_set_to_and_never_goes_back():
    clock = ManualClock(97.0)
    clock.set_step(15.5)
    assert clock.now_steps() == 15.5
    with pytest.raises(ValueError, match="does not go back"):
        clock.set_step(3)


def _feed(clock: MidiClockFollower, time: ManualTime, message: str, **kwargs) -> None:
    clock.feed(time.t_s, mido.Message(message, **kwargs))


def test_midi_clock_follower_counts_ticks_and_interpolates_between_them():
    time = ManualTime()
    clock = MidiClockFollower(time)
    assert not clock.running
    _feed(clock, time, "start")
    for tick in range(13):  # the first clock after Start is position 0
        time.t_s = tick * TICK_S
        _feed(clock, time, "clock")
    assert clock.now_steps() == pytest.approx(2.0)  # 12 ticks = 2 sixteenths
    time.t_s += TICK_S / 2
    assert clock.now_steps() == pytest.approx(2.0 + 0.5 / 6)
    time.t_s += 5 * TICK_S  # no tick arrived: never runs past the next one
    assert clock.now_steps() == pytest.approx(2.0 + 1 / 6)
    assert clock.tempo_bpm == pytest.approx(250.0)


def test_midi_clock_tempo_holds_through_arrival_jitter_and_follows_a_change_within_a_beat():
    """Ticks at 250 BPM that each arrive 0-3 ms late (a JACK period is 2.7 ms): from the
    second beat on, every estimate is within 2 % of 250. Then the DAW halves its tempo: one
    beat later the estimate is the new tempo."""
    time = ManualTime()
    clock = MidiClockFollower(time)
    _feed(clock, time, "start")
    late_s = np.random.default_rng(5).uniform(0.0, 0.003, 200)
    estimates = []
    for tick in range(200):
        time.t_s = tick * TICK_S + late_s[tick]
        _feed(clock, time, "clock")
        estimates.append(clock.tempo_bpm)
    assert estimates[48:] == pytest.approx([250.0] * 152, rel=0.02)
    for tick in range(25):  # a beat at 125 BPM, on time
        time.t_s = 199 * TICK_S + late_s[199] + (tick + 1) * 2 * TICK_S
        _feed(clock, time, "clock")
    assert clock.tempo_bpm == pytest.approx(125.0)


def test_midi_clock_stop_song_position_and_continue():
    time = ManualTime()
    clock = MidiClockFollower(time)
    _feed(clock, time, "start")
    _feed(clock, time, "clock")
    epoch = clock.epoch
    _feed(clock, time, "stop")
    assert not clock.running
    _feed(clock, time, "songpos", pos=32)  # two bars in
    _feed(clock, time, "continue")
    assert clock.running and clock.epoch > epoch
    time.t_s = 1.0
    _feed(clock, time, "clock")
    assert clock.now_steps() == 32.0
    _feed(clock, time, "clock")
    assert clock.now_steps() == pytest.approx(32 + 1 / 6)


def test_the_server_follows_midi_clock_bar_for_bar(tiny_checkpoint):
    time = ManualTime()
    clock = MidiClockFollower(time)
    ports = MemoryPorts(now=clock.now_steps)
    state = changed(load_preset("default"), improviser={"mode": "echo"})
    improviser = Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint))
    feedback = MemoryFeedback()
    server = Server(ports, clock, improviser, state, feedback=feedback)
    server.start()
    notes = {12: ("note_on", 60), 60: ("note_off", 60)}  # steps 2 to 10 of bar 0

    def run_ticks(first: int, last: int) -> None:
        for tick in range(first, last):
            time.t_s = tick * TICK_S
            ports.play(mido.Message("clock"))
            if tick in notes:
                kind, pitch = notes[tick]
                ports.play(mido.Message(kind, note=pitch, velocity=90 if kind == "note_on" else 0))
            server.step()

    ports.play(mido.Message("start"))
    server.step()
    run_ticks(0, 100)  # bar 0 closes at tick 93 (step 15.5); its answer starts at step 18
    assert ports.sent == []
    assert feedback.addressed("/qbdi/bar")[0][0] == 0
    run_ticks(100, 130)
    ports.play(mido.Message("stop"))  # the DAW stops mid-note: the answer ends at once
    server.step()
    assert [(t, m.type) for t, m in ports.sent] == [
        (18.0, "note_on"), (21.5, "note_off"), (21.5, "control_change")]
    assert NoteRecorder.of(m for _, m in ports.sent).sounding == set()
    server.post_osc("/qbdi/bpm", [100.0], None)
    server.step()
    assert "following MIDI clock" in feedback.addressed("/qbdi/error")[-1][0]


def test_the_server_reports_the_daws_tempo_as_its_bpm(tiny_checkpoint):
    """Following MIDI clock at 250 BPM, the state (and /qbdi/bpm) say 250 after a bar."""
    time = ManualTime()
    clock = MidiClockFollower(time)
    ports = MemoryPorts(now=clock.now_steps)
    state = changed(load_preset("default"), improviser={"mode": "echo"})
    assert state.tempo_bpm != 250.0
    improviser = Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint))
    feedback = MemoryFeedback()
    server = Server(ports, clock, improviser, state, feedback=feedback)
    server.start()
    ports.play(mido.Message("start"))
    server.step()
    for tick in range(100):  # bar 0 closes at tick 93
        time.t_s = tick * TICK_S
        ports.play(mido.Message("clock"))
        server.step()
    assert server.state.tempo_bpm == pytest.approx(250.0)
    assert feedback.addressed("/qbdi/bpm") == [[pytest.approx(250.0)]]
