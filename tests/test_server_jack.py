"""End to end through real JACK MIDI ports (the dummy driver, no sound card).

``qbdi serve --backend jack --clock midi --record`` runs as a process; this test is the DAW:
it sends MIDI clock (480 BPM) and a real query into "qbdi in", listens on "qbdi out", turns
/qbdi/bits over real UDP, and ends with SIGTERM. The answers must be exactly the
improviser's answers to the bars serve heard, one bar later, on the 16th grid.

Bounds stated: JACK's dummy driver runs without real-time scheduling here and reports
xruns. Under load (8 on two cores) it loses MIDI events, by the dozen when serve stalls for
a few hundred ms (clock ticks too: serve's grid then falls behind the clock we sent, for
good), now and then delivers one twice, and takes from 3-5 ms on a quiet machine to over
100 ms. So exactness is checked on serve's own record of the session (its take: the query
as it heard it and the answers as it sent them, on its grid, and the budget markers), and
the JACK ports on either side for what they carry: nothing arrives that was not sent, and
at least ``MIN_RECEIVED`` of it does. Timing is tested event by event in
test_server_loop.py and test_server_clocks.py and measured in benchmarks/bench_server.py.
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
from collections import Counter
from pathlib import Path

import mido
import numpy as np
import pytest
from jack_listener import Listener
from stress_rig import jack_server as jack_server_block
from test_take import read_take

from qbdi.bars import STEPS_PER_BAR, Note, bars_to_notes, notes_to_bars
from qbdi.improviser import Improviser
from qbdi.midifile import load_smf, read_midi, score_of
from qbdi.models.checkpoint import load_checkpoint
from qbdi.server.backends import resolve_port
from qbdi.server.osc_transport import encode
from qbdi.server.ports import UNREGISTER_SETTLE_S
from qbdi.server.recorder import NoteRecorder
from qbdi.settings import ImproviserSettings
from qbdi.take_score import read_markers, settings_per_bar

pytestmark = [pytest.mark.jack, pytest.mark.realtime]

TEMPO_BPM = 480.0
TICK_S = 60.0 / (TEMPO_BPM * 24)
QUERY = "chords-melody-4-4.mid"  # tests/data/queries: 20 bars of 4/4
MIN_RECEIVED = 0.8  # 87 % at worst in a stall of serve at a load of 8 on two cores


@pytest.fixture(scope="module")
def jack_server():
    """A dummy-driver JACK server of this module's own (never the default one)."""
    with jack_server_block() as name:
        yield name


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


def _answers(checkpoint: Path, settings: ImproviserSettings, bars: np.ndarray,
             budgets: list) -> list[Note]:
    """What serve plays for ``bars``: the answer to bar b in bar b + 1 at the budget in
    force there (``budgets[b + 1]``); nothing for an empty bar."""
    improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
    notes = []
    for index, bar in enumerate(bars):
        in_force = settings.model_copy(update={"budget_bits": budgets[index + 1]})
        if bar.any():
            notes += bars_to_notes(improviser.step(bar, in_force).bar, 100,
                                   first_step=(index + 1) * STEPS_PER_BAR)
    return notes


def _before(notes: list[Note], step: int) -> set[tuple[int, int, int]]:
    """``(start, pitch, end)`` of the notes that start before ``step``, cut there."""
    return {(n.start_step, n.pitch, min(n.end_step, step)) for n in notes if n.start_step < step}


def _in_bar(notes: list[Note], bar: int, cut: int) -> set[tuple[int, int, int]]:
    """:func:`_before` ``cut`` of the notes that start in ``bar``."""
    first = bar * STEPS_PER_BAR
    return {note for note in _before(notes, cut) if first <= note[0] < first + STEPS_PER_BAR}


def _strikes(messages) -> list[Note]:
    """The note-ons, but a second one of a note already sounding: neither this test nor
    serve sends one (its take shows it); a late JACK cycle may still deliver one twice."""
    sounding, strikes = set(), []
    for message in messages:
        if message.type == "note_on" and message.velocity and message.note not in sounding:
            sounding.add(message.note)
            strikes.append(Note(0, message.note, 1))
        elif message.type in ("note_on", "note_off"):
            sounding.discard(message.note)
    return strikes


