"""The player's MIDI input, one message at a time on the loop thread.

MIDI controls (:mod:`~qbdi.server.midi_control`) are taken first: a control never becomes a
note, and the echo filter never sees one; the controls port's messages all stop there. Clock
messages go to the clock. Of the rest, only notes (and the sustain pedal, kept for the
take) matter: a message on another channel than ``playing.input_channel`` is left out and
counted, our own output echoed back is dropped (:mod:`~qbdi.server.echo`), and each note
goes into the bar being collected at its clock position.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido

from qbdi.server.clocks import CLOCK_MESSAGES, Clock
from qbdi.server.collector import BarCollector
from qbdi.server.echo import EchoFilter
from qbdi.server.events import LoopListener
from qbdi.server.messages import SUSTAIN_CC, note_key
from qbdi.server.midi_control import MidiRouting, NoMidiControl
from qbdi.settings import PlaySettings


@dataclass(slots=True)
class InputCounters:
    notes_in: int = 0
    other_channel: int = 0  # messages left out by playing.input_channel


class PlayerInput:
    """Routes input messages; owned by the loop thread."""

    def __init__(self, clock: Clock, collector: BarCollector, echo: EchoFilter,
                 listeners: LoopListener) -> None:
        self.clock = clock
        self.collector = collector
        self.echo = echo
        self.listeners = listeners
        self.counters = InputCounters()
        self.controls: MidiRouting = NoMidiControl()  # the session's MIDI control, if any

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
        key = note_key(message)
        if key is None:
            if message.is_cc(SUSTAIN_CC):
                self.listeners.played(self.clock.step_at(t_s), message)
            return
        if self.echo.is_echo(t_s, message):
            return
        position = self.clock.step_at(t_s)
        self.listeners.played(position, message)
        if key[0] == "on":
            self.collector.note_on(position, message.note, message.velocity)
            self.counters.notes_in += 1
        else:
            self.collector.note_off(position, message.note)

    def release_held(self) -> None:
        """Release now what the player holds: its note-offs will not reach us (the input
        port went, or their channel is no longer listened to)."""
        position = self.clock.now_steps()
        for pitch in self.collector.held_pitches:
            self.collector.note_off(position, pitch)
