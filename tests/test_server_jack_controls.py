"""A knob through real JACK MIDI ports turns the budget of a real ``qbdi serve`` process.

The test names and owns its JACK server (dummy driver, no sound card), so nothing else on
the machine can take its ports. It is the DAW and the controller: it sends MIDI clock (240
BPM) and a query (a chord a bar) into "qbdi in", and a CC from a port of its own ("knob
box") that the server reads with ``--controls-in``; the same CC on "qbdi in" (the note
port, with a controls port given) must turn nothing. The server records a take.

Exact: the server reports the new budget to its feedback target (``/qbdi/bits 0``) once,
and the answers it sent (its take) are the improviser's offline answers to the bars it heard
(its take too, so an input event lost in transit cannot fail the test): at full rate before
the knob, at 0 bits from the next bar on.

Real time (marked ``realtime``): each note received, placed at the clock ticks the test had
sent when it arrived (so a test preempted by a loaded machine delays both alike), is one the
server sent within a sixteenth of that step; without real-time scheduling the dummy driver
may lose a few MIDI events in transit, so at least 95% of them must arrive; and every note
ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace

import mido
import pytest
from pythonosc.osc_message import OscMessage
from test_server_jack import MIN_RECEIVED, _expected, _threshold_with_some_notes

from qbdi.bars import Note, notes_to_bars
from qbdi.server.backends import resolve_port
from qbdi.server.recorder import NoteRecorder
from qbdi.settings import ImproviserSettings

pytestmark = pytest.mark.jack

KNOB_PORT = "knob box"
TEMPO_BPM = 240.0  # a sixteenth is 62.5 ms: input lands on its step on a loaded machine
TICK_S = 60.0 / (TEMPO_BPM * 24)
TICKS_PER_STEP = 6  # MIDI clock: 24 ticks a beat
# The query: a chord a bar (few events, so that events lost in transit are rare).
CHORDS = [(60, 64, 67), (60, 65, 69), (59, 62, 67), (60, 64, 67), (57, 60, 64), (59, 62, 67)]
BARS = len(CHORDS)
TOLERANCE_STEPS = 1  # a real-time bound: a loaded machine may delay a note by a sixteenth


def _jack_answers(name: str) -> bool:
    return subprocess.run(["jack_lsp", "-s", name], capture_output=True,
                          timeout=10).returncode == 0


def _die_with_this_process() -> None:
    """In the JACK server's child process (Linux): SIGTERM when the test process dies, even
    killed, so no orphaned server holds one of the few servers JACK allows at once."""
    with contextlib.suppress(OSError):  # not Linux: the fixture's teardown must do
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@pytest.fixture(scope="module")
def own_jack():
    """A dummy-driver JACK server named for this test alone; JACK clients of this process
    and of the processes it starts connect to it (``JACK_DEFAULT_SERVER``)."""
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        pytest.skip("jackd is not installed (apt-get install jackd2): cannot test real ports")
    name = f"qbdi-knobs-{os.getpid()}"
    process = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r",
                                "48000", "-p", "128"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, preexec_fn=_die_with_this_process)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None and not _jack_answers(name):
        time.sleep(0.1)
    if process.poll() is not None or not _jack_answers(name):
        process.kill()
        error = process.stderr.read().decode(errors="replace")[-500:]
        pytest.skip(f"jackd could not start a dummy-driver server {name}: {error}")
    saved = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        yield name
    finally:
        if saved is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = saved
        process.terminate()
        process.wait(timeout=10)


def _wait_ready(process: subprocess.Popen, timeout_s: float = 30.0) -> str:
    """The "ready" line; a server that is not ready within ``timeout_s`` (a JACK call that
    never returns) is killed and the test fails, rather than waiting forever on its stdout."""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left_s := deadline - time.monotonic()) > 0 and selector.select(left_s):
            line = process.stdout.readline()
            if "ready" in line:
                return line
            if not line:
                break
    process.kill()
    raise AssertionError(f"qbdi serve was not ready in {timeout_s} s: "
                         f"{process.stderr.read()[-2000:]}")


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


def _onsets(events: list[tuple[int, mido.Message]]) -> set[tuple[int, int]]:
    """``(step, pitch)`` of the note-ons received, each at the clock ticks sent so far."""
    return {(round(ticks / TICKS_PER_STEP), m.note) for ticks, m in events
            if m.type == "note_on" and m.velocity > 0}


def _near(onset: tuple[int, int], onsets: set[tuple[int, int]]) -> bool:
    step, pitch = onset
    return any((step + d, pitch) in onsets for d in range(-TOLERANCE_STEPS, TOLERANCE_STEPS + 1))


def _take_notes(take: mido.MidiFile, track_name: str) -> list[Note]:
    """A take track's notes on the server's grid (the player's as the loop heard them, at
    the steps it placed them; the answers at the steps they were scheduled for)."""
    track = next(track for track in take.tracks if track.name == track_name)
    steps_per_tick = 4 / take.ticks_per_beat
    ticks, started, notes = 0, {}, []
    for message in track:
        ticks += message.time
        step = round(ticks * steps_per_tick)
        if message.type == "note_on" and message.velocity > 0:
            started[message.note] = (step, message.velocity)
        elif message.type in ("note_on", "note_off") and message.note in started:
            start, velocity = started.pop(message.note)
            notes.append(Note(start, message.note, max(step, start + 1), velocity))
    return notes


@dataclass
class Session:
    """One run of ``qbdi serve`` played by the test: what came back, and its take."""

    received: list[tuple[int, mido.Message]]  # (clock ticks sent so far, message)
    bits_replies: list[list]
    take: mido.MidiFile
    threshold: float


@pytest.fixture(scope="module")
def knob_session(own_jack, tiny_checkpoint, tmp_path_factory) -> Session:
    """The test is the DAW and the controller: MIDI clock and a chord a bar into "qbdi in",
    CC 21 on "qbdi in" in bar 1 (turns nothing: controls come from the knob box), CC 21 = 0
    on the knob box in bar 2 (0 bits), SIGTERM early in bar 6."""
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
    process = subprocess.Popen(
        [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "jack", "--clock", "midi",
         "--model", str(tiny_checkpoint), "--preset", str(preset), "--osc-port", "0",
         "--controls-in", KNOB_PORT, "--feedback", f"127.0.0.1:{feedback.getsockname()[1]}",
         "--record", str(folder / "take.mid"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"})
    ticks_sent = [0]
    received: list[tuple[int, mido.Message]] = []
    try:
        ready = _wait_ready(process)
        assert f"controls 'controller:{KNOB_PORT}'" in ready
        listener = rt.open_input(resolve_port("qbdi out", rt.get_input_names(), "input"),
                                 callback=lambda m: received.append((ticks_sent[0], m)))
        player = rt.open_output(resolve_port("qbdi in", rt.get_output_names(), "output"))
        time.sleep(0.3)  # JACK connects ports in its own time
        by_tick: dict[int, list[mido.Message]] = {}
        for note in notes:  # releases before strikes at the same tick
            by_tick.setdefault(note.end_step * TICKS_PER_STEP, []).append(
                mido.Message("note_off", channel=1, note=note.pitch))
        for note in notes:
            by_tick.setdefault(note.start_step * TICKS_PER_STEP, []).append(
                mido.Message("note_on", channel=1, note=note.pitch, velocity=90))
        wrong_port_tick, knob_tick, stop_tick = (step * TICKS_PER_STEP for step in (20, 36, 100))
        player.send(mido.Message("start"))
        t0_s = time.perf_counter() + 0.05
        for tick in range(stop_tick):
            while time.perf_counter() < t0_s + tick * TICK_S:
                time.sleep(0.0002)
            player.send(mido.Message("clock"))
            ticks_sent[0] = tick + 1
            for message in by_tick.get(tick, []):
                player.send(message)
            if tick == wrong_port_tick:
                player.send(mido.Message("control_change", control=21, value=0))
            if tick == knob_tick:
                knob_box.send(mido.Message("control_change", control=21, value=0))
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)
        assert returncode == 0, f"qbdi serve exited {returncode}: {process.stderr.read()[-3000:]}"
        deadline = time.monotonic() + 3.0  # the last note-offs and CC 123 cross JACK
        while time.monotonic() < deadline and not any(m.is_cc(123) for _, m in received[-20:]):
            time.sleep(0.05)
        listener.close()
        player.close()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        knob_box.close()
    replies = _bits_replies(feedback)
    feedback.close()
    return Session(received, replies, mido.MidiFile(str(folder / "take.mid")), threshold)


def test_a_knob_on_a_real_controls_port_turns_the_budget_for_the_next_answer(
        knob_session, tiny_checkpoint):
    assert knob_session.bits_replies == [[0]], "one change, reported to the feedback target"
    played = _take_notes(knob_session.take, "player")
    # The take goes on at a bar boundary when the DAW's Start moves the clock: bar 0 is the
    # bar of the first chord (played at step 0).
    origin = round(min(n.start_step for n in played) / 16) * 16
    heard = notes_to_bars([replace(n, start_step=n.start_step - origin,
                                   end_step=n.end_step - origin) for n in played], BARS)
    answered = {(n.start_step - origin, n.pitch)
                for n in _take_notes(knob_session.take, "qbdi")
                if n.start_step - origin < BARS * 16}
    settings = ImproviserSettings(encoding="mean", stats="corpus", budget_bits="full",
                                  threshold=knob_session.threshold)
    zero_bits = settings.model_copy(update={"budget_bits": 0})
    unturned = _onsets_of(_expected(tiny_checkpoint, settings, heard[2:], 2))
    turned = _onsets_of(_expected(tiny_checkpoint, zero_bits, heard[2:], 2))
    assert turned != unturned, "turning the bits down must change the answers"
    # Bars 0-1 answered at full rate (the note port's CC turned nothing), from bar 2 on at
    # 0 bits: exactly the improviser's answers to the bars the server heard.
    expected = _onsets_of(_expected(tiny_checkpoint, settings, heard[:2], 0)) | turned
    assert answered == {onset for onset in expected if onset[0] < BARS * 16}


@pytest.mark.realtime  # each answer note within a sixteenth (62.5 ms) of its step
def test_the_answers_cross_jack_on_time_and_every_note_ends(knob_session):
    origin = round(min(n.start_step for n in _take_notes(knob_session.take, "player")) / 16) * 16
    sent = {(n.start_step - origin, n.pitch) for n in _take_notes(knob_session.take, "qbdi")}
    got = _onsets(knob_session.received)
    extra = sorted(onset for onset in got if not _near(onset, sent))
    assert not extra, f"notes the server did not send then: {extra}"
    arrived = [onset for onset in sent if _near(onset, got)]
    assert len(arrived) >= MIN_RECEIVED * len(sent)
    assert NoteRecorder.of(m for _, m in knob_session.received).sounding == set(), \
        "SIGTERM ends every note"


def _onsets_of(notes: set[tuple[int, int, int]]) -> set[tuple[int, int]]:
    return {(start, pitch) for start, pitch, _ in notes}


def test_a_missing_controls_port_is_refused_at_start_up_naming_it(own_jack, tiny_checkpoint):
    result = subprocess.run(
        [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "jack", "--model",
         str(tiny_checkpoint), "--osc-port", "0", "--controls-in", "no such knobs"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "controls input port 'no such knobs' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
