"""Play answers on the sixteenth grid: every note-on has its note-off, none left sounding.

Guarantees:

* Events go out in time order; at the same step note-offs go before note-ons, so a note
  repeated across a barline is released and struck again, never doubled.
* A note is scheduled as a pair; if its note-on is dropped as late, its note-off goes too.
* :meth:`Scheduler.end_all` releases every sounding note (note-off each, then CC 123 on
  the channel) and clears what was pending, whatever happens to the port meanwhile.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterable

import mido

from qbdi.bars import Note
from qbdi.server.messages import all_notes_off

log = logging.getLogger(__name__)

BURST_NOTES = 32  # more sounding notes than this: CC 123 also goes before the note-offs
_OFF, _ON = 0, 1  # sort order at one step: releases first


class Scheduler:
    """A time-ordered queue of note events for one output channel (0-based).

    ``send(message, step)`` is given the step an event was scheduled for, or None for
    releases that go out now (:meth:`end_all`)."""

    def __init__(self, send: Callable[[mido.Message, float | None], None],
                 channel: int = 0) -> None:
        self._send = send
        self.channel = channel
        self._queue: list[tuple[float, int, int, int, int]] = []
        self._order = 0
        self.sounding: dict[int, int] = {}  # pitch -> velocity
        self.notes_out = 0

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, notes: Iterable[Note], now_step: float) -> int:
        """Schedule notes (absolute steps); a note starting before ``now_step`` is dropped
        as late. Returns how many were dropped."""
        dropped = 0
        for note in notes:
            if note.start_step < now_step:
                dropped += 1
                continue
            self._push(note.start_step, _ON, note.pitch, note.velocity)
            self._push(note.end_step, _OFF, note.pitch, 0)
        return dropped

    def _push(self, step: float, kind: int, pitch: int, velocity: int) -> None:
        self._order += 1
        heapq.heappush(self._queue, (step, kind, self._order, pitch, velocity))

    def next_step(self) -> float | None:
        """The step of the next pending event, None when nothing is pending."""
        return self._queue[0][0] if self._queue else None

    def due(self, now_step: float) -> int:
        """Send every event at or before ``now_step``; returns how many were sent."""
        sent = 0
        while self._queue and self._queue[0][0] <= now_step:
            step, kind, _, pitch, velocity = heapq.heappop(self._queue)
            if kind == _ON:
                self._note_on(pitch, velocity, step)
            else:
                self._note_off(pitch, step)
            sent += 1
        return sent

    def _note_on(self, pitch: int, velocity: int, step: float) -> None:
        if pitch in self.sounding:
            self._note_off(pitch, step)  # never two note-ons of one pitch without a release
        # Counted as sounding before sending: if the port fails mid-send, end_all still
        # releases it (a spare note-off is harmless; a stuck note is not).
        self.sounding[pitch] = velocity
        self.notes_out += 1
        self._send(mido.Message("note_on", channel=self.channel, note=pitch,
                                velocity=velocity), step)

    def _note_off(self, pitch: int, step: float) -> None:
        if pitch not in self.sounding:
            return  # its note-on was retriggered away or ended by end_all
        self._send(mido.Message("note_off", channel=self.channel, note=pitch, velocity=0), step)
        del self.sounding[pitch]  # only once sent: a failed release is retried by end_all

    def end_all(self, cc_when_silent: bool = True) -> list[BaseException]:
        """Release everything: note-offs for sounding notes, then CC 123; drop the queue.
        (Over ``BURST_NOTES`` sounding notes, CC 123 also comes first.)

        With ``cc_when_silent=False`` the CC is only sent when a note was sounding. Tries
        every message even when the port fails, and returns the errors it met.
        """
        self._queue.clear()
        errors: list[BaseException] = []
        messages = [mido.Message("note_off", channel=self.channel, note=pitch, velocity=0)
                    for pitch in sorted(self.sounding)]
        all_off = all_notes_off(self.channel)
        if len(messages) > BURST_NOTES:
            # A burst this long can overflow one period's MIDI buffer (JACK drops what does
            # not fit): CC 123 first too, so silence arrives whatever is lost after it.
            messages.insert(0, all_off)
        if messages or cc_when_silent:
            messages.append(all_off)
        self.sounding.clear()
        for message in messages:
            try:
                self._send(message, None)
            except Exception as err:
                log.error("could not send %s while ending notes: %s", message, err)
                errors.append(err)
        return errors
