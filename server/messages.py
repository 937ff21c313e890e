"""MIDI messages the server recognises and sends, in one place."""

from __future__ import annotations

import mido

ALL_NOTES_OFF_CC = 123
SUSTAIN_CC = 64

NoteKey = tuple[str, int, int, int]


def note_key(message: mido.Message) -> NoteKey | None:
    """``(kind, channel, pitch, velocity)`` of a note event, None for anything else. A
    note-on of velocity 0 is a note-off, as MIDI says."""
    if message.type == "note_on" and message.velocity > 0:
        return ("on", message.channel, message.note, message.velocity)
    if message.type in ("note_on", "note_off"):
        return ("off", message.channel, message.note, 0)
    return None


def is_note_on(message: mido.Message) -> bool:
    """A note-on that starts a note (velocity above 0)."""
    return message.type == "note_on" and message.velocity > 0


def all_notes_off(channel: int) -> mido.Message:
    """CC 123 on ``channel`` (0-based): the receiver ends every note of that channel."""
    return mido.Message("control_change", channel=channel, control=ALL_NOTES_OFF_CC, value=0)
