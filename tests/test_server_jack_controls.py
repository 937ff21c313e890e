"""A knob through real JACK MIDI ports turns the budget of a real ``qbdi serve`` process.

``qbdi serve --backend jack --clock midi --controls-in "knob box" --record`` runs as a
process on a JACK server of the test's own; the test is the DAW and the controller: it sends
MIDI clock (240 BPM) and a query (a chord a bar) into "qbdi in", CC 21 (bound to the bits)
on "qbdi in" in bar 0, which must turn nothing (controls come from the knob box alone), and
CC 21 = 0 from a port of its own ("knob box") in bar 3: 0 bits.

Exact, on serve's own record of the session as test_server_jack.py does (its take: the
query as it heard it, the answers as it sent them, the budget markers, so that events JACK's
dummy driver loses or delays under load cannot fail it): the budget is reported to the
feedback target once (``/qbdi/bits 0``); every answer is full rate up to the knob and 0 bits
from the next bar on (bar 3's answer; bar 2's if serve lost clock ticks and its grid fell
behind ours), and is the improviser's offline answer to the bar serve heard, at that budget.
On the JACK ports: nothing arrives that was not sent, and at least ``MIN_RECEIVED`` does.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mido
import pytest
from jack_listener import Listener
from pythonosc.osc_message import OscMessage
from stress_rig import jack_server as jack_server_block
from test_server_jack import (
    _answers,
    _before,
    _check_delivered,
    _in_bar,
    _strikes,
    _threshold_with_some_notes,
    _wait_ready,
)
from test_take import read_take

from qbdi.bars import Note, notes_to_bars
from qbdi.midifile import load_smf, score_of
from qbdi.server.backends import resolve_port
from qbdi.server.ports import UNREGISTER_SETTLE_S
from qbdi.server.recorder import NoteRecorder
from qbdi.settings import ImproviserSettings
from qbdi.take_score import read_markers, settings_per_bar

pytestmark = pytest.mark.jack

KNOB_PORT = "knob box"
TEMPO_BPM = 240.0
TICK_S = 60.0 / (TEMPO_BPM * 24)
TICKS_PER_STEP = 6  # MIDI clock: 24 ticks a beat
# The query: a chord a bar (few events, so that few can be lost in transit).
CHORDS = [(60, 64, 67), (60, 65, 69), (59, 62, 67), (60, 64, 67), (57, 60, 64), (59, 62, 67)]
BARS = len(CHORDS)
WRONG_PORT_STEP, KNOB_STEP, STOP_STEP = 4, 52, 100  # bar 0, bar 3, early in bar 6


@pytest.fixture(scope="module")
def jack_server():
    """A dummy-driver JACK server of this module's own (never the default one)."""
    with jack_server_block() as name:
        yield name


def _bits_replies(sock: socket.socket) -> list[list]:
    replies = []
    while True:
        try:
            data, _ = sock.recvfrom(65_535)
        except (TimeoutError, BlockingIOError):
            return replies
        message = OscMessage(data)
        if message.address == "/qbdi/bits":
            replies.append(list(message.params))


@dataclass
class Session:
    """One run of ``qbdi serve`` played by the test: what came back, its take and log."""

    received: list[mido.Message]
    bits_replies: list[list]
    take: Path
    log: str
    threshold: float
    query: list[Note]


def _play(player: mido.ports.BaseOutput, knob_box: mido.ports.BaseOutput,
          notes: list[Note]) -> None:
    """MIDI clock from Start, the query, CC 21 on the note port and then on the knob box."""
    by_tick: dict[int, list[tuple[mido.ports.BaseOutput, mido.Message]]] = {}
    for note in notes:  # releases before strikes at the same tick
        by_tick.setdefault(note.end_step * TICKS_PER_STEP, []).append(
            (player, mido.Message("note_off", channel=1, note=note.pitch)))
    for note in notes:
        by_tick.setdefault(note.start_step * TICKS_PER_STEP, []).append(
            (player, mido.Message("note_on", channel=1, note=note.pitch, velocity=90)))
    cc = mido.Message("control_change", control=21, value=0)
    by_tick.setdefault(WRONG_PORT_STEP * TICKS_PER_STEP, []).append((player, cc))
    by_tick.setdefault(KNOB_STEP * TICKS_PER_STEP, []).append((knob_box, cc))
    player.send(mido.Message("start"))
    t0_s = time.perf_counter() + 0.05
    for tick in range(STOP_STEP * TICKS_PER_STEP):
        while time.perf_counter() < t0_s + tick * TICK_S:
            time.sleep(0.0002)
        player.send(mido.Message("clock"))
        for port, message in by_tick.get(tick, []):
            port.send(message)


