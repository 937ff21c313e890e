"""The echo guard on the live loop, exactly: in-memory ports that route our output back to
our input after a delay (a DAW loop), a manual clock moved in 1/100 of a step (1.25 ms at
120 BPM), and a player's looped clip at a fixed velocity with no loop at all."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import mido
import pytest

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server.clocks import ManualClock
from qbdi.server.events import LoopListener
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.ports import MemoryPorts
from qbdi.server.recorder import NoteRecorder
from qbdi.server.session import Server
from qbdi.settings import changed

TICKS_PER_STEP = 100  # the rig's clock moves 1/100 of a step at a time


class LoopedPorts(MemoryPorts):
    """Memory ports whose output comes back to the input ``delay_s`` later, while
    ``looped`` (a DAW routing qbdi out into qbdi in)."""

    def __init__(self, clock: ManualClock, delay_s: float) -> None:
        super().__init__(now=clock.now_steps)
        self.clock, self.delay_s, self.looped = clock, delay_s, True
        self.stalled: dict[int, float] = {}  # pitch -> the delay of its echoes instead
        self._coming: list[tuple[float, mido.Message]] = []

    def send(self, message: mido.Message) -> None:
        super().send(message)
        if self.looped:
            delay_s = self.stalled.get(getattr(message, "note", -1), self.delay_s)
            self._coming.append((self.clock.now_s() + delay_s, message.copy()))

    def deliver_due(self) -> None:
        due = [m for t, m in self._coming if t <= self.clock.now_s()]
        self._coming = [(t, m) for t, m in self._coming if t > self.clock.now_s()]
        for message in due:
            self.play(message)


class Played(LoopListener):
    """What the loop hands on as the player's, with the position it was given."""

    def __init__(self) -> None:
        self.notes: list[tuple[float, str, int]] = []

    def played(self, step: float, message: mido.Message) -> None:
        self.notes.append((round(step, 2), message.type, message.note))


class Rig:
    """A server in echo mode at 120 BPM on :class:`LoopedPorts`; ``run`` plays a score.

    The answers go out on ``channel`` (2 by default): echo mode copies the player's last bar,
    and on the player's channel every note of a copy is one the player struck a bar before,
    which the guard counts as no evidence (a repeating clip plays it again anyway)."""

    def __init__(self, checkpoint: Path, delay_s: float = 0.003, looped: bool = True,
                 guard: str = "auto", channel: int = 2) -> None:
        self.clock = ManualClock(120.0)
        self.ports = LoopedPorts(self.clock, delay_s)
        self.ports.looped = looped
        state = changed(load_preset("default"), tempo_bpm=120.0,
                        improviser={"mode": "echo"},
                        playing={"echo_guard": guard, "midi_channel": channel})
        self.feedback = MemoryFeedback()
        self.played = Played()
        improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
        self.server = Server(self.ports, self.clock, improviser, state,
                             feedback=self.feedback, listeners=[self.played])
        self.server.start()
        self.tick = 0

    def run(self, until_step: float, score: dict[int, list[mido.Message]] | None = None
            ) -> None:
        """Move the clock tick by tick to ``until_step``; at each tick the loop steps, then
        the echoes due arrive, then the player's messages at that tick (``score``)."""
        score = score or {}
        while self.tick <= round(until_step * TICKS_PER_STEP):
            self.clock.set_step(self.tick / TICKS_PER_STEP)
            self.server.step()
            self.ports.deliver_due()
            for message in score.get(self.tick, []):
                self.ports.play(message)
            self.server.step()
            self.tick += 1

    def osc(self, address: str, *args) -> None:
        self.server.post_osc(address, list(args), ("127.0.0.1", 9001))
        self.server.step()

    def sent_on_steps(self) -> list[float]:
        return [t for t, m in self.ports.sent if m.type == "note_on" and m.velocity > 0]

    def status(self) -> dict:
        pairs = self.server.control.status_pairs()
        return dict(zip(pairs[::2], pairs[1::2], strict=True))

    def finish(self) -> None:
        self.server.shutdown()
        assert NoteRecorder.of(m for _, m in self.ports.sent).sounding == set()


