"""End to end through real JACK MIDI ports (the dummy driver, no sound card).

``qbdi serve --backend jack --clock midi`` runs as a process; this test is the DAW: it
sends MIDI clock (480 BPM) and a real query into "qbdi in", listens on "qbdi out", turns
/qbdi/bits over real UDP, and ends with SIGTERM. The answers must be exactly the
improviser's answers to those bars, one bar later, on the 16th grid.

Bound stated: JACK's dummy driver runs without real-time scheduling here and reports xruns,
in which a few MIDI events can be lost in transit. So every note received must be one the
improviser played at that step (nothing extra, nothing misplaced), and at least
``MIN_RECEIVED`` of the expected notes must arrive; exactness of the loop itself is tested
event by event in test_server_loop.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mido
import numpy as np
import pytest
from stress_rig import jack_server as jack_server_block

from qbdi.bars import bars_to_notes, notes_to_bars
from qbdi.improviser import Improviser
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import load_checkpoint
from qbdi.server.backends import resolve_port
from qbdi.server.osc_transport import encode
from qbdi.server.recorder import NoteRecorder
from qbdi.settings import ImproviserSettings

pytestmark = [pytest.mark.jack, pytest.mark.realtime]

TEMPO_BPM = 480.0
TICK_S = 60.0 / (TEMPO_BPM * 24)
QUERY = "chords-melody-4-4.mid"  # tests/data/queries: 20 bars of 4/4
MIN_RECEIVED = 0.95


@pytest.fixture(scope="module")
def jack_server():
    """A JACK server: the one running, or a dummy-driver one started for this module."""
    with jack_server_block() as process:
        yield process


def _threshold_with_some_notes(checkpoint: Path, bars: np.ndarray) -> float:
    """A decoding threshold at which the (tiny) model plays a few dozen notes a bar."""
    for threshold in np.arange(0.50, 0.95, 0.01):
        improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
        settings = ImproviserSettings(encoding="mean", stats="corpus", budget_bits="full",
                                      threshold=float(threshold))
        per_bar = np.mean([improviser.step(bar, settings).bar[:, 1].sum() for bar in bars])
        if per_bar <= 40:
            return float(threshold)
    pytest.fail("no threshold gives the model a playable number of notes")


def _expected(checkpoint: Path, settings: ImproviserSettings, bars: np.ndarray,
              first_bar: int) -> set[tuple[int, int, int]]:
    improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
    notes = set()
    for offset, bar in enumerate(bars):
        answer_step = (first_bar + offset + 1) * 16
        for note in bars_to_notes(improviser.step(bar, settings).bar, 100,
                                  first_step=answer_step):
            notes.add((note.start_step, note.pitch, note.end_step))
    return notes


def _received_notes(events: list[tuple[float, mido.Message]], t0_s: float) -> set[tuple]:
    """Notes from timestamped messages, times rounded to steps of the clock we sent."""
    step_s = TICK_S * 6
    open_notes: dict[int, int] = {}
    notes = set()
    for t_s, message in events:
        step = round((t_s - t0_s) / step_s)
        if message.type == "note_on" and message.velocity > 0:
            open_notes[message.note] = step
        elif message.type in ("note_on", "note_off") and message.note in open_notes:
            notes.add((open_notes.pop(message.note), message.note, step))
    return notes


def _check_answers(got: set[tuple], expected: set[tuple]) -> None:
    """Every onset received is expected; nearly all expected arrive; lengths agree."""
    onsets = {(start, pitch): end for start, pitch, end in got}
    wanted = {(start, pitch): end for start, pitch, end in expected}
    extra = set(onsets) - set(wanted)
    assert not extra, f"notes the improviser did not play: {sorted(extra)}"
    assert len(onsets) >= MIN_RECEIVED * len(wanted), f"{len(onsets)} of {len(wanted)} arrived"
    same_length = sum(onsets[key] == wanted[key] for key in onsets)
    assert same_length >= MIN_RECEIVED * len(wanted)


def _wait_ready(process: subprocess.Popen, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "ready" in line:
            return line
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"qbdi serve never became ready: {process.stderr.read()}")


def test_serve_answers_a_real_query_through_jack_bar_for_bar(jack_server, tiny_checkpoint,
                                                              queries_dir, tmp_path):
    score = read_midi(queries_dir / QUERY)
    notes = [n for n in score.notes if n.start_step < 128]
    bars = notes_to_bars(notes, 8)
    assert all(bar.any() for bar in bars), "the query's first 8 bars should all have notes"
    threshold = _threshold_with_some_notes(tiny_checkpoint, bars)
    preset = tmp_path / "e2e.toml"
    preset.write_text(
        f'tempo_bpm = {TEMPO_BPM}\n[improviser]\nmode = "query"\nencoding = "mean"\n'
        f'stats = "corpus"\nbudget_bits = "full"\nthreshold = {threshold}\n'
        '[playing]\nvelocity = "fixed"\nfixed_velocity = 100\n')
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "jack", "--clock", "midi",
         "--model", str(tiny_checkpoint), "--preset", str(preset), "--osc-port", "0",
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = _wait_ready(process)
        osc_port = int(ready.split("osc 127.0.0.1:")[1].split(",")[0])
        rt = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        received: list[tuple[float, mido.Message]] = []
        listener = rt.open_input(resolve_port("qbdi out", rt.get_input_names(), "input"),
                                 callback=lambda m: received.append((time.perf_counter(), m)))
        player = rt.open_output(resolve_port("qbdi in", rt.get_output_names(), "output"))
        osc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        osc.bind(("127.0.0.1", 0))
        osc.settimeout(2.0)
        time.sleep(0.3)  # JACK connects ports in its own time

        by_tick: dict[int, list[mido.Message]] = {}
        for note in notes:  # releases before strikes at the same tick
            by_tick.setdefault(note.end_step * 6, []).append(
                mido.Message("note_off", channel=1, note=note.pitch))
        for note in notes:
            by_tick.setdefault(note.start_step * 6, []).append(
                mido.Message("note_on", channel=1, note=note.pitch, velocity=90))
        bits_tick, stop_tick = 68 * 6, 132 * 6  # bits 0 from bar 4 on; SIGTERM mid-bar 8
        player.send(mido.Message("start"))
        t0_s = time.perf_counter() + 0.05
        for tick in range(stop_tick):
            while time.perf_counter() < t0_s + tick * TICK_S:
                time.sleep(0.0002)
            player.send(mido.Message("clock"))
            for message in by_tick.get(tick, []):
                player.send(message)
            if tick == bits_tick:
                osc.sendto(encode("/qbdi/bits", [0]), ("127.0.0.1", osc_port))
        sigterm_s = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        time.sleep(0.2)  # the last note-offs cross JACK
        reply, _ = osc.recvfrom(65_535)
        assert reply == encode("/qbdi/bits", [0])
        listener.close()
        player.close()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()

    got = _received_notes(received, t0_s)
    settings = ImproviserSettings(encoding="mean", stats="corpus", budget_bits="full",
                                  threshold=threshold)
    full = _expected(tiny_checkpoint, settings, bars[:4], 0)
    zero = _expected(tiny_checkpoint, settings.model_copy(update={"budget_bits": 0}),
                     bars[4:7], 4)
    full_late = _expected(tiny_checkpoint, settings, bars[4:7], 4)
    assert full and zero
    assert zero != full_late, "turning the bits down must change the answer"
    _check_answers({n for n in got if n[0] < 80}, full)  # answers to bars 0-3, at bars 1-4
    _check_answers({n for n in got if 80 <= n[0] < 128}, zero)  # bits 0 from bar 4 on
    recorder = NoteRecorder.of(m for _, m in received)
    assert recorder.sounding == set(), "SIGTERM must end every note"
    assert received[-1][1].is_cc(123)
    last_answer = _expected(tiny_checkpoint, settings.model_copy(update={"budget_bits": 0}),
                            bars[7:8], 7)
    if any(start <= 131 and end > 132 for start, _, end in last_answer):
        before = NoteRecorder.of(m for t, m in received if t < sigterm_s)
        assert before.sounding, "a note of the last answer was sounding at SIGTERM"
