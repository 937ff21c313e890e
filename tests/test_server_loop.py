"""The live loop with in-memory ports and a manual clock: exact event lists, no sleeping.

Times are in sixteenth steps (the manual clock's position when a message was sent). Every
test ends by checking, from the messages actually sent, that no note is left sounding.
"""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from qbdi.bars import Note, bars_to_notes, notes_to_bars
from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server.clocks import ManualClock
from qbdi.server.errors import PortLost
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.manual import run_until
from qbdi.server.ports import MemoryPorts
from qbdi.server.recorder import NoteRecorder
from qbdi.server.session import Server
from qbdi.server.take import TakeListener
from qbdi.settings import ImproviserSettings, Preset, changed

ECHO = {"mode": "echo"}
# Deterministic query answers: no sampling anywhere, corpus statistics, z_e = mu.
EXACT = {"mode": "query", "encoding": "mean", "stats": "corpus", "threshold": 0.5}


class Rig:
    """A server on in-memory ports and a manual clock at 120 BPM (8 steps a second)."""

    def __init__(self, checkpoint: Path, improviser: dict | None = None,
                 playing: dict | None = None, loopback: bool = False,
                 wrap=None, preset_loader=None, take=None) -> None:
        self.clock = ManualClock(120.0)
        self.ports = MemoryPorts(now=self.clock.now_steps, loopback=loopback)
        self.state = changed(load_preset("default"), tempo_bpm=120.0,
                             improviser=improviser or ECHO, playing=playing or {})
        self.improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
        self.feedback = MemoryFeedback()
        kwargs = {"preset_loader": preset_loader} if preset_loader else {}
        if take is not None:
            kwargs["listeners"] = [TakeListener(take)]
        self.server = Server(self.ports, self.clock,
                             wrap(self.improviser, self.clock) if wrap else self.improviser,
                             self.state, feedback=self.feedback, **kwargs)
        self.server.start()

    def press(self, step: float, pitch: int, velocity: int = 100) -> None:
        run_until(self.server.loop, step)
        self.ports.play(mido.Message("note_on", note=pitch, velocity=velocity))
        self.server.step()

    def release(self, step: float, pitch: int) -> None:
        run_until(self.server.loop, step)
        self.ports.play(mido.Message("note_off", note=pitch, velocity=0))
        self.server.step()

    def play(self, start: float, pitch: int, end: float, velocity: int = 100) -> None:
        """Play one note (at absolute steps), running the loop up to its release."""
        self.press(start, pitch, velocity)
        self.release(end, pitch)

    def events(self) -> list[tuple]:
        out = []
        for t, m in self.ports.sent:
            if m.type == "control_change":
                out.append((t, "cc", m.control))
            else:
                out.append((t, m.type, m.note, m.velocity))
        return out

    def sent_notes(self) -> list[Note]:
        """Notes rebuilt from the sent messages (start, pitch, end, velocity)."""
        open_notes: dict[int, tuple[float, int]] = {}
        notes = []
        for t, m in self.ports.sent:
            if m.type == "note_on" and m.velocity > 0:
                open_notes[m.note] = (t, m.velocity)
            elif m.type in ("note_on", "note_off") and m.note in open_notes:
                start, velocity = open_notes.pop(m.note)
                notes.append(Note(int(start), m.note, int(t), velocity))
        return sorted(notes)

    def assert_silent(self) -> None:
        recorder = NoteRecorder.of(m for _, m in self.ports.sent)
        assert recorder.sounding == set()
        assert recorder.double_note_ons == 0
        assert self.server.loop.scheduler.sounding == {}