def notes(*spans: tuple[float, int, float], velocity: int = 64) -> dict[int, list]:
    """A score: (start_step, pitch, end_step) notes as messages by tick."""
    score: dict[int, list] = {}
    for start, pitch, end in spans:
        on = mido.Message("note_on", note=pitch, velocity=velocity)
        off = mido.Message("note_off", note=pitch)
        score.setdefault(round(start * TICKS_PER_STEP), []).append(on)
        score.setdefault(round(end * TICKS_PER_STEP), []).append(off)
    return score


def merged(*scores: dict[int, list]) -> dict[int, list]:
    out: dict[int, list] = {}
    for score in scores:
        for tick, messages in score.items():
            out.setdefault(tick, []).extend(messages)
    return out


FIVE_NOTES = notes((0, 60, 1), (2, 62, 3), (4, 64, 5), (6, 65, 7), (8, 67, 9))


def test_a_real_loop_is_found_in_the_first_answer_bar_and_no_echo_reaches_a_query(
        tiny_checkpoint, caplog):
    rig = Rig(tiny_checkpoint, delay_s=0.003)
    player_later = notes((21, 48, 22), (37, 50, 38))  # never like our notes
    with caplog.at_level(logging.WARNING, logger="qbdi.server.echo"):
        rig.run(64, merged(FIVE_NOTES, player_later))
    # Bar 1 answers bar 0 (five notes); their echoes never reach bar 1's query, which holds
    # the player's note alone: so bar 2 answers 48 alone, bar 3 answers 50 alone.
    assert rig.sent_on_steps() == [16, 18, 20, 22, 24, 37, 53]
    assert rig.status()["notes_in"] == 7
    assert rig.status()["echo_notes_dropped"] == 7
    assert rig.status()["echo_loop"] == 1
    reports = rig.feedback.addressed("/qbdi/echo/loop")
    assert len(reports) == 1 and reports[0][0] == 1
    assert 3.0 <= reports[0][1] <= 4.0  # the delay, measured on 1.25 ms ticks
    assert sum("qbdi out is routed back into qbdi in" in r.message for r in caplog.records) == 1
    rig.finish()


def test_a_found_loops_echo_delayed_by_a_stall_is_still_dropped(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, delay_s=0.003)
    rig.run(31, FIVE_NOTES)
    assert rig.status()["echo_loop"] == 1
    rig.ports.stalled = {64: 0.4}  # one echo 400 ms late: a miss, and still an echo
    rig.run(47, notes((32, 60, 33), (34, 62, 35), (36, 64, 37), (38, 65, 39), (40, 67, 41)))
    rig.run(80)  # bar 2's answer, in bar 3, comes back (64 late)
    assert rig.status()["notes_in"] == 10 and rig.status()["echo_notes_dropped"] == 10
    assert rig.status()["echo_loop"] == 1
    rig.finish()


def test_a_looped_clip_at_a_fixed_velocity_without_a_loop_keeps_every_note(tiny_checkpoint):
    """The issue's case: a one-bar clip at velocity 64, answered in its own rhythm (echo
    mode answers each bar with itself, so every answer note meets the clip's next pass,
    2.5 ms after ours). Its notes end 0.4 steps after ours: no round trip is whole."""
    clip = [(0, 60, 1.4), (4, 64, 5.4), (8, 67, 9.4), (12, 72, 13.4)]
    bars = 6
    score = merged(*(notes(*[(s + 16 * b + 0.02, p, e + 16 * b + 0.02) for s, p, e in clip])
                     for b in range(bars)))
    kept = Rig(tiny_checkpoint, looped=False, channel=1)
    kept.run(16 * bars - 0.1, score)  # the last bar closed, its answer not begun
    assert kept.status()["notes_in"] == 4 * bars
    assert kept.status()["echoes_dropped"] == 0 and kept.status()["echo_loop"] == 0
    # every answer is the whole clip, at its steps
    answer = [16 * b + s for b in range(1, bars) for s, _, _ in clip]
    assert kept.sent_on_steps() == answer
    # held notes reach the bar (and the take) where they were played, in order
    assert kept.played.notes == sorted(kept.played.notes)
    assert (16.02, "note_on", 60) in kept.played.notes
    kept.finish()
    # The old rule (echo guard on) throws the player's notes away.
    forced = Rig(tiny_checkpoint, looped=False, guard="on", channel=1)
    forced.run(16 * bars - 0.1, score)
    assert forced.status()["echo_notes_dropped"] > 0
    assert forced.status()["notes_in"] < 4 * bars
    forced.finish()


