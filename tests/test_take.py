"""Recording a session to a MIDI file (``qbdi serve --record``).

In memory with a manual clock (exact steps), the take alone (saving, jumps, failures), and
a real ``qbdi serve`` process on JACK ports stopped by SIGTERM.
"""

from __future__ import annotations

import datetime
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest
from jack_listener import Listener
from stress_rig import echo_preset, jack_backend, jack_server, start_serve_jack
from test_server_clocks import TICK_S
from test_server_loop import ECHO, EXACT, Rig

from qbdi.bars import Note
from qbdi.commands.serve import take_path
from qbdi.errors import MidiFileError, QbdiError
from qbdi.improviser import Improviser
from qbdi.midifile import Track, read_midi, write_midi
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server.clocks import ManualTime, MidiClockFollower
from qbdi.server.manual import run_until
from qbdi.server.ports import MemoryPorts, close_in_turn
from qbdi.server.recorder import NoteRecorder
from qbdi.server.session import Server
from qbdi.server.take import TICKS_PER_STEP, Take, TakeListener
from qbdi.settings import changed
from qbdi.take_score import score_take


def read_take(path: Path) -> dict[str, list[tuple[float, mido.BaseMessage]]]:
    """Each track's messages with their position in steps, by track name."""
    midi = mido.MidiFile(path)
    assert midi.type == 1 and midi.ticks_per_beat == 480
    tracks = {}
    for track in midi.tracks:
        tick, events, name = 0, [], None
        for message in track:
            tick += message.time
            if message.type == "track_name":
                name = message.name
            elif message.type != "end_of_track":
                events.append((tick / TICKS_PER_STEP, message))
        tracks[name] = events
    return tracks


def notes_of(events) -> list[tuple]:
    return [(step, m.type, m.note) for step, m in events if m.type in ("note_on", "note_off")]


def sounding_at_end(events) -> set:
    return NoteRecorder.of(m for _, m in events).sounding


def test_a_take_puts_the_players_notes_and_the_answers_on_one_timeline(tiny_checkpoint,
                                                                          tmp_path):
    take = Take(tmp_path / "take.mid")
    rig = Rig(tiny_checkpoint, ECHO, take=take)
    rig.play(2, 60, 6)
    rig.play(18, 64, 20, velocity=80)
    run_until(rig.server.loop, 40)
    rig.server.shutdown()

    tracks = read_take(take.path)
    assert list(tracks) == ["qbdi take", "player", "qbdi"]
    assert notes_of(tracks["player"]) == [(2, "note_on", 60), (6, "note_off", 60),
                                          (18, "note_on", 64), (20, "note_off", 64)]
    # the qbdi track is what the port was sent, message for message, at the same steps
    assert [(step, m.bytes()) for step, m in tracks["qbdi"]] == \
        [(t, m.bytes()) for t, m in rig.ports.sent]
    assert notes_of(tracks["qbdi"])[:2] == [(18, "note_on", 60), (22, "note_off", 60)]
    conductor = tracks["qbdi take"]
    assert next((s, mido.tempo2bpm(m.tempo)) for s, m in conductor
                              if m.type == "set_tempo") == (0, 120.0)
    assert [(s, m.text) for s, m in conductor if m.type == "marker"] == [(16, "echo, 256 bits")]
    # the file reads back with qbdi's own reader: both parts, on the grid
    assert {n.pitch for n in read_midi(take.path).notes} == {60, 64}


def test_the_take_marks_budget_and_mode_changes_and_follows_the_tempo(tiny_checkpoint,
                                                                      tmp_path):
    take = Take(tmp_path / "take.mid")
    rig = Rig(tiny_checkpoint, {**EXACT, "budget_bits": 256}, take=take)
    rig.play(2, 60, 10)
    run_until(rig.server.loop, 20)
    rig.server.control.change(improviser={"budget_bits": 0})
    run_until(rig.server.loop, 36)
    rig.server.control.set_tempo(90.0)
    rig.server.control.change(improviser={"mode": "echo"})
    run_until(rig.server.loop, 52)
    rig.server.control.change(improviser={"threshold": 0.6})  # no marker; the settings text says it
    run_until(rig.server.loop, 68)
    rig.server.shutdown()

    conductor = read_take(take.path)["qbdi take"]
    markers = [(s, m.text) for s, m in conductor if m.type == "marker"]
    assert markers == [(16, "query, 256 bits"), (32, "query, 0 bits"), (48, "echo, 0 bits")]
    texts = [(s, json.loads(m.text.removeprefix("improviser "))) for s, m in conductor
             if m.type == "text"]
    assert [(s, t["mode"], t["budget_bits"], t["threshold"]) for s, t in texts] == [
        (16, "query", 256, 0.5), (32, "query", 0, 0.5), (48, "echo", 0, 0.5),
        (64, "echo", 0, 0.6)]
    assert texts[0][1]["stats"] == "corpus" and texts[0][1]["seed"] == 0
    tempos = [(s, round(mido.tempo2bpm(m.tempo), 3)) for s, m in conductor
              if m.type == "set_tempo"]
    assert tempos == [(0, 120.0), (36, 90.0)]


