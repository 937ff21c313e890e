"""Record a live session ("take") to a standard MIDI file, while serving.

The file holds what happened on one timeline: track ``player`` has the notes played into
the server (and the sustain pedal), track ``qbdi`` the messages the server sent, at the
steps they were scheduled for, and the conductor track the tempo map, a marker wherever
the mode or the bit budget changed, and a text event with every improviser setting
wherever one changed. It opens in any DAW, and ``qbdi render --track player``
improvises on the player's part again offline, at other budgets.

Guarantees:

* The loop thread only appends to a queue (:meth:`Take.note`, :meth:`Take.tempo`,
  :meth:`Take.marker`): no file work, so a take never delays an answer.
* A writer thread saves the file every ``save_every_s`` while there is news, and once more
  on :meth:`Take.close`. Each save writes a whole, valid file beside the path and renames it
  over (atomic), so a crash or a kill loses at most the last ``save_every_s``.
* The loop thread hands over each message as its bytes (about 2 us); the writer takes them in
  every 0.25 s and a save joins bytes, so the writer never holds the interpreter long
  enough to delay a note, however long the take.
* In the file every note-on has its note-off: notes still sounding when a save is made are
  released at the last event (in that save only; the take goes on), and a note struck again
  while it sounds is released first.
* Time never runs back: when the clock jumps (a DAW's Start or Song Position Pointer), the
  take goes on at the first whole bar after its last event, keeping the position in the bar.
* A save that fails (disk full, folder removed) is logged and tried again at the next
  save; it never stops the server.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import mido

from qbdi import smf_write
from qbdi.bars import STEPS_PER_BAR, STEPS_PER_BEAT
from qbdi.server.events import AnsweredBar, LoopListener
from qbdi.settings import ImproviserSettings

log = logging.getLogger(__name__)

TICKS_PER_BEAT = 480
TICKS_PER_STEP = TICKS_PER_BEAT // STEPS_PER_BEAT  # 120: about 1 ms at 120 BPM
TICKS_PER_BAR = TICKS_PER_STEP * STEPS_PER_BAR
SAVE_EVERY_S = 10.0
DRAIN_EVERY_S = 0.25
TRACKS = ("player", "qbdi")  # the note tracks, after the conductor track


@dataclass(slots=True)
class _TrackBytes:
    """One track's encoded events so far, and the notes they leave sounding."""

    name: str
    data: bytearray = field(default_factory=bytearray)
    last_tick: int = 0
    sounding: set[tuple[int, int]] = field(default_factory=set)  # (channel, pitch)
    notes: int = 0

    def add(self, tick: int, raw: bytes) -> None:
        """One message as its MIDI bytes (a meta event as in a file: FF, type, length)."""
        tick = max(tick, self.last_tick)  # within a track arrivals are in time order
        kind = raw[0] & 0xF0
        if kind in (0x80, 0x90) and len(raw) == 3:
            key = (raw[0] & 0x0F, raw[1])
            if kind == 0x90 and raw[2] > 0:
                if key in self.sounding:  # struck again while sounding: release it first
                    self._raw(tick, _note_off(key))
                self.sounding.add(key)
                self.notes += 1
            elif key in self.sounding:
                self.sounding.discard(key)
                raw = _note_off(key)  # a note-on of velocity 0 is written as what it means
            else:
                return  # a release of nothing (its note-on came before the take)
        self._raw(tick, raw)

    def _raw(self, tick: int, raw: bytes) -> None:
        self.data += smf_write.variable_length(tick - self.last_tick)
        self.data += raw
        self.last_tick = tick

    def chunk_parts(self, end_tick: int) -> list[bytes | bytearray]:
        """The track as the parts of an ``MTrk`` chunk ending at ``end_tick``, with what
        still sounds released there; the running track is left as it was, and its events
        are not copied (a long take is saved every few seconds)."""
        tail = bytearray()
        last = self.last_tick
        for key in sorted(self.sounding):
            tail += smf_write.variable_length(max(end_tick - last, 0)) + _note_off(key)
            last = max(end_tick, last)
        head = smf_write.events_body(self.name, ())
        return smf_write.track_chunk_parts(head, self.data, tail)


def _note_off(key: tuple[int, int]) -> bytes:
    return bytes((0x80 | key[0], key[1], 0))


