"""MIDI control of the live settings (knobs, program changes, pads, learn) with in-memory
ports and a manual clock: exact event lists, no sleeping.

Feedback is kept as ``(address, args, to)``; ``to`` is None for what goes to the feedback
target alone, as a knob's changes do.
"""

from __future__ import annotations

import re
from pathlib import Path

import mido
import pytest

from qbdi.bars import Note, bars_to_notes, notes_to_bars
from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_named_preset, load_preset
from qbdi.server.clocks import ManualClock
from qbdi.server.events import AnsweredBar, LoopListener
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.manual import run_until
from qbdi.server.midi_control import LEARN_TIMEOUT_S
from qbdi.server.midi_values import bits_for_cc, bits_table, mode_for_cc, threshold_for_cc
from qbdi.server.ports import MemoryPorts
from qbdi.server.recorder import NoteRecorder
from qbdi.server.session import Server
from qbdi.settings import changed

EXACT = {"mode": "query", "encoding": "mean", "stats": "corpus", "threshold": 0.5,
         "budget_bits": "full"}
PEER = ("127.0.0.1", 9999)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "controllers.md"


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", control=control, value=value, channel=channel)


class Watcher(LoopListener):
    """What a terminal view would hear: learn, and the budget each bar was answered with."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.budgets: list[int | str] = []

    def learning(self, setting: str, phase: str, cc: int | None) -> None:
        self.events.append((setting, phase, cc))

    def answered(self, bar: AnsweredBar) -> None:
        self.budgets.append(bar.report.budget_bits)


class Rig:
    """A server on memory ports (with a controls input when ``separate``) and a manual
    clock at 120 BPM: 8 steps, half a bar, a second."""

    def __init__(self, checkpoint: Path, improviser: dict | None = None,
                 controls: dict | None = None, playing: dict | None = None,
                 separate: bool = False, preset_dir: Path | None = None) -> None:
        self.clock = ManualClock(120.0)
        self.ports = MemoryPorts(now=self.clock.now_steps, controls=separate)
        self.state = changed(load_preset("default"), tempo_bpm=120.0,
                             improviser=improviser or {"mode": "echo"},
                             playing=playing or {}, controls=controls or {})
        self.feedback = MemoryFeedback()
        self.learned = Watcher()
        self.server = Server(self.ports, self.clock,
                             Improviser.from_checkpoint(load_checkpoint(checkpoint)), self.state,
                             feedback=self.feedback, listeners=[self.learned],
                             preset_loader=lambda name: load_named_preset(name, preset_dir))
        self.server.start()

    def knob(self, message: mido.Message, step: float | None = None, controls: bool = False
             ) -> None:
        if step is not None:
            run_until(self.server.loop, step)
        (self.ports.play_control if controls else self.ports.play)(message)
        self.server.step()

    def play(self, start: float, pitch: int, end: float, velocity: int = 100) -> None:
        run_until(self.server.loop, start)
        self.ports.play(mido.Message("note_on", note=pitch, velocity=velocity))
        run_until(self.server.loop, end)
        self.ports.play(mido.Message("note_off", note=pitch))
        self.server.step()

    def said(self) -> list[tuple]:
        """Feedback but for the bar reports and the heartbeat."""
        return [sent for sent in self.feedback.sent
                if sent[0] not in ("/qbdi/bar", "/qbdi/heartbeat")]

    def values(self, address: str) -> list[list]:
        return self.feedback.addressed(address)

    def sent_notes(self) -> list[Note]:
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
        self.server.shutdown()
        recorder = NoteRecorder.of(m for _, m in self.ports.sent)
        assert recorder.sounding == set() and recorder.double_note_ons == 0


# -- the scales ---------------------------------------------------------------------------

def test_the_bits_scale_runs_from_zero_through_8_to_1024_to_full():
    assert [bits_for_cc(v) for v in (0, 1, 19, 37, 90, 108, 126, 127)] == \
        [0, 8, 16, 32, 253, 509, 1024, "full"]
    budgets = [bits for _, bits in bits_table()[1:-1]]
    assert budgets == sorted(budgets)
    doublings = [b / a for a, b in zip(budgets[18:], budgets[36:], strict=False)]
    assert all(1.9 < r < 2.1 for r in doublings), "twice the bits every 18 values"
    with pytest.raises(ValueError, match="0-127"):
        bits_for_cc(128)


def test_the_documented_bits_table_is_the_function():
    rows = re.findall(r"^\| (\d+)-(\d+) \| ([^|]+) \|$", DOCS.read_text(), re.MULTILINE)
    documented = {}
    for first, last, budgets in rows:
        for value, bits in zip(range(int(first), int(last) + 1), budgets.split(), strict=True):
            documented[value] = bits if bits == "full" else int(bits)
    assert documented == dict(bits_table())


def test_the_documented_controls_table_is_a_valid_preset(tmp_path):
    example = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.DOTALL).group(1)
    (tmp_path / "mine.toml").write_text(example)
    controls = load_preset(tmp_path / "mine.toml").controls
    assert controls.cc.bound()["panic"] == 82 and controls.notes.bound()["mode"] == 37


def test_threshold_and_mode_scales():
    assert [threshold_for_cc(v) for v in (0, 64, 127)] == [0.05, 0.504, 0.95]
    assert [mode_for_cc(v) for v in (0, 31, 32, 63, 64, 95, 96, 127)] == \
        ["query", "query", "free", "free", "echo", "echo", "mute", "mute"]


# -- knobs ----------------------------------------------------------------------------------

def _offline(checkpoint: Path, played: list[Note], budgets: list) -> list[Note]:
    """The improviser's answers to ``played``, bar n under ``budgets[n]``, one bar later."""
    improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
    expected = []
    for index, (bar, budget) in enumerate(zip(notes_to_bars(played, len(budgets)), budgets,
                                              strict=True)):
        settings = load_preset("default").improviser.model_copy(
            update={**EXACT, "budget_bits": budget})
        velocity = next(n.velocity for n in played if n.start_step // 16 == index)
        expected += bars_to_notes(improviser.step(bar, settings).bar, velocity,
                                  first_step=(index + 1) * 16)
    return sorted(expected)


def test_a_cc_turns_the_budget_and_the_next_answer_shows_it(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, improviser=EXACT)
    # Each bar at its own velocity, so no input note equals one of our answer's notes (the
    # echo filter would rightly take it for our own output coming back).
    played = [Note(0, 60, 4, 100), Note(4, 64, 12, 100), Note(16, 67, 24, 90),
              Note(24, 72, 30, 90)]
    rig.play(0, 60, 4)
    rig.play(4, 64, 12)
    rig.knob(cc(1, 0), step=14)  # the mod wheel down, late in bar 0: bits 0 from bar 0 on
    assert rig.server.state.improviser.budget_bits == 0
    assert rig.said() == [("/qbdi/bits", [0], None)]
    rig.play(16, 67, 24, velocity=90)
    rig.play(24, 72, 30, velocity=90)
    run_until(rig.server.loop, 48)
    zero = _offline(tiny_checkpoint, played, [0, 0])
    assert zero and zero != _offline(tiny_checkpoint, played, ["full", "full"])
    assert rig.sent_notes() == zero
    assert rig.server.loop.player.counters.notes_in == 4
    assert rig.server.control.midi.counters.taken == 1
    rig.assert_silent()


def test_a_knob_sweep_is_coalesced_to_20_changes_a_second_ending_on_its_last_value(
        tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    for value in range(128):  # 128 CCs in one second
        rig.knob(cc(1, value))
        rig.clock.advance_s(1 / 128)
    run_until(rig.server.loop, 10)
    # Each change at least 50 ms (7/128 s) after the one before; the first at once.
    applied = [bits_for_cc(v) for v in range(0, 128, 7)] + ["full"]
    assert rig.values("/qbdi/bits") == [[bits] for bits in applied]
    assert rig.server.state.improviser.budget_bits == "full"
    assert [a for a, _, _ in rig.said()] == ["/qbdi/bits"] * 20
    counters = rig.server.control.midi.counters
    assert (counters.taken, counters.applied, counters.coalesced) == (128, 20, 108)


def test_the_knobs_last_value_reaches_the_bar_closing_right_after_it(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, improviser=EXACT)
    rig.knob(cc(1, 50), step=15.3)
    rig.knob(cc(1, 0), step=15.4)  # 1/80 s later: held back by the rate limit...
    assert rig.server.state.improviser.budget_bits == bits_for_cc(50)
    run_until(rig.server.loop, 15.5)  # ...until bar 0 closes, 1/40 s after the first
    assert rig.learned.budgets == [0]
    assert rig.values("/qbdi/bits") == [[bits_for_cc(50)], [0]]


def test_an_osc_message_after_a_held_back_knob_value_wins(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    rig.knob(cc(1, 50))
    rig.ports.play(cc(1, 0))  # held back by the rate limit...
    rig.server.post_osc("/qbdi/bits", [64], PEER)  # ...and overtaken by a later message
    rig.server.step()
    assert rig.server.state.improviser.budget_bits == 64
    assert rig.values("/qbdi/bits") == [[bits_for_cc(50)], [0], [64]]


def test_a_value_already_in_use_changes_and_reports_nothing(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, improviser={"mode": "echo", "budget_bits": 8})
    rig.knob(cc(1, 1))  # 8 bits: the value in use
    rig.knob(cc(74, 127), step=1)
    assert rig.said() == [("/qbdi/threshold", [0.95], None)]


def test_mode_sampling_silence_and_a_panic_button(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, controls={"cc": {"mode": 20, "sampling": 21, "silence": 22,
                                                 "panic": 23}})
    rig.knob(cc(20, 40))
    rig.knob(cc(21, 64), step=1)
    rig.knob(cc(22, 127), step=2)
    state = rig.server.state
    assert (state.improviser.mode, state.improviser.sampling, state.playing.silence) == \
        ("free", True, "repeat")
    before = len(rig.ports.sent)
    for step, value in ((3, 127), (4, 127), (5, 0), (6, 100)):  # press, held, up, press
        rig.knob(cc(23, value), step=step)
    panics = [t for t, m in rig.ports.sent[before:] if m.is_cc(123)]
    assert panics == [3.0, 6.0]
    assert [a for a, _, _ in rig.said()] == ["/qbdi/mode", "/qbdi/sampling",
                                                    "/qbdi/silence"]


def test_controls_on_another_channel_are_left_to_the_player(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, controls={"channel": 16})
    rig.knob(cc(1, 0, channel=0))
    assert rig.server.state.improviser.budget_bits == 256
    rig.knob(cc(1, 0, channel=15), step=1)
    assert rig.server.state.improviser.budget_bits == 0


# -- program changes --------------------------------------------------------------------------

def test_a_program_change_loads_a_preset_and_keeps_the_controls(tiny_checkpoint, tmp_path):
    (tmp_path / "bad.toml").write_text('[improviser]\nbudget_bits = "lots"\n')
    rig = Rig(tiny_checkpoint, controls={"programs": ["default", "free", "bad"],
                                         "cc": {"bits": 21}}, preset_dir=tmp_path)
    controls = rig.server.state.controls
    rig.knob(mido.Message("program_change", program=1))
    assert rig.server.state == load_preset("free").model_copy(update={"controls": controls})
    assert rig.values("/qbdi/mode") == [["free"]]
    assert ("/qbdi/bits", [0], None) in rig.said()  # every value of the new state
    before, sent = rig.server.state, len(rig.said())
    rig.knob(mido.Message("program_change", program=2), step=1)
    rig.knob(mido.Message("program_change", program=3), step=2)
    assert rig.server.state == before
    errors = [args[0] for address, args, _ in rig.said()[sent:]]
    assert len(errors) == 2 and all(e.startswith("MIDI program ") for e in errors)
    assert "bad.toml" in errors[0] and "improviser.budget_bits" in errors[0]
    assert "programs 0-2" in errors[1]
    status = dict(zip(*[iter(rig.server.control.status_pairs())] * 2, strict=True))
    assert (status["midi_controls"], status["midi_refused"]) == (3, 2)


# -- learn ----------------------------------------------------------------------------------

def test_learn_binds_the_next_cc_which_then_turns_the_setting(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    rig.server.post_osc("/qbdi/learn", ["threshold"], PEER)
    rig.server.step()
    rig.knob(cc(21, 100), step=1)  # binds; changes nothing itself
    assert rig.server.state.controls.cc.threshold == 21
    assert rig.server.state.improviser.threshold == 0.35
    rig.knob(cc(21, 0), step=2)
    assert rig.server.state.improviser.threshold == 0.05
    assert rig.said() == [
        ("/qbdi/learn", ["threshold", "waiting"], PEER),
        ("/qbdi/learn", ["threshold", "bound", 21], PEER),
        ("/qbdi/controls", ["channel", "all", "bits", 1, "threshold", 21], PEER),
        ("/qbdi/threshold", [0.05], None)]
    assert rig.learned.events == [("threshold", "waiting", None), ("threshold", "bound", 21)]


def test_learning_a_bound_cc_moves_it_and_status_shows_the_bindings(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    rig.server.control.learn("mode")  # as the terminal view does, on the loop thread
    rig.knob(cc(1, 5))  # the mod wheel: bits' until now
    assert rig.server.state.controls.cc.bound() == {"threshold": 74, "mode": 1}
    rig.knob(cc(1, 127), step=1)
    assert rig.server.state.improviser.mode == "mute"
    assert rig.server.state.improviser.budget_bits == 256
    rig.server.post_osc("/qbdi/status", [], PEER)
    rig.server.step()
    assert rig.feedback.addressed("/qbdi/controls")[-1] == ["channel", "all", "threshold", 74,
                                                            "mode", 1]


def test_learn_times_out_and_is_cancelled_by_another_learn_or_cancel(tiny_checkpoint):
    rig = Rig(tiny_checkpoint)
    rig.server.control.learn("bits")
    run_until(rig.server.loop, 8 * LEARN_TIMEOUT_S - 1)
    assert rig.server.control.midi.learning == "bits"
    run_until(rig.server.loop, 8 * LEARN_TIMEOUT_S)
    assert rig.server.control.midi.learning is None
    rig.server.control.learn("bits")
    rig.server.control.learn("panic")
    rig.server.control.learn("cancel")
    rig.knob(cc(30, 127))  # nothing is learning: left to the player
    assert rig.learned.events == [
        ("bits", "waiting", None), ("bits", "timeout", None), ("bits", "waiting", None),
        ("bits", "cancelled", None), ("panic", "waiting", None), ("panic", "cancelled", None)]
    assert rig.server.state.controls == load_preset("default").controls
    rig.server.post_osc("/qbdi/learn", ["tempo"], PEER)
    rig.server.step()
    assert rig.said()[-1][0] == "/qbdi/error"
    assert "/qbdi/learn: expects one of bits|" in rig.said()[-1][1][0]


# -- where controls come from ---------------------------------------------------------------

def test_with_a_controls_port_the_input_port_carries_notes_alone(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, separate=True)
    rig.knob(cc(1, 0))  # the input port's mod wheel: not a control
    assert rig.server.state.improviser.budget_bits == 256
    rig.knob(cc(1, 0), controls=True, step=1)
    assert rig.server.state.improviser.budget_bits == 0
    for message in (mido.Message("note_on", note=50, velocity=90), mido.Message("clock"),
                    mido.Message("note_off", note=50)):
        rig.knob(message, controls=True, step=2)  # never played, never a clock
    rig.play(4, 60, 8)  # the input port's notes are played (echo mode)
    run_until(rig.server.loop, 32)
    assert rig.sent_notes() == [Note(20, 60, 24, 100)]
    assert rig.server.control.midi.counters.taken == 1
    rig.assert_silent()


def test_pads_are_controls_never_notes_nor_echoes(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, controls={"notes_channel": 10, "notes": {"mode": 37,
                                                                      "sampling": 38}},
              playing={"midi_channel": 10})
    rig.play(0, 37, 4)  # channel 1: played, and echoed on channel 10 during bar 1
    run_until(rig.server.loop, 16)
    assert [(t, m.channel, m.note, m.velocity) for t, m in rig.ports.sent
            if m.type == "note_on"] == [(16.0, 9, 37, 100)]
    # The pad sends what we have just sent, within the echo window: still a control.
    pad = mido.Message("note_on", channel=9, note=37, velocity=100)
    rig.knob(pad)
    assert rig.server.state.improviser.mode == "mute"  # echo -> mute
    assert rig.server.loop.echo.dropped == 0
    rig.knob(mido.Message("note_on", channel=9, note=38, velocity=1), step=17)
    rig.knob(mido.Message("note_on", channel=9, note=38, velocity=0), step=18)  # a release
    rig.knob(mido.Message("note_on", channel=9, note=50, velocity=90), step=19)  # unbound
    assert rig.server.state.improviser.sampling is True
    assert rig.server.loop.player.counters.notes_in == 1
    rig.assert_silent()
