"""The live IR feed: with in-memory ports and a manual clock, a query file played in gives
IR values equal to the offline analysis of the same frames, a repeated phrase is reported
as a motif, the answers are exactly the same with the feed on or off, the feed off sends
nothing, and the messages arrive over real UDP."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import mido
import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from query_data import DYNAMICS_PEDAL
from test_server_loop import EXACT, Rig

from qbdi.analysis import chroma, distance_matrix, ir_over_time
from qbdi.bars import Note, notes_to_bars
from qbdi.improviser import Improviser
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server import live_ir, osc, osc_docs
from qbdi.server.clocks import InternalClock
from qbdi.server.live_ir import IrStream, LiveIr
from qbdi.server.manual import run_until
from qbdi.server.osc_transport import OscTransport, encode
from qbdi.server.ports import MemoryPorts
from qbdi.server.session import Server
from qbdi.settings import LiveIrSettings, changed

N_BARS = 8
# Answers at velocity 1, which the query never uses: the echo filter would otherwise take an
# input note for our own echo where an answer note has the same pitch, step and velocity.
QUIET = {"velocity": "fixed", "fixed_velocity": 1}
FEED_ADDRESSES = (live_ir.IR_IN, live_ir.IR_OUT, live_ir.MOTIF)


@pytest.fixture(scope="module")
def query_notes(queries_dir) -> list[Note]:
    """The first N_BARS bars of a query played with a crescendo (velocities 20 and up),
    clipped to N_BARS: every bar has notes, so query mode answers each one."""
    score = read_midi(queries_dir / DYNAMICS_PEDAL)
    end = N_BARS * 16
    notes = [Note(n.start_step, n.pitch, min(n.end_step, end), n.velocity)
             for n in score.notes if n.start_step < end]
    assert notes_to_bars(notes, N_BARS).any(axis=(1, 2, 3)).all()
    assert min(n.velocity for n in notes) > QUIET["fixed_velocity"]
    return notes


def play(rig: Rig, notes: list[Note], until_step: float,
         at_step: dict[float, Any] | None = None) -> None:
    """Play ``notes`` into the rig in time order (releases first), then run to
    ``until_step``; ``at_step`` maps a step to a callable run there."""
    events = sorted([(n.start_step, 1, n) for n in notes] + [(n.end_step, 0, n) for n in notes],
                    key=lambda e: (e[0], e[1], e[2].pitch))
    actions = sorted(at_step.items()) if at_step else []
    for step, is_on, note in events:
        while actions and actions[0][0] <= step:
            run_until(rig.server.loop, actions[0][0])
            actions.pop(0)[1]()
        run_until(rig.server.loop, step)
        kind = "note_on" if is_on else "note_off"
        rig.ports.play(mido.Message(kind, note=note.pitch, velocity=note.velocity if is_on else 0))
        rig.server.step()
    run_until(rig.server.loop, until_step)


def enabled(rig: Rig, **settings: Any) -> Rig:
    rig.server.control.change(live_ir={"enabled": True, **settings})
    return rig


def feed_messages(rig: Rig) -> list[tuple[str, list[Any]]]:
    assert rig.server.live_ir.wait_idle()
    return [(a, args) for a, args, _ in rig.feedback.sent if a in FEED_ADDRESSES]


def prefix_ir(frames: np.ndarray, threshold: float = 0.68) -> list[float]:
    """Frame i's IR as the offline analysis of frames 0..i gives it (the last value): what
    was known when frame i arrived. (Offline over more frames, a frame inside a repeated
    block gets the whole block's length, so its IR may rise later.)"""
    distances = distance_matrix(frames, "tonnetz")
    return [float(ir_over_time(distances[: i + 1, : i + 1], threshold)[-1])
            for i in range(len(frames))]


def offline_ir(bars: np.ndarray, threshold: float = 0.68) -> list[float]:
    return prefix_ir(chroma(bars, 4), threshold)


def sent_ir(rig: Rig, address: str) -> tuple[list[int], list[float]]:
    rows = rig.feedback.addressed(address)
    return [r[0] for r in rows], [v for r in rows for v in r[1:]]


def test_ir_sent_for_a_real_query_equals_the_offline_analysis(tiny_checkpoint, query_notes):
    rig = enabled(Rig(tiny_checkpoint, improviser=EXACT, playing=QUIET))
    play(rig, query_notes, N_BARS * 16 + 8)  # bar N_BARS - 1 closed, the next one open
    assert rig.server.live_ir.wait_idle()
    rig.server.shutdown()

    played = notes_to_bars(query_notes, N_BARS)
    bars_in, ir_in = sent_ir(rig, "/qbdi/ir/in")
    assert bars_in == list(range(N_BARS))
    assert ir_in == offline_ir(played)  # exactly: the incremental oracle's guarantee

    settings = changed(load_preset("default"), improviser=EXACT).improviser
    improviser = Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint))
    answers = np.stack([improviser.step(bar, settings).bar for bar in played])
    bars_out, ir_out = sent_ir(rig, "/qbdi/ir/out")
    assert bars_out == list(range(1, N_BARS + 1))  # the bar each answer sounds in
    assert ir_out == offline_ir(answers)
    assert max(ir_in) > 0 and rig.server.live_ir.counters.errors == 0