def _check_delivered(sent: list[Note], got: list[Note], what: str) -> None:
    """Nothing arrived that was not sent, and at least ``MIN_RECEIVED`` of it did (JACK's
    dummy driver drops a few events under load): counted by pitch."""
    sent_pitches, got_pitches = Counter(n.pitch for n in sent), Counter(n.pitch for n in got)
    assert not got_pitches - sent_pitches, f"{what}: never sent: {got_pitches - sent_pitches}"
    assert got_pitches.total() >= MIN_RECEIVED * sent_pitches.total(), \
        f"{what}: {got_pitches.total()} of {sent_pitches.total()} arrived"


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
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "jack", "--clock", "midi",
         "--model", str(tiny_checkpoint), "--preset", str(preset), "--osc-port", "0",
         "--quiet", "--record", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env)
    # Our ports close before the server stops, also when an assertion fails: an rtmidi port
    # left to the garbage collector after its JACK server is gone can crash the test run.
    ports = contextlib.ExitStack()
    try:
        ready = _wait_ready(process)
        osc_port = int(ready.split("osc 127.0.0.1:")[1].split(",")[0])
        rt = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        listener = ports.enter_context(
            Listener(resolve_port("qbdi out", rt.get_input_names(), "input")))
        ports.callback(time.sleep, UNREGISTER_SETTLE_S)  # one close at a time (ports.py)
        player = ports.enter_context(
            rt.open_output(resolve_port("qbdi in", rt.get_output_names(), "output")))
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
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        log = process.stderr.read()  # --quiet: its warnings (overruns, skipped bars) alone
        assert code == 0, f"serve exited with {code}: {log[-3000:]}"
        time.sleep(0.2)  # the last note-offs cross JACK
        reply, _ = osc.recvfrom(65_535)
        assert reply == encode("/qbdi/bits", [0])
    finally:
        ports.close()
        if process.poll() is None:
            process.kill()
        process.wait()

    settings = ImproviserSettings(encoding="mean", stats="corpus", budget_bits="full",
                                  threshold=threshold)
    (take,) = tmp_path.glob("qbdi-take-*.mid")
    smf = load_smf(take)
    served = score_of(smf, take, track="player").notes  # the query as serve heard it
    sent = score_of(smf, take, track="qbdi").notes  # its answers as it sent them
    # The way in: nearly every note of the query reached serve, and nothing else.
    _check_delivered(notes, _strikes(m for _, m in read_take(take)["player"]),
                     "query notes into serve")
    # Exact: each answer is the improviser's answer to the bar serve heard, one bar later,
    # at the budget in force: full rate, then 0 bits from the bar the OSC message came in
    # (bar 4 of the clock we sent; earlier on serve's grid if it lost clock ticks).
    markers, stopped = read_markers(smf)  # stopped: serve's position at SIGTERM, on its grid
    cut = min(131, math.floor(stopped) - 1)  # notes before it were all due before SIGTERM
    budgets = [s[1] if s else None for s in settings_per_bar(markers, 9)]
    assert 0 in budgets, budgets
    switch = budgets.index(0)  # the first answer at 0 bits: to bar 4, in bar 5
    assert 2 <= switch <= 5 and budgets[1:] == ["full"] * (switch - 1) + [0] * (9 - switch), \
        budgets
    expected = _answers(tiny_checkpoint, settings, notes_to_bars(served, 8), budgets)
    full_rate = _answers(tiny_checkpoint, settings, notes_to_bars(served, 8), ["full"] * 9)
    assert _before(expected, 80) and _before(expected, cut) != _before(full_rate, cut), \
        "turning the bits down must change the answers"
    # Under load serve may answer a bar late (it drops the notes already due) or skip it,
    # as it logs; every other answer is exact.
    overran = {int(bar) for bar in re.findall(r"bar (\d+) overran", log)}
    skipped = {int(bar) for bar in re.findall(r"bar (\d+) skipped", log)}
    for bar in range(8):
        answer = _in_bar(sent, bar + 1, cut)
        wanted = _in_bar(expected, bar + 1, cut)
        if bar in skipped:
            assert not answer, f"bar {bar} was skipped, yet answered"
        elif bar in overran:
            assert answer <= wanted, f"late answer to bar {bar}: notes not in the answer"
        else:
            assert answer == wanted, f"the answer to bar {bar} is not the improviser's " \
                f"answer to the bar serve heard: {sorted(answer ^ wanted)}"
    # The way out: nearly every note sent reached the DAW, and nothing else.
    _check_delivered(sent, _strikes(listener.messages), "answers out of serve")
    # SIGTERM ends every note serve sent, and serve never struck a sounding note again
    # (that the DAW hears the last note-offs before serve exits is test_stuck_notes.py's)
    ended = NoteRecorder.of(m for _, m in read_take(take)["qbdi"])
    assert ended.sounding == set() and ended.double_note_ons == 0
