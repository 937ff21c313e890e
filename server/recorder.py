"""Follow a MIDI output stream and know which notes it leaves sounding.

Used by the tests and the benchmark to check the server's note-safety guarantee from what
it actually sent, not from its own bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable

import mido

from qbdi.server.messages import ALL_NOTES_OFF_CC


class NoteRecorder:
    """Sounding ``(channel, pitch)`` pairs after a stream of messages.

    A note-on of a sounding note is counted in ``double_note_ons`` (the server must never
    send one); CC 123 ends every note of its channel.
    """

    def __init__(self) -> None:
        self.sounding: set[tuple[int, int]] = set()
        self.double_note_ons = 0
        self.note_ons = 0

    def feed(self, message: mido.Message) -> None:
        key = (getattr(message, "channel", -1), getattr(message, "note", -1))
        if message.type == "note_on" and message.velocity > 0:
            self.note_ons += 1
            if key in self.sounding:
                self.double_note_ons += 1
            self.sounding.add(key)
        elif message.type in ("note_on", "note_off"):
            self.sounding.discard(key)
        elif message.type == "control_change" and message.control == ALL_NOTES_OFF_CC:
            self.sounding = {k for k in self.sounding if k[0] != message.channel}

    @classmethod
    def of(cls, messages: Iterable[mido.Message]) -> NoteRecorder:
        recorder = cls()
        for message in messages:
            recorder.feed(message)
        return recorder