def test_answers_are_the_same_with_the_feed_on_off_or_switched_on_midway(tiny_checkpoint,
                                                                         query_notes):
    off = Rig(tiny_checkpoint, improviser=EXACT, playing=QUIET)
    on = enabled(Rig(tiny_checkpoint, improviser=EXACT, playing=QUIET))
    midway = Rig(tiny_checkpoint, improviser=EXACT, playing=QUIET)
    switch = {3 * 16 + 5.0: lambda: midway.server.post_osc("/qbdi/ir/enable", [1], None)}
    for rig, actions in ((off, None), (on, None), (midway, switch)):
        play(rig, query_notes, (N_BARS + 2) * 16, actions)
        rig.server.shutdown()
    assert on.events() == off.events()
    assert midway.events() == off.events()
    assert len(off.events()) > 20
    assert [m[1][0] for m in feed_messages(midway) if m[0] == "/qbdi/ir/in"] == list(
        range(3, N_BARS + 2))
    for rig in (off, on, midway):
        rig.assert_silent()


def test_feed_off_sends_nothing_and_starts_no_thread(tiny_checkpoint, query_notes):
    rig = Rig(tiny_checkpoint, improviser=EXACT, playing=QUIET)
    play(rig, query_notes, (N_BARS + 1) * 16)
    assert rig.feedback.addressed("/qbdi/bar")
    assert feed_messages(rig) == []
    assert rig.server.live_ir._thread is None

    enabled(rig)
    run_until(rig.server.loop, (N_BARS + 3) * 16)
    assert len(feed_messages(rig)) >= 4
    rig.server.control.change(live_ir={"enabled": False})
    before = feed_messages(rig)
    run_until(rig.server.loop, (N_BARS + 6) * 16)
    assert feed_messages(rig) == before
    rig.server.shutdown()
    assert not rig.server.live_ir._thread.is_alive()


def phrase(first_bar: int, roots: list[int]) -> list[Note]:
    """One bar per root: a four-beat arpeggio root, third, fifth, octave."""
    notes = []
    for k, root in enumerate(roots):
        for beat, interval in enumerate((0, 4, 7, 12)):
            start = (first_bar + k) * 16 + beat * 4
            notes.append(Note(start, root + interval, start + 4, 90))
    return notes


def test_a_repeated_phrase_is_reported_as_a_motif_in_the_input_and_the_echo(tiny_checkpoint):
    rig = enabled(Rig(tiny_checkpoint))  # echo: the output is the input one bar later
    # A B A B A B, then C D: the repeat of A B that began at bar 2 ends at bar 6.
    notes = phrase(0, [60, 62, 60, 62, 60, 62, 65, 67])
    play(rig, notes, 9 * 16)
    motifs = [args for a, args in feed_messages(rig) if a == live_ir.MOTIF]
    rig.server.shutdown()
    # 16 beats (bars 2-5) repeated what began at beat 0; the answers one bar (4 beats) later.
    assert motifs == [["in", 16, 0, 8], ["out", 16, 4, 12]]


def test_a_threshold_change_restarts_the_oracles_from_the_next_bar(tiny_checkpoint,
                                                                   query_notes):
    rig = enabled(Rig(tiny_checkpoint, improviser=EXACT, playing=QUIET))
    change = {4 * 16 + 2.0: lambda: rig.server.post_osc("/qbdi/ir/threshold", [0.4], None)}
    play(rig, query_notes, N_BARS * 16 + 8, change)
    assert rig.server.live_ir.wait_idle()
    rig.server.shutdown()
    assert rig.feedback.addressed("/qbdi/ir/threshold") == [[0.4]]
    bars_in, ir_in = sent_ir(rig, "/qbdi/ir/in")
    assert bars_in == list(range(N_BARS))
    played = notes_to_bars(query_notes, N_BARS)
    assert ir_in[:16] == offline_ir(played[:4])
    assert ir_in[16:] == offline_ir(played[4:], threshold=0.4)