def test_every_note_on_in_the_file_has_its_note_off(tiny_checkpoint, tmp_path):
    take = Take(tmp_path / "take.mid")
    rig = Rig(tiny_checkpoint, ECHO, take=take)
    rig.press(2, 60)
    rig.press(4, 60)  # struck again without a release (a keyboard can send that)
    rig.press(6, 67)  # still held when the take ends
    rig.ports.play(mido.Message("control_change", control=64, value=127))  # sustain pedal
    run_until(rig.server.loop, 24)
    rig.server.shutdown()

    tracks = read_take(take.path)
    player = tracks["player"]
    assert sounding_at_end(player) == set() and sounding_at_end(tracks["qbdi"]) == set()
    assert notes_of(player)[:3] == [(2, "note_on", 60), (4, "note_off", 60), (4, "note_on", 60)]
    assert [(s, m.control, m.value) for s, m in player if m.type == "control_change"] == \
        [(6, 64, 127)]
    end = max(step for track in tracks.values() for step, _ in track)
    assert [(s, m.note) for s, m in player if m.type == "note_off"][-2:] == [(end, 60),
                                                                             (end, 67)]


def test_a_take_is_saved_while_it_runs_and_the_file_is_whole_each_time(tmp_path):
    take = Take(tmp_path / "take.mid", save_every_s=0.05)
    take.start(0.0, 100.0)
    take.note("player", 1.0, mido.Message("note_on", note=50, velocity=90))
    deadline = time.monotonic() + 5
    while take.saves == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    # saved while the note still sounds: released at the end in the file on disk
    assert notes_of(read_take(take.path)["player"]) == [(1, "note_on", 50),
                                                        (1, "note_off", 50)]
    take.note("player", 3.0, mido.Message("note_off", note=50))
    take.close()
    assert notes_of(read_take(take.path)["player"]) == [(1, "note_on", 50),
                                                        (3, "note_off", 50)]
    assert not (tmp_path / "take.mid.part").exists()


def test_after_a_clock_jump_the_take_goes_on_in_the_next_bar_at_the_same_beat(tmp_path):
    take = Take(tmp_path / "take.mid")
    take.start(0.0, 120.0)
    take.note("qbdi", 40.0, mido.Message("note_on", note=60, velocity=90))
    take.note("qbdi", 42.0, mido.Message("note_off", note=60))
    take.jump(4.0)  # the DAW moved back to beat 2 of bar 1
    take.note("qbdi", 6.0, mido.Message("note_on", note=62, velocity=90))
    take.note("qbdi", 7.0, mido.Message("note_off", note=62))
    take.close()
    assert notes_of(read_take(take.path)["qbdi"]) == [
        (40, "note_on", 60), (42, "note_off", 60), (54, "note_on", 62), (55, "note_off", 62)]


def test_a_failed_save_is_logged_and_does_not_stop_anything(tmp_path, caplog):
    folder = tmp_path / "gone"
    folder.mkdir()
    take = Take(folder / "take.mid")
    take.start(0.0, 120.0)
    take.note("player", 1.0, mido.Message("note_on", note=50, velocity=90))
    folder.rmdir()
    with caplog.at_level(logging.ERROR):
        take.close()
    assert take.failed_saves == 1 and take.saves == 0 and not take.last_save_ok
    assert "could not save the take" in caplog.text and str(folder / "take.mid") in caplog.text


def test_record_takes_a_new_file_or_a_dated_one_in_a_folder(tmp_path):
    at = datetime.datetime(2026, 11, 25, 10, 30, 5)
    assert take_path(tmp_path, at) == tmp_path / "qbdi-take-20261125-103005.mid"
    assert take_path(tmp_path / "new.mid") == tmp_path / "new.mid"
    (tmp_path / "old.mid").write_bytes(b"a take from yesterday")
    with pytest.raises(QbdiError, match="already exists"):
        take_path(tmp_path / "old.mid")
    with pytest.raises(QbdiError, match="does not exist"):
        take_path(tmp_path / "missing" / "take.mid")