def test_a_clip_that_ends_its_notes_with_ours_is_still_no_loop(tiny_checkpoint):
    """The hardest look-alike: the clip on the grid, 2.5 ms after our answer, ending with
    it, so every meeting is a whole round trip. Each such note is one the clip struck a bar
    before at the same moment: no evidence, no loop, nothing dropped."""
    clip = [(0, 60, 1), (4, 64, 5), (8, 67, 9), (12, 72, 13)]
    bars = 8
    score = merged(*(notes(*[(s + 16 * b + 0.02, p, e + 16 * b + 0.02) for s, p, e in clip])
                     for b in range(bars)))
    rig = Rig(tiny_checkpoint, looped=False, channel=1)
    rig.run(16 * bars - 0.1, score)
    trips = rig.server.loop.echo.trips
    assert trips.uncounted >= 4 * (bars - 2) and list(trips.recent) == []
    assert rig.status()["echo_loop"] == 0 and rig.status()["echoes_dropped"] == 0
    assert rig.status()["notes_in"] == 4 * bars
    rig.finish()


def test_a_clip_drifting_and_jittering_against_our_clock_is_still_no_loop(tiny_checkpoint):
    """A clip whose bar is a tenth of a step longer than ours (its clock runs slow, as a
    loaded machine's JACK dummy driver did in the 30-minute soak) and whose notes jitter by
    up to 19 ms (stalls), ending them with ours: it meets our answers, whole, at varying
    delays. Every note it meets is a key it struck in the last two bars: no evidence,
    nothing dropped. (Counting only a repetition at the same moment one bar before, this
    clip made a loop of copies with five seeds of eight, this one among them.)"""
    rng = random.Random(2)
    period_steps, bars = 16.1, 20
    spans = []
    for bar in range(bars):
        for start, pitch, end in ((0, 60, 1), (4, 64, 5), (8, 67, 9), (12, 72, 13)):
            jitter = rng.uniform(-0.15, 0.15)
            spans.append((round(start + period_steps * bar + jitter, 2), pitch,
                          round(end + period_steps * bar + jitter, 2)))
    rig = Rig(tiny_checkpoint, looped=False, channel=1)
    rig.run(16 * bars - 0.1, notes(*spans))
    assert rig.status()["echo_loop"] == 0 and rig.status()["echoes_dropped"] == 0
    assert rig.server.loop.echo.trips.uncounted > 0
    rig.finish()


def test_sparse_answers_looped_back_are_found_after_four_round_trips(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, delay_s=0.0)
    rig.run(96, notes((0, 60, 4)))
    # The echo goes round until four whole round trips have shown the loop: the fourth
    # echo, held in bar 4, is dropped, and bar 5 has nothing to answer.
    assert rig.sent_on_steps() == [16, 32, 48, 64]
    assert rig.feedback.addressed("/qbdi/echo/loop") == [[1, 0.0]]
    rig.finish()


def test_a_loop_on_the_players_channel_shows_in_the_keys_that_come_twice(tiny_checkpoint):
    """The common DAW case: one channel for everything, a clip looping at velocity 64, and
    qbdi out routed back in. Echo mode copies the clip, so no note of ours is one the clip
    did not play lately; but where the clip strikes a key again as our copy of it goes
    out, the key arrives twice, the clip's and our echo: only a loop does that."""
    clip = [(0, 60, 1.4), (4, 64, 5.4), (8, 67, 9.4), (12, 72, 13.4)]
    bars = 8
    score = merged(*(notes(*[(s + 16 * b + 0.02, p, e + 16 * b + 0.02) for s, p, e in clip])
                     for b in range(bars)))
    rig = Rig(tiny_checkpoint, delay_s=0.003, channel=1)
    rig.run(16 * bars - 0.1, score)
    reports = rig.feedback.addressed("/qbdi/echo/loop")
    assert [r[0] for r in reports] == [1]
    per_bar = [args[3] for args in rig.feedback.addressed("/qbdi/bar")]
    assert per_bar == [4] * bars, per_bar  # every query: the clip's four notes alone
    assert rig.status()["echo_notes_dropped"] == rig.status()["notes_out"] == 4 * (bars - 1)
    rig.finish()


