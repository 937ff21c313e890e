"""The real ``qbdi serve`` driven by programs nobody here wrote, through real JACK ports on a
JACK server each test owns (:mod:`outside_clients`): a looping clip (``jack_midiseq``), a
recorder (``jack_midi_dump``), a controller and a feedback display (liblo's ``oscsend`` and
``oscdump``), the DAW's MIDI clock (``jack_midi_clock`` + ``jack_transport``) and a file
player (``mido-play``). A few seconds each, at 480 BPM (a bar is half a second).

What is checked is what a musician would see: bars answered, a budget change in the next
answer, the DAW's tempo followed, the player's notes all heard (no look-alike dropped as an
echo), a real loop found and its echoes kept out of the queries, and no note left sounding
after SIGTERM or a clock Stop.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import sys
import time

import mido
import pytest
from jack_session import session
from outside_clients import (
    MidiDump,
    OscDump,
    note_ons,
    oscsend,
    preset_file,
    sounding_after,
    start_clip,
    start_serve,
)

pytestmark = pytest.mark.jack

TEMPO_BPM = 480.0
BAR_S = 4 * 60.0 / TEMPO_BPM
CLIP = [(0, 60, 2), (4, 64, 2), (8, 67, 2), (12, 72, 2)]  # (step, pitch, steps), velocity 64
TICKS_PER_STEP = 120  # in a take (480 a beat)


def _bars(dump: OscDump, after_s: float = 0.0) -> list[tuple]:
    return [m.args for m in dump.messages("/qbdi/bar") if m.t_s >= after_s]


def _wait_bars(dump: OscDump, count: int, after_s: float = 0.0, timeout_s: float = 15.0,
               with_input: bool = True) -> list[tuple]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bars = [b for b in _bars(dump, after_s) if b[3] > 0 or not with_input]
        if len(bars) >= count:
            return bars
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} bars answered; oscdump printed:\n"
                         + dump.output.text()[-2000:])


def _stop_cleanly(serve, recorder: MidiDump) -> None:
    """SIGTERM: exit 0, and the recorder on "qbdi out" hears every note end."""
    assert serve.stop() == 0, serve.output.text()
    time.sleep(0.2)  # the last messages reach the recorder
    heard = recorder.stop()
    assert note_ons(heard), "the recorder heard no answer at all"
    assert sounding_after(heard) == set()


def test_a_looped_clip_is_answered_and_oscsend_turns_the_budget(tmp_path):
    with session("clip") as jack:
        dump = OscDump(jack)
        serve = start_serve(jack, preset_file(tmp_path, TEMPO_BPM), dump.port)
        recorder = MidiDump(jack, "recorder")
        start_clip(jack, "clip", TEMPO_BPM, CLIP)
        jack.connect("clip:out", serve.in_port)
        jack.connect(serve.out_port, "recorder:input")
        before = _wait_bars(dump, 3)
        assert all(bar[2] > 0 for bar in before)  # 256 bits: dimensions get bits
        indexes = [bar[0] for bar in _bars(dump)]
        assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))
        oscsend(serve.osc_port, "/qbdi/bits", "i", 0)
        reply = dump.wait_for("/qbdi/bits", lambda args: args == (0,))
        after = _wait_bars(dump, 2, after_s=reply.t_s)
        assert after[0][2] == 0, "the next answer after /qbdi/bits 0 must use no bits"
        status = dump.status(serve.osc_port)
        assert status["echoes_dropped"] == 0, "a player's note was dropped as an echo"
        assert status["notes_in"] >= 4 * 3 - 1 and status["echo_loop"] == 0
        _stop_cleanly(serve, recorder)


def player_track(take) -> list[tuple[float, int]]:
    """(step, channel) of every note-on in a take's ``player`` track: what the server heard
    as the player's (a take's step 0 is the server's bar 0)."""
    track = next(t for t in mido.MidiFile(take).tracks if t.name == "player")
    ticks, notes = 0, []
    for message in track:
        ticks += message.time
        if message.type == "note_on" and message.velocity > 0:
            notes.append((ticks / TICKS_PER_STEP, message.channel))
    return notes


def test_a_real_loop_through_jack_is_found_and_its_echoes_kept_out_of_the_queries(tmp_path):
    """qbdi out connected to qbdi in, as a DAW's monitored track would. The answers go out
    on channel 2 and the clip plays on channel 1, so the take's player track tells every
    echo that got through (channel 2) from the clip's notes."""
    take = tmp_path / "take.mid"
    preset = preset_file(tmp_path, TEMPO_BPM, playing={"midi_channel": 2})
    with session("loop") as jack:
        dump = OscDump(jack)
        serve = start_serve(jack, preset, dump.port, "--record", str(take))
        recorder = MidiDump(jack, "recorder")
        start_clip(jack, "clip", TEMPO_BPM, CLIP)
        jack.connect("clip:out", serve.in_port)
        jack.connect(serve.out_port, "recorder:input")
        jack.connect(serve.out_port, serve.in_port)  # the loop
        found = dump.wait_for("/qbdi/echo/loop", timeout_s=15)
        assert found.args[0] == 1 and 0.0 <= found.args[1] < 50.0
        _wait_bars(dump, 6, after_s=found.t_s)
        status = dump.status(serve.osc_port)
        assert status["echo_loop"] == 1 and len(dump.messages("/qbdi/echo/loop")) == 1
        _stop_cleanly(serve, recorder)
    # Found while bar `last + 1` played: from bar `last + 2` on, no echo reached a query.
    last = max(m.args[0] for m in dump.messages("/qbdi/bar") if m.t_s < found.t_s)
    heard = player_track(take)
    leaked = [step for step, channel in heard if channel == 1]
    assert all(step < (last + 2) * 16 for step in leaked), (leaked, last)
    # Before, the first answers' echoes are heard while their notes still sound (a round
    # trip is whole at the echo's note-off); benchmarks/bench_echo_guard.py measures the
    # share dropped over minutes.
    assert status["echo_notes_dropped"] >= 6 * 2, status
    assert sum(channel == 0 for _, channel in heard) >= 4 * 6


