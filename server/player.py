"""The player's MIDI input, one message at a time on the loop thread.

MIDI controls (:mod:`~qbdi.server.midi_control`) are taken first: a control never becomes a
note, and the echo filter never sees one; the controls port's messages all stop there. Clock
messages go to the clock. Of the rest, only notes (and the sustain pedal, kept for the
take) matter: a message on another channel than ``playing.input_channel`` is left out and
counted, our own output echoed back is dropped (:mod:`~qbdi.server.echo`), and each note
goes into the bar being collected at its clock position.

A note the echo guard cannot judge yet is *held*, and so is everything after it, in order;
:meth:`PlayerInput.settle` hands them on (or drops the echoes among them) as soon as the
guard knows, and at the latest when the bar closes. Held messages keep the position they
arrived at, so the bar and the take get them where they were played.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido

from qbdi.server.clocks import CLOCK_MESSAGES, Clock
from qbdi.server.collector import BarCollector
from qbdi.server.echo import EchoGuard, Verdict
from qbdi.server.events import LoopListener
from qbdi.server.messages import SUSTAIN_CC, is_note_on, note_key
from qbdi.server.midi_control import MidiRouting, NoMidiControl
from qbdi.settings import PlaySettings


@dataclass(slots=True)
class InputCounters:
    notes_in: int = 0
    other_channel: int = 0  # messages left out by playing.input_channel


class PlayerInput:
    """Routes input messages; owned by the loop thread."""

    def __init__(self, clock: Clock, collector: BarCollector, echo: EchoGuard,
                 listeners: LoopListener) -> None:
        self.clock = clock
        self.collector = collector
        self.echo = echo
        self.listeners = listeners
        self.counters = InputCounters()
        self.controls: MidiRouting = NoMidiControl()  # the session's MIDI control, if any
        # (position in steps when it arrived, message, candidate echo)
        self._held: list[tuple[float, mido.Message, bool]] = []

    @property
    def notes_held(self) -> int:
        """Note-ons held now, waiting for the echo guard or the bar's close."""
        return sum(1 for _, message, _ in self._held if is_note_on(message))

    def take(self, t_s: float, message: mido.Message, playing: PlaySettings,
             from_controls_port: bool = False) -> None:
        """One message received at ``t_s`` (seconds on the clock's time source), from the
        input port or the controls port."""
        if self.controls.take(t_s, message, from_controls_port):
            return
        if message.type in CLOCK_MESSAGES:
            self.clock.feed(t_s, message)
            return
        wanted = playing.input_channel
        if wanted != "all" and getattr(message, "channel", wanted - 1) != wanted - 1:
            self.counters.other_channel += 1
            return
        if note_key(message) is None and not message.is_cc(SUSTAIN_CC):
            return
        verdict = self.echo.judge(t_s, message)
        if verdict is Verdict.ECHO:
            return
        position = self.clock.step_at(t_s)  # now: a clock's past is not kept
        if verdict is Verdict.HELD or self._held:
            self._held.append((position, message, verdict is Verdict.HELD))
        else:
            self._deliver(position, message)
        if self._held and self.echo.drops_held():
            self.settle()  # a loop was just found: the held echoes go now

    def settle(self, now_s: float | None = None) -> None:
        """Hand on what is held: the candidates are dropped as echoes if the guard now
        drops them (judged on the round trips resolved by ``now_s``, when given), else
        given to the bar as the player's. The loop calls this before it closes a bar, so
        nothing held is ever lost or left out of its bar."""
        if now_s is not None:
            self.echo.update(now_s)
        drop = self.echo.drops_held()
        held, self._held = self._held, []
        for position, message, candidate in held:
            if candidate and drop:
                self.echo.drop(message)
            elif not self._dropped_off(message):
                self._deliver(position, message)

    def adopt(self, old: PlaySettings, new: PlaySettings) -> None:
        """A change of the playing settings: another input channel releases what the player
        held; another echo guard mode settles what the guard held, by the new mode."""
        if new.input_channel != old.input_channel:
            self.release_held()
        if new.echo_guard != old.echo_guard:
            self.echo.set_mode(new.echo_guard)
            self.settle()

    def _dropped_off(self, message: mido.Message) -> bool:
        key = note_key(message)
        return key is not None and key[0] == "off" and self.echo.echoed_off(message)

    def _deliver(self, position: float, message: mido.Message) -> None:
        self.listeners.played(position, message)
        key = note_key(message)
        if key is None:
            return  # the sustain pedal: for the take only
        if key[0] == "on":
            self.collector.note_on(position, message.note, message.velocity)
            self.counters.notes_in += 1
        else:
            self.collector.note_off(position, message.note)

    def release_held(self) -> None:
        """Release now what the player holds: its note-offs will not reach us (the input
        port went, or their channel is no longer listened to)."""
        self.settle()
        position = self.clock.now_steps()
        for pitch in self.collector.held_pitches:
            self.collector.note_off(position, pitch)
