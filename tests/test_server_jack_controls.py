"""A knob through real JACK MIDI ports turns the budget of a real ``qbdi serve`` process.

The test names and owns its JACK server (dummy driver, no sound card), so nothing else on
the machine can take its ports. It is the DAW and the controller: it sends MIDI clock (240
BPM) and a query (a chord a bar) into "qbdi in", and a CC from a port of its own ("knob
box") that the server reads with ``--controls-in``. The answers before the knob are the
improviser's at full rate, the answers after it at 0 bits, as the improviser answers
offline; the server reports the new budget to its feedback target (``/qbdi/bits 0``). The
same CC on "qbdi in" (the note port, with a controls port given) turns nothing.

Bounds stated: each note received is placed at the clock ticks the test had sent when it
arrived (so a test preempted by a loaded machine delays both alike), and must be a note the
improviser played within one sixteenth of that step; without real-time scheduling the dummy
driver may lose a few MIDI events in transit, so at least 95% of them must arrive. The knob
must change the answers by more than that tolerance can hide (checked first: at least 10
notes of the unturned answers are none of the turned ones). Exact timing is tested event by
event in test_server_controls.py.
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


@pytest.mark.realtime  # each answer note within a sixteenth (62.5 ms) of its step
def test_a_knob_on_a_real_controls_port_turns_the_budget_for_the_next_answer(
        own_jack, tiny_checkpoint, tmp_path):
    notes = [Note(bar * 16, pitch, bar * 16 + 12, 90)
             for bar, chord in enumerate(CHORDS) for pitch in chord]
    bars = notes_to_bars(notes, BARS)
    threshold = _threshold_with_some_notes(tiny_checkpoint, bars)
    preset = tmp_path / "knobs.toml"
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
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
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
        # CC 21 on the note port in bar 1 turns nothing; on the knob box in bar 2: 0 bits.
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
        assert process.wait(timeout=10) == 0
        time.sleep(0.2)  # the last note-offs cross JACK
        listener.close()
        player.close()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        knob_box.close()

    assert _bits_replies(feedback) == [[0]], "one change, reported to the feedback target"
    feedback.close()
    settings = ImproviserSettings(encoding="mean", stats="corpus", budget_bits="full",
                                  threshold=threshold)
    # Answers to bars 0-1 at full rate (the note port's CC turned nothing), then 0 bits.
    expected = (_onsets_of(_expected(tiny_checkpoint, settings, bars[:2], 0))
                | _onsets_of(_expected(tiny_checkpoint, settings.model_copy(
                    update={"budget_bits": 0}), bars[2:], 2)))
    unturned = _onsets_of(_expected(tiny_checkpoint, settings, bars[2:], 2))
    missed = [onset for onset in unturned if not _near(onset, expected)]
    # Had the knob turned nothing, these notes would arrive and be refused as extra.
    assert len(missed) >= 10, "the knob must change the answers beyond the timing tolerance"
    got = _onsets(received)
    extra = sorted(onset for onset in got if not _near(onset, expected))
    assert not extra, f"notes the improviser did not play: {extra}"
    heard = [onset for onset in expected if onset[0] < BARS * 16 and _near(onset, got)]
    assert len(heard) >= MIN_RECEIVED * sum(onset[0] < BARS * 16 for onset in expected)
    assert NoteRecorder.of(m for _, m in received).sounding == set(), "SIGTERM ends every note"


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