def test_the_window_bounds_memory_and_keeps_the_offline_equality(queries_dir):
    bars = notes_to_bars(read_midi(queries_dir / DYNAMICS_PEDAL).notes)
    assert len(bars) == 40
    stream = IrStream(LiveIrSettings(enabled=True, window_bars=8))
    for index, bar in enumerate(bars):
        ir_bits, _ = stream.add(index, bar)
        assert len(stream.frames) <= 32
        assert ir_bits == prefix_ir(np.array(stream.frames))[-4:]
        assert stream.beats[-1] == index * 4 + 3
    assert stream.restarts == (40 - 8) // 4  # at bars 8, 12, ..., 36


def test_a_full_queue_drops_the_bar_instead_of_waiting():
    release, busy = threading.Event(), threading.Event()

    def slow_send(address: str, args: list[Any]) -> None:
        busy.set()
        release.wait(5.0)

    feed = LiveIr(slow_send, LiveIrSettings(enabled=True), queue_bars=2)
    silent = np.zeros((16, 2, 78), dtype=bool)
    assert feed.feed(0, silent, None)
    assert busy.wait(5.0)  # the worker holds bar 0 in send: the queue is empty
    started = time.perf_counter()
    accepted = [feed.feed(i, silent, silent) for i in range(1, 5)]
    assert time.perf_counter() - started < 0.5  # never waits for the worker
    assert accepted == [True, True, False, False]
    assert feed.counters.dropped_bars == 2
    release.set()
    assert feed.wait_idle()
    assert feed.counters.bars == 3
    feed.close()


def test_a_failing_bar_is_counted_and_the_feed_goes_on():
    sent: list[tuple[str, list[Any]]] = []
    feed = LiveIr(lambda a, args: sent.append((a, args)), LiveIrSettings(enabled=True))
    feed.feed(0, np.zeros((16, 2, 77), dtype=bool), None)  # a bar of the wrong shape
    feed.feed(1, np.zeros((16, 2, 78), dtype=bool), None)
    assert feed.wait_idle()
    feed.close()
    assert feed.counters.errors == 1
    assert [a for a, _ in sent] == [live_ir.IR_IN, live_ir.IR_OUT]


def test_the_feed_messages_arrive_over_udp_at_the_feedback_target(tiny_checkpoint):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.05)
    control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    state = changed(load_preset("default"), tempo_bpm=960.0, improviser={"mode": "echo"})
    improviser = Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint))
    transport = OscTransport("127.0.0.1", 0, feedback=listener.getsockname())
    server = Server(MemoryPorts(), InternalClock(960.0), improviser, state, feedback=transport)
    stop = threading.Event()
    server.start()
    transport.start(server.post_osc)
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        control.sendto(encode("/qbdi/ir/enable", [1]), ("127.0.0.1", transport.port))
        got: dict[str, list[Any]] = {}
        deadline = time.monotonic() + 5.0  # a bar is 0.25 s at 960 BPM
        while time.monotonic() < deadline and not {"/qbdi/ir/in", "/qbdi/ir/out"} <= set(got):
            try:
                message = OscMessage(listener.recvfrom(65_535)[0])
            except TimeoutError:
                continue
            got.setdefault(message.address, list(message.params))
        assert got["/qbdi/ir/enable"] == [1]
        assert len(got["/qbdi/ir/in"]) == 5 and len(got["/qbdi/ir/out"]) == 5
        assert got["/qbdi/ir/out"][0] == got["/qbdi/ir/in"][0] + 1
    finally:
        stop.set()
        thread.join(timeout=2.0)
        transport.close()
        listener.close()
        control.close()
    assert not server.live_ir._thread.is_alive()


def test_feed_addresses_are_documented_and_old_presets_stay_valid(tmp_path):
    documented = {address for address, _, _ in osc.FEEDBACK}
    assert set(FEED_ADDRESSES) <= documented
    assert {"/qbdi/ir/enable", "/qbdi/ir/threshold"} <= set(osc.BY_ADDRESS)
    markdown = osc_docs.markdown_table()
    assert all(f"`{address}`" in markdown for address in FEED_ADDRESSES)
    old = tmp_path / "old.toml"
    old.write_text('[improviser]\nmode = "echo"\n\n[playing]\nvelocity = "follow"\n')
    assert load_preset(old).live_ir == LiveIrSettings()
    assert load_preset("default").live_ir == LiveIrSettings()
