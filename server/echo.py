"""Ignore our own output echoed back to our input (a DAW routing "qbdi out" into "qbdi in").

A note-on arriving within ``window_s`` of an identical one we sent (channel, pitch,
velocity) is taken for its echo and dropped, once per sent note-on; the next note-off of
that pitch is then dropped too. A player's note-off is never dropped for looking like ours:
note-offs carry no velocity, so only the release of an echoed note counts as an echo. A
note-on of velocity 0 counts as a note-off, as MIDI says.
"""

from __future__ import annotations

from collections import deque

import mido

from qbdi.server.messages import NoteKey, note_key


class EchoFilter:
    """Remembers what was sent for ``window_s`` seconds; :meth:`is_echo` consumes a match."""

    def __init__(self, window_s: float = 0.05) -> None:
        self.window_s = window_s
        self._sent: deque[tuple[float, NoteKey]] = deque()
        self._echoed: set[tuple[int, int]] = set()  # (channel, pitch) of echoed note-ons
        self.dropped = 0

    def sent(self, t_s: float, message: mido.Message) -> None:
        key = note_key(message)
        if key is not None and key[0] == "on":
            self._forget_before(t_s - self.window_s)  # bounded without any input too
            self._sent.append((t_s, key))

    def _forget_before(self, t_s: float) -> None:
        while self._sent and self._sent[0][0] < t_s:
            self._sent.popleft()

    def is_echo(self, t_s: float, message: mido.Message) -> bool:
        key = note_key(message)
        if key is None:
            return False
        if key[0] == "off":
            if (key[1], key[2]) not in self._echoed:
                return False
            self._echoed.discard((key[1], key[2]))
            self.dropped += 1
            return True
        self._forget_before(t_s - self.window_s)
        for i, (_, sent_key) in enumerate(self._sent):
            if sent_key == key:
                del self._sent[i]
                self._echoed.add((key[1], key[2]))
                self.dropped += 1
                return True
        return False
