"""End to end through real JACK MIDI ports (the dummy driver, no sound card).

``qbdi serve --backend jack --clock midi`` runs as a process; this test is the DAW: it
sends MIDI clock (480 BPM) and a real query into "qbdi in", listens on "qbdi out", turns
/qbdi/bits over real UDP, and ends with SIGTERM. The answers must be exactly the
improviser's answers to those bars, one bar later, on the 16th grid.

Bounds stated: JACK's dummy driver runs without real-time scheduling here and reports
xruns, in which a few MIDI events can be lost in transit, and the way there and back (this
test -> JACK -> serve -> JACK -> this test) takes 3-5 ms on a quiet machine but grows in
jumps of a JACK period or more on a loaded one (30 ms, a whole sixteenth at 480 BPM, with
a load of 8 on two cores, and stalls of over 100 ms). So every note received must be one
the improviser played, in order, arriving between ``EARLY_STEPS`` before and ``LATE_STEPS``
after its step of the clock we sent (nothing extra, nothing misplaced), and at least
``MIN_RECEIVED`` of the expected notes must arrive. Exactness of the loop itself is tested
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
from qbdi.improviser import Improviser, ImproviserSettings
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import load_checkpoint
from qbdi.server.osc_transport import encode
from qbdi.server.ports import resolve_port
from qbdi.server.recorder import NoteRecorder

pytestmark = pytest.mark.jack

TEMPO_BPM = 480.0
TICK_S = 60.0 / (TEMPO_BPM * 24)
STEP_S = TICK_S * 6
QUERY = "prokofiev-visions-fugitives-vf_no1.mid"
MIN_RECEIVED = 0.95
EARLY_STEPS = 0.25  # the server's clock runs up to a tick (1/6 step) ahead between ticks
LATE_STEPS = 4.0  # 125 ms at 480 BPM: the stalls of a loaded machine, not the server's


@pytest.fixture(scope="module")
def jack_server():
    """A dummy-driver JACK server of this module's own (never the default one)."""
    with jack_server_block() as name:
        yield name


def _threshold_with_some_notes(checkpoint: Path, bars: np.ndarray) -> float:
    """A decoding threshold at which the (tiny) model plays a few dozen notes a bar."""
    for threshold in np.arange(0.50, 0.95, 0.01):
        improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint), ImproviserSettings(
            encoding="mean", stats="corpus", budget_bits="full", threshold=float(threshold)))
        per_bar = np.mean([improviser.step(bar).bar[:, 1].sum() for bar in bars])
        if per_bar <= 40:
            return float(threshold)
    pytest.fail("no threshold gives the model a playable number of notes")


def _expected(checkpoint: Path, settings: ImproviserSettings, bars: np.ndarray,
              first_bar: int) -> set[tuple[int, int, int]]:
    improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint), settings)
    notes = set()
    for offset, bar in enumerate(bars):
        answer_step = (first_bar + offset + 1) * 16
        for note in bars_to_notes(improviser.step(bar).bar, 100, first_step=answer_step):
            notes.add((note.start_step, note.pitch, note.end_step))
    return notes


def _received_notes(events: list[tuple[float, mido.Message]],
                    t0_s: float) -> list[tuple[float, int, float]]:
    """``(onset, pitch, end)`` of the notes received, in (unrounded) steps of the clock we
    sent, in order of onset."""
    open_notes: dict[int, float] = {}
    notes = []
    for t_s, message in events:
        step = (t_s - t0_s) / STEP_S
        if message.type == "note_on" and message.velocity > 0:
            open_notes[message.note] = step
        elif message.type in ("note_on", "note_off") and message.note in open_notes:
            notes.append((open_notes.pop(message.note), message.note, step))
    return sorted(notes)


def _match(got: list[tuple[float, int, float]], expected: set[tuple[int, int, int]]
           ) -> tuple[list[tuple[tuple, tuple]], list[tuple[float, int]]]:
    """Pair each note received with the expected note it plays: the next one of its pitch
    in order, due between ``LATE_STEPS`` before and ``EARLY_STEPS`` after it arrived (the
    expected notes it passes were lost in transit). ``(pairs, notes that pair with none)``."""
    by_pitch: dict[int, list[tuple[int, int, int]]] = {}
    for note in sorted(expected):
        by_pitch.setdefault(note[1], []).append(note)
    next_of: dict[int, int] = {}
    pairs, extra = [], []
    for onset, pitch, end in got:
        candidates, i = by_pitch.get(pitch, []), next_of.get(pitch, 0)
        while i < len(candidates) and candidates[i][0] < onset - LATE_STEPS:
            i += 1
        if i < len(candidates) and candidates[i][0] <= onset + EARLY_STEPS:
            pairs.append(((onset, pitch, end), candidates[i]))
            i += 1
        else:
            extra.append((round(onset, 2), pitch))
        next_of[pitch] = i
    return pairs, extra


def _check_answers(got: list[tuple[float, int, float]],
                   parts: dict[str, set[tuple[int, int, int]]],
                   also: set[tuple[int, int, int]]) -> None:
    """Every note received is expected (in time, within the bounds), in ``parts`` or
    ``also``; of each part, nearly all arrive, and nearly all with their length (to half a
    step)."""
    pairs, extra = _match(got, also.union(*parts.values()))
    assert not extra, f"notes the improviser did not play at those steps: {extra}"
    for name, expected in parts.items():
        mine = [(note, wanted) for note, wanted in pairs if wanted in expected]
        assert len(mine) >= MIN_RECEIVED * len(expected), \
            f"{name}: {len(mine)} of {len(expected)} arrived"
        same_length = sum(abs((end - onset) - (wanted[2] - wanted[0])) <= 0.5
                          for (onset, _, end), wanted in mine)
        assert same_length >= MIN_RECEIVED * len(expected), \
            f"{name}: {same_length} of {len(expected)} with their length"


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

    settings = ImproviserSettings(encoding="mean", stats="corpus", budget_bits="full",
                                  threshold=threshold)
    full = _expected(tiny_checkpoint, settings, bars[:4], 0)
    zero = _expected(tiny_checkpoint, settings.model_copy(update={"budget_bits": 0}),
                     bars[4:7], 4)
    full_late = _expected(tiny_checkpoint, settings, bars[4:7], 4)
    last_answer = _expected(tiny_checkpoint, settings.model_copy(update={"budget_bits": 0}),
                            bars[7:8], 7)
    assert full and zero
    assert zero != full_late, "turning the bits down must change the answer"
    assert _match(sorted(full_late), zero)[1], "the check must tell 0 bits from full rate"
    before_sigterm = {note for note in last_answer if note[0] < 132}  # heard, maybe cut
    _check_answers(_received_notes(received, t0_s), {
        "full rate, answers to bars 0-3 at bars 1-4": full,
        "0 bits from bar 4 on, answers at bars 5-7": zero}, also=before_sigterm)
    recorder = NoteRecorder.of(m for _, m in received)
    assert recorder.sounding == set(), "SIGTERM must end every note"
    assert received[-1][1].is_cc(123)
    if any(start <= 131 and end > 132 for start, _, end in last_answer):
        before = NoteRecorder.of(m for t, m in received if t < sigterm_s)
        assert before.sounding, "a note of the last answer was sounding at SIGTERM"