@pytest.fixture(scope="module")
def knob_session(jack_server, tiny_checkpoint, tmp_path_factory) -> Session:
    folder = tmp_path_factory.mktemp("knobs")
    notes = [Note(bar * 16, pitch, bar * 16 + 12, 90)
             for bar, chord in enumerate(CHORDS) for pitch in chord]
    threshold = _threshold_with_some_notes(tiny_checkpoint, notes_to_bars(notes, BARS))
    preset = folder / "knobs.toml"
    preset.write_text(
        f'tempo_bpm = {TEMPO_BPM}\n[improviser]\nmode = "query"\nencoding = "mean"\n'
        f'stats = "corpus"\nbudget_bits = "full"\nthreshold = {threshold}\n'
        '[playing]\nvelocity = "fixed"\nfixed_velocity = 100\n'
        '[controls.cc]\nbits = 21\n')
    rt = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    knob_box = rt.open_output(KNOB_PORT, virtual=True, client_name="controller")
    feedback = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    feedback.bind(("127.0.0.1", 0))
    feedback.setblocking(False)
    take = folder / "take.mid"
    process = subprocess.Popen(
        [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "jack", "--clock", "midi",
         "--model", str(tiny_checkpoint), "--preset", str(preset), "--osc-port", "0",
         "--controls-in", KNOB_PORT, "--feedback", f"127.0.0.1:{feedback.getsockname()[1]}",
         "--record", str(take), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"})
    ports = contextlib.ExitStack()  # closed before the server stops, as in test_server_jack
    try:
        ready = _wait_ready(process)
        assert f"controls 'controller:{KNOB_PORT}'" in ready
        listener = ports.enter_context(
            Listener(resolve_port("qbdi out", rt.get_input_names(), "input")))
        ports.callback(time.sleep, UNREGISTER_SETTLE_S)  # one close at a time (ports.py)
        player = ports.enter_context(
            rt.open_output(resolve_port("qbdi in", rt.get_output_names(), "output")))
        time.sleep(0.3)  # JACK connects ports in its own time
        _play(player, knob_box, notes)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        log = process.stderr.read()  # --quiet: its warnings (overruns, skipped bars) alone
        assert code == 0, f"serve exited with {code}: {log[-3000:]}"
        time.sleep(0.2)  # the last note-offs cross JACK
    finally:
        ports.close()
        if process.poll() is None:
            process.kill()
        process.wait()
        time.sleep(UNREGISTER_SETTLE_S)
        knob_box.close()
    replies = _bits_replies(feedback)
    feedback.close()
    return Session(listener.messages, replies, take, log, threshold, notes)


@pytest.mark.realtime  # as test_server_jack.py: a stalled serve may skip or overrun bars
def test_a_knob_on_a_real_controls_port_turns_the_budget_for_the_next_answer(
        knob_session, tiny_checkpoint):
    session = knob_session
    assert session.bits_replies == [[0]], "one change, reported to the feedback target"
    smf = load_smf(session.take)
    served = score_of(smf, session.take, track="player").notes  # the query as serve heard it
    sent = score_of(smf, session.take, track="qbdi").notes  # its answers as it sent them
    markers, stopped = read_markers(smf)  # stopped: serve's position at SIGTERM, on its grid
    cut = min(STOP_STEP - 1, math.floor(stopped) - 1)  # notes before it were all due
    budgets = [s[1] if s else None for s in settings_per_bar(markers, BARS + 1)]
    switch = budgets.index(0)  # the first answer at 0 bits: to bar 3, in bar 4
    # Not at bar 1: CC 21 on the note port in bar 0 turned nothing.
    assert switch in (3, 4) and budgets[1:] == ["full"] * (switch - 1) + [0] * (
        BARS + 1 - switch), budgets
    settings = ImproviserSettings(encoding="mean", stats="corpus", budget_bits="full",
                                  threshold=session.threshold)
    heard = notes_to_bars(served, BARS)
    expected = _answers(tiny_checkpoint, settings, heard, budgets)
    full_rate = _answers(tiny_checkpoint, settings, heard, ["full"] * (BARS + 1))
    assert _before(expected, cut) != _before(full_rate, cut), \
        "turning the bits down must change the answers"
    overran = {int(bar) for bar in re.findall(r"bar (\d+) overran", session.log)}
    skipped = {int(bar) for bar in re.findall(r"bar (\d+) skipped", session.log)}
    for bar in range(BARS):
        answer, wanted = _in_bar(sent, bar + 1, cut), _in_bar(expected, bar + 1, cut)
        if bar in skipped:
            assert not answer, f"bar {bar} was skipped, yet answered"
        elif bar in overran:
            assert answer <= wanted, f"late answer to bar {bar}: notes not in the answer"
        else:
            assert answer == wanted, f"the answer to bar {bar} is not the improviser's " \
                f"answer to the bar serve heard: {sorted(answer ^ wanted)}"


@pytest.mark.realtime  # JACK's dummy driver drops events under load (MIN_RECEIVED)
def test_the_query_reaches_serve_and_its_answers_reach_the_daw(knob_session):
    takes = read_take(knob_session.take)
    _check_delivered(knob_session.query, _strikes(m for _, m in takes["player"]),
                     "query notes into serve")
    sent = score_of(load_smf(knob_session.take), knob_session.take, track="qbdi").notes
    _check_delivered(sent, _strikes(knob_session.received), "answers out of serve")
    ended = NoteRecorder.of(m for _, m in takes["qbdi"])
    assert ended.sounding == set() and ended.double_note_ons == 0


def test_a_missing_controls_port_is_refused_at_start_up_naming_it(jack_server,
                                                                 tiny_checkpoint):
    result = subprocess.run(
        [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "jack", "--model",
         str(tiny_checkpoint), "--osc-port", "0", "--controls-in", "no such knobs"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "controls input port 'no such knobs' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
