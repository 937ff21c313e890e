"""Several models in one session: ``/qbdi/model`` switches between the loaded ones at the
next barline, ending what sounds; an unknown name is refused and the model in use stays."""

from __future__ import annotations

import subprocess
import sys
import threading

import mido
import pytest
from test_server_osc import Client

from qbdi.bars import STEPS_PER_BAR, Note, bars_to_notes, notes_to_bars
from qbdi.improviser import Improviser, load_improvisers
from qbdi.models.checkpoint import load_checkpoint, model_path, shipped_models
from qbdi.presets import load_preset
from qbdi.server.clocks import InternalClock, ManualClock
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.manual import run_until
from qbdi.server.osc_transport import OscTransport
from qbdi.server.ports import MemoryPorts
from qbdi.server.recorder import NoteRecorder
from qbdi.server.session import Server
from qbdi.settings import changed

EXACT = {"mode": "query", "encoding": "mean", "stats": "corpus", "budget_bits": "full",
         "threshold": 0.5}


@pytest.fixture(scope="module")
def two_models(tiny_checkpoint):
    return {"bach": Improviser.from_checkpoint(load_checkpoint("bach")),
            "tiny": Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint))}


def test_a_switch_ends_the_notes_and_the_next_bar_is_the_new_models_answer(two_models):
    clock = ManualClock(120.0)
    ports = MemoryPorts(now=clock.now_steps)
    state = changed(load_preset("default"), tempo_bpm=120.0, model="bach", improviser=EXACT,
                    playing={"velocity": "fixed", "fixed_velocity": 100})
    server = Server(ports, clock, two_models["bach"], state, models=two_models,
                    feedback=MemoryFeedback())
    server.start()
    for bar in range(3):  # a held C major triad every bar
        run_until(server.loop, bar * STEPS_PER_BAR)
        for pitch in (60, 64, 67):
            ports.play(mido.Message("note_on", note=pitch, velocity=100))
        run_until(server.loop, bar * STEPS_PER_BAR + 8)
        for pitch in (60, 64, 67):
            ports.play(mido.Message("note_off", note=pitch))
    run_until(server.loop, 20)  # bar 0's answer (bach) sounds during bar 1
    before = len(ports.sent)
    server.post_osc("/qbdi/model", ["tiny"], None)
    server.step()
    assert NoteRecorder.of(m for _, m in ports.sent).sounding == set(), "a switch ends notes"
    assert ports.sent[-1][1].is_cc(123) and len(ports.sent) > before
    run_until(server.loop, 3 * STEPS_PER_BAR + 15)
    server.shutdown()
    triad = notes_to_bars([Note(0, pitch, 8) for pitch in (60, 64, 67)], 1)[0]
    expected = {(note.start_step, note.pitch) for note in bars_to_notes(
        two_models["tiny"].step(triad, server.state.improviser).bar, 100,
        first_step=3 * STEPS_PER_BAR)}
    got = {(t, m.note) for t, m in ports.sent
           if m.type == "note_on" and m.velocity > 0 and t >= 3 * STEPS_PER_BAR}
    assert expected and got == expected  # bar 2 answered by the new model in bar 3
    assert server.state.model == "tiny"


def test_over_udp_an_unknown_model_is_refused_and_the_model_in_use_stays(two_models):
    state = changed(load_preset("default"), tempo_bpm=960.0, model="bach",
                    improviser={"mode": "echo"})
    transport = OscTransport("127.0.0.1", 0)
    server = Server(MemoryPorts(), InternalClock(960.0), two_models["bach"], state,
                    models=two_models, feedback=transport, status_counts=transport.status_counts)
    stop = threading.Event()
    server.start()
    transport.start(server.post_osc)
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    client = Client(transport.port)
    try:
        assert "no model named 'nope'" in client.ask("/qbdi/model", "nope",
                                                     reply="/qbdi/error")[0]
        assert client.ask("/qbdi/model", 3, reply="/qbdi/error")  # not a name
        status = client.ask("/qbdi/status")
        assert client.wait_for("/qbdi/model") == ["bach"]
        assert status is not None
        assert client.ask("/qbdi/model", "tiny") == ["tiny"]
        assert server.state.model == "tiny"
        assert server.loop.responder.improviser is two_models["tiny"]
    finally:
        stop.set()
        thread.join(timeout=2.0)
        transport.close()
        client.sock.close()


def test_the_shipped_models_load_by_name_and_a_file_keeps_its_own_name(tiny_checkpoint):
    improvisers, current = load_improvisers(None)
    assert current == "bach" and set(improvisers) == set(shipped_models())
    improvisers, current = load_improvisers(tiny_checkpoint)
    assert current == "tiny" and set(improvisers) == set(shipped_models()) | {"tiny"}
    assert model_path("bach") == shipped_models()["bach"]


def test_the_command_line_lists_models_and_refuses_an_unknown_one():
    listed = subprocess.run([sys.executable, "-m", "qbdi.cli", "models"], capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0 and "bach (default)" in listed.stdout
    assert "answers in MIDI 36-90" in listed.stdout  # the chorales' range, from the checkpoint
    refused = subprocess.run([sys.executable, "-m", "qbdi.cli", "serve", "--backend", "memory",
                              "--osc-port", "0", "--model", "nope"], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and "no shipped model" in refused.stderr