def test_a_bar_played_in_is_answered_during_the_next_bar_on_the_grid(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    rig.play(0, 60, 4, velocity=100)
    rig.play(4, 64, 8, velocity=60)
    run_until(rig.server.loop, 40)
    # echo: the answer is the bar itself, one bar later, at the mean velocity (80)
    assert rig.events() == [
        (16.0, "note_on", 60, 80), (20.0, "note_off", 60, 0),
        (20.0, "note_on", 64, 80), (24.0, "note_off", 64, 0),
    ]
    rig.assert_silent()


def test_input_is_quantised_to_the_nearest_sixteenth(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    rig.play(3.4, 62, 5.6)  # -> steps 3..6
    rig.play(9.5, 65, 9.7)  # 9.5 rounds to 10 (half to even); shorter than a step -> 1 step
    run_until(rig.server.loop, 40)
    assert rig.sent_notes() == [Note(19, 62, 22, 100), Note(26, 65, 27, 100)]
    rig.assert_silent()


def test_a_note_held_over_the_barline_sounds_untied_at_step_0_of_the_next_bar(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    rig.play(12, 67, 20)
    run_until(rig.server.loop, 60)
    # bar 0 ends with the note struck at 12; bar 1 opens with it sounding (not struck):
    # answered in bars 1 and 2, released at the barline and struck again.
    assert rig.events() == [
        (28.0, "note_on", 67, 100), (32.0, "note_off", 67, 0),
        (32.0, "note_on", 67, 100), (36.0, "note_off", 67, 0),
    ]
    rig.assert_silent()


def test_output_velocity_follows_each_bar_or_stays_fixed(tiny_checkpoint):
    follow = Rig(tiny_checkpoint)
    fixed = Rig(tiny_checkpoint, playing={"velocity": "fixed", "fixed_velocity": 50})
    for rig in (follow, fixed):
        rig.play(0, 60, 2, velocity=30)
        rig.play(16, 60, 18, velocity=120)
        run_until(rig.server.loop, 48)
    assert [n.velocity for n in follow.sent_notes()] == [30, 120]
    assert [n.velocity for n in fixed.sent_notes()] == [50, 50]
    follow.assert_silent()
    fixed.assert_silent()


def _offline_answers(checkpoint: Path, settings: ImproviserSettings, played: list[Note],
                     n_bars: int) -> list[Note]:
    """What the improviser answers to ``played``, bar by bar, one bar later."""
    improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
    bars = notes_to_bars(played, n_bars)
    expected = []
    for index, bar in enumerate(bars):
        velocity = next(n.velocity for n in played if n.start_step // 16 == index)
        answer = improviser.step(bar, settings)
        expected += bars_to_notes(answer.bar, velocity, first_step=(index + 1) * 16)
    return sorted(expected)


def test_query_answers_are_the_improvisers_answers_bar_aligned(tiny_checkpoint):
    settings = {**EXACT, "budget_bits": 8}
    rig = Rig(tiny_checkpoint, improviser=settings)
    # Each bar at its own velocity, so no input note equals one of our answer's notes (the
    # echo filter would rightly take it for our own output coming back).
    played = [Note(0, 60, 4, 100), Note(4, 64, 8, 100), Note(16, 67, 30, 90),
              Note(36, 72, 40, 80)]
    for note in played:
        rig.play(note.start_step, note.pitch, note.end_step, velocity=note.velocity)
    run_until(rig.server.loop, 64)
    expected = _offline_answers(tiny_checkpoint, rig.state.improviser, played, 3)
    assert expected, "the tiny model must play something at this threshold"
    assert rig.sent_notes() == expected
    assert rig.server.loop.echo.dropped == 0
    rig.server.shutdown()
    rig.assert_silent()


def test_silence_in_query_mode_stays_silent_or_repeats_the_last_bar(tiny_checkpoint):
    exact = {**EXACT, "budget_bits": "full"}
    silent = Rig(tiny_checkpoint, improviser=exact, playing={"silence": "silent"})
    repeat = Rig(tiny_checkpoint, improviser=exact, playing={"silence": "repeat"})
    for rig in (silent, repeat):
        rig.play(0, 60, 8)
        run_until(rig.server.loop, 48)  # bar 1 and 2 empty: answers during bars 2 and 3
        rig.server.shutdown()
        rig.assert_silent()
    first = [n for n in repeat.sent_notes() if 16 <= n.start_step < 32]
    assert first
    assert [n for n in silent.sent_notes() if n.start_step >= 32] == []
    again = [n for n in repeat.sent_notes() if 32 <= n.start_step < 48]
    assert again == [Note(n.start_step + 16, n.pitch, n.end_step + 16, n.velocity)
                     for n in first]


def test_free_mode_keeps_playing_without_input(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, improviser={"mode": "free", "threshold": 0.5})
    run_until(rig.server.loop, 64)
    bars_with_notes = {n.start_step // 16 for n in rig.sent_notes()}
    assert bars_with_notes >= {1, 2, 3}
    rig.server.shutdown()
    rig.assert_silent()


class SlowImproviser:
    """Wraps an improviser; a chosen bar's answer takes ``late_steps`` of clock time."""

    def __init__(self, inner: Improviser, clock: ManualClock, slow_call: int,
                 late_steps: float) -> None:
        self.inner, self.clock = inner, clock
        self.slow_call, self.late_steps, self.calls = slow_call, late_steps, 0

    def step(self, bar, settings):
        self.calls += 1
        if self.calls == self.slow_call:
            self.clock.set_step(self.clock.now_steps() + self.late_steps)
        return self.inner.step(bar, settings)


def test_an_overrun_is_reported_and_its_late_notes_dropped_never_queued(tiny_checkpoint):
    # Bar 1's answer is ready 2.5 steps late (at step 34, bar 2 began at 32).
    rig = Rig(tiny_checkpoint, wrap=lambda imp, clock: SlowImproviser(imp, clock, 2, 2.5))
    rig.play(0, 60, 2)
    rig.play(16, 62, 17)  # answered at step 32: already past when ready, dropped
    rig.play(20, 64, 21)  # answered at step 36: still ahead, played
    rig.play(34, 65, 35)
    run_until(rig.server.loop, 64)
    assert [(n.start_step, n.pitch) for n in rig.sent_notes()] == [(16, 60), (36, 64), (50, 65)]
    assert rig.server.loop.counters.overruns == 1
    assert rig.server.loop.counters.late_notes_dropped == 1
    assert [args[0] for args in rig.feedback.addressed("/qbdi/overrun")] == [1]
    rig.assert_silent()


def test_a_loop_that_fell_behind_answers_only_the_latest_bar(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    rig.play(0, 60, 2)
    # The loop does not run from step 2 to 47.5 (a stall) while the player plays at 40.
    rig.clock.set_step(40)
    rig.ports.play(mido.Message("note_on", note=62, velocity=100))
    rig.clock.set_step(42)
    rig.ports.play(mido.Message("note_off", note=62))
    rig.clock.set_step(47.5)
    rig.server.step()
    assert rig.server.loop.counters.skipped_bars == 2
    assert [args[0] for args in rig.feedback.addressed("/qbdi/bar")] == [2]
    run_until(rig.server.loop, 70)
    assert [(n.start_step, n.pitch) for n in rig.sent_notes()] == [(56, 62)]
    rig.assert_silent()


def test_with_the_echo_guard_on_our_own_output_echoed_to_our_input_is_ignored(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, loopback=True, playing={"echo_guard": "on"})
    rig.play(0, 60, 4)
    run_until(rig.server.loop, 64)
    # Without the guard the looped-back answer would be answered again in bar 2, 3, ...
    # (auto, which waits for the round trips to show the loop: tests/test_echo_guard.py)
    assert [n.start_step for n in rig.sent_notes()] == [16]
    assert rig.server.loop.echo.dropped == 2
    rig.assert_silent()


def test_a_player_note_like_ours_but_not_an_echo_is_kept(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    rig.play(0, 60, 4, velocity=90)
    run_until(rig.server.loop, 16)  # our note-on 60 velocity 90 goes out at step 16
    rig.ports.play(mido.Message("note_on", note=60, velocity=91))  # the player, not an echo
    rig.server.step()
    run_until(rig.server.loop, 20)
    rig.ports.play(mido.Message("note_off", note=60))
    run_until(rig.server.loop, 40)
    assert [n.start_step for n in rig.sent_notes()] == [16, 32]
    rig.assert_silent()


# -- note safety: every trigger ends every sounding note -------------------------------------

def _sounding_rig(checkpoint: Path, **kwargs) -> Rig:
    rig = Rig(checkpoint, **kwargs)
    rig.press(0, 60)
    rig.press(2, 64)
    rig.release(16, 60)
    rig.release(16, 64)
    run_until(rig.server.loop, 18)  # answers: 60 over steps 16-32, 64 over 18-32
    assert NoteRecorder.of(m for _, m in rig.ports.sent).sounding == {(0, 60), (0, 64)}
    return rig


def _assert_ended_with_cc123(rig: Rig, from_index: int) -> None:
    tail = [m for _, m in rig.ports.sent[from_index:]]
    assert [m.type for m in tail] == ["note_off", "note_off", "control_change"]
    assert tail[-1].control == 123
    rig.assert_silent()


def test_mode_change_ends_sounding_notes_and_drops_the_rest_of_the_answer(tiny_checkpoint):
    rig = _sounding_rig(tiny_checkpoint)
    before = len(rig.ports.sent)
    rig.server.post_osc("/qbdi/mode", ["mute"], None)
    rig.server.step()
    _assert_ended_with_cc123(rig, before)
    run_until(rig.server.loop, 64)
    assert len(rig.ports.sent) == before + 3  # nothing more: the rest was dropped, mute
    assert rig.feedback.addressed("/qbdi/mode") == [["mute"]]


def test_preset_change_ends_sounding_notes(tiny_checkpoint):
    def loader(name: str) -> Preset:
        assert name == "other"
        return changed(load_preset("default"), tempo_bpm=120.0,
                       improviser={"mode": "echo", "budget_bits": 3})

    rig = _sounding_rig(tiny_checkpoint, preset_loader=loader)
    before = len(rig.ports.sent)
    rig.server.post_osc("/qbdi/preset", ["other"], None)
    rig.server.step()
    _assert_ended_with_cc123(rig, before)
    assert rig.server.state.improviser.budget_bits == 3


def test_panic_ends_sounding_notes_and_the_next_bar_plays(tiny_checkpoint):
    rig = _sounding_rig(tiny_checkpoint)
    rig.play(20, 67, 22)
    before = len(rig.ports.sent)
    rig.server.post_osc("/qbdi/panic", [], None)
    rig.server.step()
    _assert_ended_with_cc123(rig, before)
    run_until(rig.server.loop, 48)
    assert [n.start_step for n in rig.sent_notes() if n.start_step >= 32] == [36]


class FailingImproviser(SlowImproviser):
    def step(self, bar, settings):
        self.calls += 1
        if self.calls == self.slow_call:
            raise RuntimeError("injected failure")
        return self.inner.step(bar, settings)


def test_an_exception_in_a_bar_ends_notes_is_reported_and_playing_goes_on(tiny_checkpoint, caplog):
    rig = _sounding_rig(tiny_checkpoint,
                        wrap=lambda imp, clock: FailingImproviser(imp, clock, 2, 0))
    rig.play(20, 67, 22)
    before = len(rig.ports.sent)
    run_until(rig.server.loop, 31.5)  # bar 1 closes: the improviser raises
    _assert_ended_with_cc123(rig, before)
    assert rig.server.loop.counters.bar_errors == 1
    assert rig.feedback.addressed("/qbdi/error") == [["bar 1: RuntimeError: injected failure"]]
    assert "bar 1 failed" in caplog.text
    rig.play(34, 69, 36)
    run_until(rig.server.loop, 64)
    assert [n.start_step for n in rig.sent_notes() if n.start_step >= 32] == [50]
    rig.assert_silent()


def test_port_loss_ends_notes_and_stops_the_server(tiny_checkpoint):
    rig = _sounding_rig(tiny_checkpoint)
    before = len(rig.ports.sent)
    rig.ports.lose(1)  # the next send (the note-off of 60 at step 32) fails
    run_until(rig.server.loop, 40)
    assert isinstance(rig.server.loop.fatal, PortLost)
    _assert_ended_with_cc123(rig, before)  # both released again, then CC 123
    assert rig.feedback.addressed("/qbdi/error")[0][0].startswith("port lost")


def test_shutdown_ends_sounding_notes(tiny_checkpoint):
    rig = _sounding_rig(tiny_checkpoint)
    before = len(rig.ports.sent)
    rig.server.shutdown()
    _assert_ended_with_cc123(rig, before)
    assert rig.ports.closed


# -- OSC handling on the loop thread (routing only; real UDP in test_server_osc.py) -------

def test_a_refused_value_keeps_the_old_state_and_replies_an_error(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, improviser={**EXACT, "budget_bits": 64})
    before = rig.server.state
    for address, args in [("/qbdi/bits", [-1]), ("/qbdi/bits", ["lots"]),
                          ("/qbdi/threshold", [float("nan")]), ("/qbdi/mode", ["loud"]),
                          ("/qbdi/bpm", [5000.0]), ("/qbdi/nope", [1])]:
        rig.server.post_osc(address, args, ("127.0.0.1", 1))
    rig.server.step()
    assert rig.server.state == before
    errors = rig.feedback.addressed("/qbdi/error")
    assert len(errors) == 6
    assert "/qbdi/nope: unknown address" in errors[-1][0]


def test_an_address_pattern_reaches_every_matching_handler(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    rig.server.post_osc("/qbdi/{bits,seed}", [5], None)
    rig.server.step()
    assert (rig.server.state.improviser.budget_bits, rig.server.state.improviser.seed) == (5, 5)


def _at_480_bpm(rig: Rig, close_ahead_s: float = 0.06) -> Rig:
    rig.server.loop.close_ahead_s = close_ahead_s  # serve --close-ahead-ms 60
    rig.server.post_osc("/qbdi/bpm", [480.0], None)
    rig.server.step()
    return rig


def test_a_bar_closes_half_a_sixteenth_early_or_earlier_when_asked(tiny_checkpoint):
    assert Rig(tiny_checkpoint).server.loop.next_wakeup_step() == 15.5  # by default
    assert _at_480_bpm(Rig(tiny_checkpoint), 0.0).server.loop.next_wakeup_step() == 15.5
    rig = Rig(tiny_checkpoint)
    rig.server.loop.close_ahead_s = 0.06  # at 120 BPM half a sixteenth is longer: 62.5 ms
    assert rig.server.loop.next_wakeup_step() == 15.5
    _at_480_bpm(rig)  # 32 steps a second: half a sixteenth is 15.6 ms, 60 ms is 1.92 steps
    assert rig.server.loop.next_wakeup_step() == pytest.approx(16 - 1.92)
    rig.server.loop.close_ahead_s = 0.5  # never more than an eighth
    assert rig.server.loop.next_wakeup_step() == 14


def test_input_after_an_early_close_counts_from_the_next_bar_s_first_step(tiny_checkpoint):
    rig = _at_480_bpm(Rig(tiny_checkpoint, ECHO))
    rig.play(13, 60, 13.5)  # before bar 0 closes at step 14.08: rounds to 13..14
    rig.play(14.5, 62, 15)  # after: bar 1's first step, one step long
    run_until(rig.server.loop, 60)
    assert [(n.start_step, n.pitch, n.end_step) for n in rig.sent_notes()] == [
        (29, 60, 30), (32, 62, 33)]
    rig.assert_silent()


def test_bpm_change_keeps_the_position_and_changes_the_step_length(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    run_until(rig.server.loop, 8)
    rig.server.post_osc("/qbdi/bpm", [60.0], None)
    rig.server.step()
    assert rig.clock.now_steps() == pytest.approx(8.0)
    rig.clock.advance_s(1.0)
    assert rig.clock.now_steps() == pytest.approx(12.0)


def test_input_channel_takes_one_channel_and_counts_the_rest(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, ECHO, playing={"input_channel": 2})
    run_until(rig.server.loop, 2)
    for channel, pitch in ((0, 60), (1, 64), (9, 36)):  # channels 1, 2 and 10 (drums)
        rig.ports.play(mido.Message("note_on", channel=channel, note=pitch, velocity=90))
    run_until(rig.server.loop, 4)
    for channel, pitch in ((0, 60), (1, 64), (9, 36)):
        rig.ports.play(mido.Message("note_off", channel=channel, note=pitch))
    run_until(rig.server.loop, 32)
    assert [m.note for _, m in rig.ports.sent if m.type == "note_on"] == [64]
    heard = rig.server.loop.player.counters
    assert heard.other_channel == 4 and heard.notes_in == 1
    rig.server.shutdown()
    assert NoteRecorder.of(m for _, m in rig.ports.sent).sounding == set()


def test_changing_the_input_channel_releases_what_the_player_held(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, ECHO)
    rig.press(2, 60)
    assert rig.server.loop.collector.held_pitches == [60]
    rig.server.control.change(playing={"input_channel": 3})
    assert rig.server.loop.collector.held_pitches == []
    rig.ports.play(mido.Message("note_off", note=60))  # on channel 1: no longer heard
    run_until(rig.server.loop, 40)
    # answered once, from where it was struck to where the channel changed
    assert [(t, m.note) for t, m in rig.ports.sent if m.type == "note_on"] == [(18.0, 60)]
    rig.server.shutdown()
    assert NoteRecorder.of(m for _, m in rig.ports.sent).sounding == set()
