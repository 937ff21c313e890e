"""The stuck-note invariant: every note-on gets its note-off, and after each trigger that
must end notes nothing sounds within 10 ms.

In memory with a manual clock the bound is exact: the note-offs go out at the very clock
time of the trigger (0 ms). Through real JACK ports, a ``qbdi serve`` process is stopped by
SIGINT and SIGTERM while notes sound, and a recorder on its output measures when the last
note ended, against the signal: within 10 ms plus one JACK period (the dummy driver moves
MIDI once a period).
"""

from __future__ import annotations

import signal
import time

import mido
import pytest
from jack_listener import Listener
from stress_rig import jack_backend, jack_server, start_serve_jack

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server.backends import resolve_port
from qbdi.server.clocks import ManualClock, MidiClockFollower
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.manual import run_until
from qbdi.server.ports import MemoryPorts
from qbdi.server.recorder import NoteRecorder
from qbdi.server.session import Server
from qbdi.settings import changed

BOUND_S = 0.010
JACK_PERIOD_S = 128 / 48_000


class Failing:
    """An improviser whose ``fail_on``-th call raises (an exception inside a bar)."""

    def __init__(self, inner: Improviser, fail_on: int) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, 0

    def step(self, bar, settings):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("injected")
        return self.inner.step(bar, settings)


def _rig(checkpoint, clock=None, fail_on: int = 0):
    clock = clock or ManualClock(120.0)
    ports = MemoryPorts(now=clock.now_s)
    state = changed(load_preset("default"), tempo_bpm=120.0,
                    improviser={"mode": "free", "threshold": 0.5})
    improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
    server = Server(ports, clock, Failing(improviser, fail_on) if fail_on else improviser,
                    state, feedback=MemoryFeedback(),
                    preset_loader=lambda name: changed(state, improviser={"budget_bits": 8}))
    server.start()
    return clock, ports, server


def _sounding(ports: MemoryPorts) -> set:
    return NoteRecorder.of(m for _, m in ports.sent).sounding


def _until_sounding(server: Server, ports: MemoryPorts) -> float:
    """Run the free-playing server until a note sounds; the clock's time then."""
    step = 16.0
    while not _sounding(ports):
        step += 0.25
        assert step < 200, "the model never played a note"
        run_until(server.loop, step)
    return server.loop.clock.now_s()


TRIGGERS = {
    "panic": lambda server, ports: (server.post_osc("/qbdi/panic", [], None), server.step()),
    "mode change": lambda server, ports: (server.post_osc("/qbdi/mode", ["echo"], None),
                                          server.step()),
    "preset change": lambda server, ports: (server.post_osc("/qbdi/preset", ["x"], None),
                                            server.step()),
    "output port gone": lambda server, ports: (ports.disappear("out"), server.step()),
    "shutdown (SIGINT/SIGTERM path)": lambda server, ports: server.shutdown(),
}


@pytest.mark.parametrize("trigger", list(TRIGGERS))
def test_nothing_sounds_at_the_moment_of_the_trigger(tiny_checkpoint, trigger):
    _, ports, server = _rig(tiny_checkpoint)
    t_s = _until_sounding(server, ports)
    delivered = len(ports.sent)
    TRIGGERS[trigger](server, ports)
    if trigger == "output port gone":
        # The DAW closed the port: nothing can sound there; we keep no note for it.
        assert server.loop.scheduler.sounding == {} and ports.dropped > 0
    else:
        assert _sounding(ports) == set()
        assert all(t == t_s for t, _ in ports.sent[delivered:]), "note-offs at once (0 ms)"
    assert server.loop.fatal is None


def test_an_exception_inside_a_bar_ends_notes_at_that_moment(tiny_checkpoint):
    _, ports, server = _rig(tiny_checkpoint, fail_on=3)
    _until_sounding(server, ports)
    while server.loop.counters.bar_errors == 0:
        run_until(server.loop, server.loop.next_wakeup_step())
    assert _sounding(ports) == set()
    assert server.loop.scheduler.sounding == {}


def test_a_midi_clock_stop_ends_notes(tiny_checkpoint):
    times = [0.0]
    clock = MidiClockFollower(now_s=lambda: times[0])
    _, ports, server = _rig(tiny_checkpoint, clock=clock)
    server.post_midi(mido.Message("start"))
    for tick in range(6 * 16 * 4):
        times[0] = tick * 0.02
        server.post_midi(mido.Message("clock"))
        server.step()
    assert NoteRecorder.of(m for _, m in ports.sent).note_ons > 0
    server.post_midi(mido.Message("stop"))
    server.step()
    assert _sounding(ports) == set()


def test_every_note_on_gets_its_note_off_over_a_long_free_run(tiny_checkpoint):
    _, ports, server = _rig(tiny_checkpoint)
    run_until(server.loop, 16 * 64)
    server.shutdown()
    recorder = NoteRecorder.of(m for _, m in ports.sent)
    assert recorder.note_ons > 50
    assert recorder.sounding == set() and recorder.double_note_ons == 0
    ons = sum(m.type == "note_on" and m.velocity > 0 for _, m in ports.sent)
    offs = sum(m.type == "note_off" for _, m in ports.sent)
    assert offs >= ons  # one note-off each (CC 123 aside)


# -- real process, real JACK ports -----------------------------------------------------------

@pytest.mark.jack
@pytest.mark.realtime
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_every_note_within_10_ms(tiny_checkpoint, tmp_path, signum):
    preset = tmp_path / "free.toml"
    preset.write_text('tempo_bpm = 480.0\n[improviser]\nmode = "free"\nthreshold = 0.5\n')
    with jack_server():
        process = start_serve_jack(tiny_checkpoint, preset)
        try:
            assert "ready" in process.stdout.readline(), process.stderr.read()
            rt = jack_backend()
            listener = Listener(resolve_port("qbdi out", rt.get_input_names(), "input"))
            deadline = time.monotonic() + 10
            while not NoteRecorder.of(listener.messages).sounding:
                assert time.monotonic() < deadline, "the server never played a note"
                time.sleep(0.001)
            signal_s = time.perf_counter()
            process.send_signal(signum)
            assert process.wait(timeout=10) == 0
            time.sleep(0.1)
            listener.close()
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    heard = listener.heard
    assert NoteRecorder.of(m for _, m in heard).sounding == set()
    ended_s = max(t for t, m in heard if m.type == "note_off" or m.is_cc(123))
    assert ended_s - signal_s <= BOUND_S + JACK_PERIOD_S, f"{(ended_s - signal_s) * 1e3:.1f} ms"