def test_in_echo_mode_on_the_players_channel_a_loop_looks_like_a_repeating_player(
        tiny_checkpoint):
    """Echo mode answers with the player's last bar: every note of it is one the player
    struck a bar before, so whether it comes back through a loop or from a clip repeating
    itself cannot be told. The guard drops nothing (echo guard on does: README)."""
    rig = Rig(tiny_checkpoint, delay_s=0.003, channel=1)
    rig.run(63, FIVE_NOTES)
    assert rig.status()["echo_loop"] == 0 and rig.status()["echoes_dropped"] == 0
    assert len(rig.sent_on_steps()) == 5 * 3  # bar 0 goes round: answered in bars 1, 2, 3
    rig.finish()


def test_the_guard_forced_off_keeps_echoes_and_still_reports_the_loop(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, delay_s=0.003, guard="off")
    rig.run(79, FIVE_NOTES)
    # every bar answers the echo of the last
    assert len(rig.sent_on_steps()) == 5 * 4
    assert rig.status()["echoes_dropped"] == 0
    assert [args[0] for args in rig.feedback.addressed("/qbdi/echo/loop")] == [1]
    rig.osc("/qbdi/echo/guard", "auto")
    assert rig.feedback.addressed("/qbdi/echo/guard") == [["auto"]]
    rig.run(112)
    assert max(rig.sent_on_steps()) < 96  # found already: the next echoes are dropped
    rig.finish()


def _pattern(bar: int) -> dict[int, list]:
    """Four short notes in ``bar``, pitches of that bar alone (never like an answer)."""
    return notes(*[(16 * bar + s, 40 + 4 * bar + i, 16 * bar + s + 1)
                   for i, s in enumerate((0, 3, 6, 9))])


def test_a_loop_broken_in_the_daw_is_reported_once_and_found_again_once(tiny_checkpoint):
    rig = Rig(tiny_checkpoint, delay_s=0.003)
    rig.run(31, FIVE_NOTES)
    assert rig.status()["echo_loop"] == 1
    rig.ports.looped = False  # the DAW's routing is undone
    rig.run(95, merged(*(_pattern(bar) for bar in range(2, 6))))
    assert [args[0] for args in rig.feedback.addressed("/qbdi/echo/loop")] == [1, 0]
    assert rig.status()["notes_in"] == 5 + 16  # not one of the player's notes dropped
    rig.ports.looped = True  # routed back again
    rig.run(160, merged(*(_pattern(bar) for bar in range(6, 10))))
    assert [args[0] for args in rig.feedback.addressed("/qbdi/echo/loop")] == [1, 0, 1]
    # After notes that did not come back, a loop needs a full window of whole round trips
    # (RECENT) to be found: bar 7 answers bar 6 with four notes, which come back and are
    # heard as the player's before bar 8's answers complete the evidence.
    assert rig.status()["notes_in"] == 5 + 16 + 16 + 4
    rig.finish()


def test_echo_guard_is_a_preset_field_and_an_osc_setting(tiny_checkpoint, tmp_path):
    preset = tmp_path / "loop.toml"
    preset.write_text('[playing]\necho_guard = "on"\n')
    from qbdi.presets import load_preset as load

    assert load(str(preset)).playing.echo_guard == "on"
    bad = tmp_path / "bad.toml"
    bad.write_text('[playing]\necho_guard = "maybe"\n')
    with pytest.raises(Exception, match="echo_guard"):
        load(str(bad))
    rig = Rig(tiny_checkpoint)
    rig.osc("/qbdi/echo/guard", "sometimes")
    assert "echo/guard" in rig.feedback.addressed("/qbdi/error")[0][0]
    assert rig.server.state.playing.echo_guard == "auto"
    rig.osc("/qbdi/echo/guard", "off")
    assert rig.server.state.playing.echo_guard == "off"
    assert rig.server.loop.echo.mode == "off"
    rig.finish()