def test_serve_refuses_a_record_path_it_would_overwrite(tmp_path):
    old = tmp_path / "old.mid"
    old.write_bytes(b"keep me")
    result = subprocess.run([sys.executable, "-m", "qbdi.cli", "serve", "--backend", "memory",
                             "--osc-port", "0", "--record", str(old)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "already exists" in result.stderr and old.read_bytes() == b"keep me"


def joined_note_ons(heard: list[tuple[float, mido.Message]], same_instant_s: float = 0.005
                    ) -> list[int]:
    """The pitches of the notes heard, in order; a note that echo split at a barline (its
    note-off and a new note-on at one instant: the server's bars and the test's notes are
    not in phase) counts once."""
    pitches, released_s = [], {}
    for t_s, message in heard:
        if message.type == "note_off" or (message.type == "note_on" and not message.velocity):
            released_s[message.note] = t_s
        elif (message.type == "note_on"
              and t_s - released_s.get(message.note, -1.0) > same_instant_s):
            pitches.append(message.note)
    return pitches


@pytest.mark.jack
def test_serve_records_a_take_through_jack_ports_and_saves_it_on_sigterm(tiny_checkpoint,
                                                                         tmp_path):
    preset = echo_preset(tmp_path)
    with jack_server():
        rt = jack_backend()
        daw_in = Listener("daw in", virtual=True, client_name="daw")
        daw_out = rt.open_output("daw out", virtual=True, client_name="daw")
        process = start_serve_jack(tiny_checkpoint, preset, "--in", "daw out", "--out",
                                   "daw in", "--record", str(tmp_path))
        try:
            line = process.stdout.readline()
            assert "ready" in line and "recording to" in line, process.stderr.read()
            played = [60, 64, 67]
            for pitch in played:  # one note a bar (a bar is 0.5 s at 480 BPM)
                daw_out.send(mido.Message("note_on", note=pitch, velocity=90))
                time.sleep(0.2)
                daw_out.send(mido.Message("note_off", note=pitch))
                time.sleep(0.3)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not any(
                    m.type == "note_on" and m.note == played[-1] for m in daw_in.messages):
                time.sleep(0.05)
            time.sleep(0.3)  # the last echo may be split at a barline: its second half
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0, process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
            close_in_turn(daw_in.close, daw_out.close)  # one at a time (ports.py)
    heard = daw_in.heard
    takes = list(tmp_path.glob("qbdi-take-*.mid"))
    assert len(takes) == 1
    tracks = read_take(takes[0])
    assert [m.note for _, m in tracks["player"] if m.type == "note_on"] == played
    # the qbdi track holds the notes the DAW heard, in order, and leaves nothing sounding
    # (the closing CC 123 may not cross JACK before the process leaves, so notes alone)
    def note_bytes(messages):
        return [m.bytes() for m in messages if m.type in ("note_on", "note_off")]

    assert note_bytes(m for _, m in tracks["qbdi"]) == note_bytes(m for _, m in heard)
    assert joined_note_ons(heard) == played
    assert sounding_at_end(tracks["qbdi"]) == set()


# -- a take's parts, offline --------------------------------------------------------------

def _two_part_file(path: Path) -> None:
    write_midi(path, [Track([Note(0, 60, 4, 90), Note(16, 62, 20, 90)], 0, "player"),
                      Track([Note(16, 72, 18, 70)], 0, "qbdi")],
               tempos=[(0, mido.bpm2tempo(100)), (16, mido.bpm2tempo(90))])


def test_read_midi_takes_one_named_part_and_keeps_the_tempo_map(tmp_path):
    path = tmp_path / "take.mid"
    _two_part_file(path)
    player = read_midi(path, track="player")
    assert [(n.start_step, n.pitch, n.end_step) for n in player.notes] == [(0, 60, 4),
                                                                           (16, 62, 20)]
    assert player.tempos == [(0, mido.bpm2tempo(100)), (16, mido.bpm2tempo(90))]
    assert [n.pitch for n in read_midi(path, track="qbdi").notes] == [72]
    assert [n.pitch for n in read_midi(path).notes] == [60, 62, 72]
    with pytest.raises(MidiFileError, match=r"no track named 'drums' \(tracks: 'qbdi', "
                                            r"'player', 'qbdi'\)"):
        read_midi(path, track="drums")


def test_render_improvises_again_on_the_players_part_of_a_take(tmp_path):
    take = tmp_path / "take.mid"
    _two_part_file(take)
    out = tmp_path / "again.mid"
    result = subprocess.run([sys.executable, "-m", "qbdi.cli", "render", str(take), "-o",
                             str(out), "--mode", "echo", "--track", "player"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [n.pitch for n in read_midi(out).notes] == [60, 62]
    missing = subprocess.run([sys.executable, "-m", "qbdi.cli", "analyze", str(take), "--out",
                              str(tmp_path / "report"), "--track", "drums"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no track named 'drums'" in missing.stderr


def test_a_daws_restart_continues_the_take_in_a_later_bar_with_its_tempo(tiny_checkpoint,
                                                                         tmp_path):
    """Following MIDI clock at 250 BPM: the DAW plays from 0, then Start again; the take
    goes on after what was recorded, at the same place in the bar."""
    time_s = ManualTime()
    clock = MidiClockFollower(time_s)
    ports = MemoryPorts(now=clock.now_steps)
    state = changed(load_preset("default"), improviser={"mode": "echo"})
    take = Take(tmp_path / "take.mid")
    server = Server(ports, clock, Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint)),
                    state, listeners=[TakeListener(take)])
    server.start()

    def run(ticks: range, notes: dict[int, mido.Message]) -> None:
        ports.play(mido.Message("start"))
        server.step()
        for tick in ticks:
            time_s.t_s += TICK_S
            ports.play(mido.Message("clock"))
            if tick in notes:
                ports.play(notes[tick])
            server.step()

    run(range(150), {12: mido.Message("note_on", note=60, velocity=90),
                     24: mido.Message("note_off", note=60)})  # 6 ticks a step
    run(range(40), {12: mido.Message("note_on", note=62, velocity=90),
                    24: mido.Message("note_off", note=62)})
    server.shutdown()

    tracks = read_take(take.path)
    assert notes_of(tracks["player"]) == [(2, "note_on", 60), (4, "note_off", 60),
                                          (34, "note_on", 62), (36, "note_off", 62)]
    assert notes_of(tracks["qbdi"]) == [(18, "note_on", 60), (20, "note_off", 60)]
    tempos = [round(mido.tempo2bpm(m.tempo)) for _, m in tracks["qbdi take"]
              if m.type == "set_tempo"]
    assert tempos[-1] == 250


# -- scoring a take -----------------------------------------------------------------------

def _scored_take(path: Path) -> None:
    """Answers that copy the bar before them, except bar 2 (F# for E) and bar 4 (silent: it
    counts); 256 bits from bar 1, full rate from bar 3, echo from bar 5 (not scored)."""
    take = Take(path)
    take.start(0.0, 120.0)
    for step, text in ((16, "query, 256 bits"), (48, "query, full rate"), (80, "echo, 0 bits")):
        take.marker(step, text)
    for bar, (played, answered) in enumerate([(60, None), (64, 60), (67, 66), (60, 67),
                                              (None, None)]):
        for track, pitch in (("player", played), ("qbdi", answered)):
            if pitch is not None:
                take.note(track, bar * 16, mido.Message("note_on", note=pitch, velocity=90))
                take.note(track, bar * 16 + 4, mido.Message("note_off", note=pitch))
    take.close()


def test_a_take_is_scored_per_budget_answer_against_the_bar_it_answered(tmp_path):
    path = tmp_path / "take.mid"
    _scored_take(path)
    rows = score_take(path)
    assert [(r.budget_bits, r.bars) for r in rows] == [(256, 2), ("full", 2)]
    assert (rows[0].chroma_cosine, rows[0].onset_f1) == (0.5, 0.5)
    assert (rows[1].chroma_cosine, rows[1].onset_f1) == (0.5, pytest.approx(2 / 3))


def test_a_take_s_answers_get_the_style_of_a_style_measure(tmp_path):
    from seeded import starts_style

    path = tmp_path / "take.mid"
    _scored_take(path)
    rows = score_take(path, style=starts_style())
    # one note start in each answer bar scored: P = (1 + 1) / (2 + 1); bar 4 is silent
    assert rows[0].style == pytest.approx(2 / 3)
    assert rows[1].style == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert score_take(path)[0].style is None


def test_score_take_on_the_command_line(tmp_path):
    path = tmp_path / "take.mid"
    _scored_take(path)
    out = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, "-m", "qbdi.cli", "score", "--take", str(path),
                             "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert " 256     2   0.500    0.500" in result.stdout
    assert [row["budget_bits"] for row in json.loads(out.read_text())] == [256, "full"]
    not_a_take = tmp_path / "plain.mid"
    write_midi(not_a_take, [Track([Note(0, 60, 4, 90)], 0, "player"),
                            Track([Note(16, 60, 20, 90)], 0, "qbdi")])
    refused = subprocess.run([sys.executable, "-m", "qbdi.cli", "score", "--take",
                              str(not_a_take)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "no mode/budget markers" in refused.stderr


def test_a_served_take_scores_its_query_bars(tiny_checkpoint, tmp_path):
    take = Take(tmp_path / "take.mid")
    rig = Rig(tiny_checkpoint, {**EXACT, "budget_bits": 64}, take=take)
    for bar in range(3):  # velocities differ from the answers' (the bar before's), or a
        # note played as the tiny model strikes the same pitch would be taken for its echo
        rig.play(bar * 16 + 2, 60 + bar, bar * 16 + 6, velocity=90 + bar)
    run_until(rig.server.loop, 64)
    rig.server.shutdown()
    rows = score_take(take.path)
    assert [(row.budget_bits, row.bars) for row in rows] == [(64, 3)]
    assert 0.0 <= rows[0].chroma_cosine <= 1.0 and 0.0 <= rows[0].onset_f1 <= 1.0