def _clock_tempo_bpm(ticks: MidiDump) -> float:
    """The tempo of the MIDI clock in JACK's own time (its frames at 48 kHz): 24 clocks a
    quarter note. On a loaded machine the dummy driver runs slower than the wall clock, and
    the server, which times the clocks as they arrive, hears a slower tempo by as much."""
    frames = [event.frame for event in ticks.events() if event.data == (0xF8,)]
    assert len(frames) > 100, ticks.output.text()[-500:]
    frames = frames[len(frames) // 4:]  # steady state
    seconds = (frames[-1] - frames[0]) / 48000
    return (len(frames) - 1) / seconds * 60.0 / 24


def test_the_daws_midi_clock_from_jack_midi_clock_is_followed(tmp_path):
    with session("clock") as jack:
        dump = OscDump(jack)
        serve = start_serve(jack, preset_file(tmp_path, 120.0), dump.port, "--clock", "midi")
        recorder = MidiDump(jack, "recorder")
        ticks = MidiDump(jack, "ticks")
        jack.start("jack_midi_clock", "-b", f"{TEMPO_BPM:g}", "-B")
        start_clip(jack, "clip", TEMPO_BPM, CLIP)
        jack.connect("jack_midi_clock:mclk_out", serve.in_port)
        jack.connect("jack_midi_clock:mclk_out", "ticks:input")
        jack.connect("clip:out", serve.in_port)
        jack.connect(serve.out_port, "recorder:input")
        jack.transport("locate 0", "play")  # Start, then 24 clocks a quarter note
        deadline = time.monotonic() + 15
        while len(dump.messages("/qbdi/bar")) < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        bars = dump.messages("/qbdi/bar")
        assert len(bars) >= 8, dump.output.text()[-2000:]
        # JACK's dummy driver falls behind the wall clock on a loaded machine, and the
        # server measures the tempo from the clocks' arrival times, so both jitter by a few
        # percent here: the server left its preset's 120 BPM for the clock's, reports it
        # once a bar as it moves, and its bars follow what it reports.
        # The clock runs at its tempo in JACK's time; in wall time the dummy driver ran up
        # to 25 % slow under load (and never fast), which the server follows as it hears it.
        assert _clock_tempo_bpm(ticks) == pytest.approx(TEMPO_BPM, rel=0.02)
        tempos = [m.args[0] for m in dump.messages("/qbdi/bpm")]
        followed_bpm = statistics.median(tempos)
        assert 0.7 * TEMPO_BPM <= followed_bpm <= 1.05 * TEMPO_BPM, tempos
        gaps_s = [b.t_s - a.t_s for a, b in itertools.pairwise(bars[1:])]
        # the bars follow the clock as it arrives, the reported tempo is its running
        # estimate: under the dummy driver's jitter the two medians differed by up to 8 %
        assert statistics.median(gaps_s) == pytest.approx(240 / followed_bpm, rel=0.1)
        jack.transport("stop")  # Stop: every answer note ends at once
        time.sleep(0.5)
        assert sounding_after(recorder.events()) == set()
        assert dump.status(serve.osc_port)["echoes_dropped"] == 0
        _stop_cleanly(serve, recorder)


def _mido_play() -> list[str]:
    found = shutil.which("mido-play")
    return [found] if found else [sys.executable, "-m", "mido.scripts.mido_play"]


def test_mido_play_plays_a_real_file_into_the_server(tmp_path):
    song = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(TEMPO_BPM))])
    for index in range(8):  # two bars of eighth notes on the beat, at velocity 64
        pitch = (60, 64, 67, 72)[index % 4]
        track += [mido.Message("note_on", note=pitch, velocity=64, time=240 if index else 0),
                  mido.Message("note_off", note=pitch, velocity=64, time=240)]
    song.tracks.append(track)
    path = tmp_path / "two-bars.mid"
    song.save(path)
    with session("file") as jack:
        dump = OscDump(jack)
        serve = start_serve(jack, preset_file(tmp_path, TEMPO_BPM), dump.port)
        recorder = MidiDump(jack, "recorder")
        jack.connect(serve.out_port, "recorder:input")
        player, output = jack.start(*_mido_play(), "-o", serve.in_port, str(path),
                                    MIDO_BACKEND="mido.backends.rtmidi/UNIX_JACK")
        assert player.wait(timeout=20) == 0, output.text()
        time.sleep(2 * BAR_S)
        status = dump.status(serve.osc_port)
        # JACK's dummy driver, without real-time scheduling on a loaded machine, can lose
        # an event in an xrun (as test_server_jack says): one of the eight at most.
        assert 7 <= status["notes_in"] <= 8 and status["echoes_dropped"] == 0, status
        assert sum(bar[3] for bar in _bars(dump)) == status["notes_in"]
        _stop_cleanly(serve, recorder)