class Take:
    """A take being recorded to ``path``. The record methods are for the loop thread;
    :meth:`close` ends the take with a final save and may be called more than once."""

    def __init__(self, path: str | Path, save_every_s: float = SAVE_EVERY_S) -> None:
        self.path = Path(path)
        self.save_every_s = save_every_s
        self._events: queue.SimpleQueue[tuple[int, int, bytes] | None] = queue.SimpleQueue()
        self._origin_ticks: int | None = None  # ticks of the clock at the take's bar 0
        self._offset_ticks = 0  # added after a jump, a whole number of bars
        self._last_ticks = 0  # the latest tick handed over (loop thread)
        self._closed = False
        # writer-owned
        self._tracks = [_TrackBytes("qbdi take")] + [_TrackBytes(name) for name in TRACKS]
        self._end_tick = 0
        self._saved_events = 0
        self._events_in = 0
        self.saves = 0
        self.failed_saves = 0
        self.last_save_ok = False
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="qbdi-take",
                                        daemon=True)

    # -- loop thread ----------------------------------------------------------------------
    def start(self, now_steps: float, tempo_bpm: float) -> None:
        """Begin at the bar the clock is in (it becomes the file's bar 1)."""
        bar_start = math.floor(now_steps / STEPS_PER_BAR) * STEPS_PER_BAR
        self._origin_ticks = round(bar_start * TICKS_PER_STEP)
        self.tempo(bar_start, tempo_bpm)
        self._writer.start()

    def note(self, track: str, step: float, message: mido.BaseMessage) -> None:
        """A message of ``track`` (``player`` or ``qbdi``) at clock position ``step``."""
        self._put(TRACKS.index(track) + 1, step, message)

    def tempo(self, step: float, tempo_bpm: float) -> None:
        self._put(0, step, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)))

    def marker(self, step: float, text: str) -> None:
        self._put(0, step, mido.MetaMessage("marker", text=text))

    def text(self, step: float, text: str) -> None:
        """A text event on the conductor track (not shown as a marker by DAWs)."""
        self._put(0, step, mido.MetaMessage("text", text=text))

    def jump(self, now_steps: float) -> None:
        """The clock moved (or restarted): go on a whole number of bars after the last
        event, at the same position in the bar."""
        if not self.started:
            return
        now_ticks = round(now_steps * TICKS_PER_STEP) - self._origin_ticks
        behind = self._last_ticks - now_ticks
        self._offset_ticks = max(math.ceil(behind / TICKS_PER_BAR), 0) * TICKS_PER_BAR

    def _put(self, track: int, step: float, message: mido.BaseMessage) -> None:
        if self._closed or not self.started:
            return
        tick = max(round(step * TICKS_PER_STEP) - self._origin_ticks + self._offset_ticks, 0)
        self._last_ticks = max(self._last_ticks, tick)
        self._events.put((track, tick, bytes(message.bytes())))

    def close(self) -> None:
        """Stop recording and save the file one last time (waits for it)."""
        if self._closed:
            return
        self._closed = True
        if self._writer.is_alive():
            self._events.put(None)
            self._stop.set()
            self._writer.join()

    @property
    def started(self) -> bool:
        return self._origin_ticks is not None

    # -- writer thread --------------------------------------------------------------------
    @property
    def notes(self) -> dict[str, int]:
        """Note-ons recorded so far, per track."""
        return {track.name: track.notes for track in self._tracks[1:]}

    def _write_loop(self) -> None:
        # Drained often, so each turn holds the interpreter for a few events only (the loop
        # thread waits for it to send a note); saved every save_every_s.
        drain_every_s = min(DRAIN_EVERY_S, self.save_every_s)
        next_save_s = time.monotonic() + self.save_every_s
        ended = False
        while not ended:
            self._stop.wait(drain_every_s)
            ended = self._drain()
            due = time.monotonic() >= next_save_s
            if ended or (due and self._events_in != self._saved_events):
                self._save()
            if due:
                next_save_s = time.monotonic() + self.save_every_s

    def _drain(self) -> bool:
        """Encode what has arrived; True once the end of the take has arrived."""
        while True:
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            track, tick, message = item
            self._tracks[track].add(tick, message)
            self._end_tick = max(self._end_tick, tick)
            self._events_in += 1

    def _save(self) -> None:
        header = smf_write.header_chunk(len(self._tracks), TICKS_PER_BEAT)
        part = self.path.with_name(self.path.name + ".part")
        try:
            with open(part, "wb") as file:
                file.write(header)
                for track in self._tracks:
                    file.writelines(track.chunk_parts(self._end_tick))
            os.replace(part, self.path)
        except OSError as err:
            self.failed_saves += 1
            log.error("could not save the take to %s: %s (trying again at the next save)",
                      self.path, err)
            self.last_save_ok = False
            return
        self._saved_events = self._events_in
        self.saves += 1
        self.last_save_ok = True


class TakeListener(LoopListener):
    """Records what the loop reports into a :class:`Take`: the player's notes and pedal, what
    was sent, the tempo map, and where the answers' settings change (a marker when the mode
    or the budget does, ``query, 256 bits``, and a text event with every improviser setting,
    so a take says how to reproduce it)."""

    def __init__(self, take: Take) -> None:
        self.take = take
        self._marked: ImproviserSettings | None = None

    def started(self, now_steps: float, tempo_bpm: float) -> None:
        self.take.start(now_steps, tempo_bpm)

    def played(self, step: float, message: mido.Message) -> None:
        self.take.note("player", step, message)

    def sent(self, step: float, message: mido.Message) -> None:
        self.take.note("qbdi", step, message)

    def tempo_changed(self, step: float, tempo_bpm: float, by_clock: bool) -> None:
        self.take.tempo(step, tempo_bpm)

    def clock_jumped(self, now_steps: float) -> None:
        self.take.jump(now_steps)

    def answered(self, bar: AnsweredBar) -> None:
        settings = bar.state.improviser
        if settings == self._marked:
            return
        old, self._marked = self._marked, settings
        if old is None or (old.mode, old.budget_bits) != (settings.mode, settings.budget_bits):
            bits = "full rate" if settings.full_rate else f"{settings.budget_bits} bits"
            self.take.marker(bar.answer_step, f"{settings.mode}, {bits}")
        self.take.text(bar.answer_step, "improviser " + settings.model_dump_json())

    def stopped(self) -> None:
        if not self.take.started:
            return
        self.take.close()
        if self.take.last_save_ok:
            log.info("take saved to %s: %s note-ons", self.take.path, self.take.notes)
        else:
            log.error("the take could not be saved to %s (see above)", self.take.path)
