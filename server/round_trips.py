"""Is our output routed back into our input? Decided from the notes, not guessed.

A DAW loop ("qbdi out" routed into "qbdi in") returns nearly every note we send: its
note-on with the same channel, pitch and velocity a few milliseconds later, and its
note-off after the same few milliseconds again. A player's notes that happen to look like
ours do not: a looped clip at a fixed velocity answered in the same rhythm meets many of
our note-ons, but its notes start and end where the clip says, not where ours did, and the
notes we add to it never come back.

So every note-on we send opens a *round trip*, resolved once the window after it (or after
its note-off) has passed:

* ``MISS``: no input note-on with its key arrived within ``window_s``;
* ``ROUND``: its note-on and its note-off both came back, within ``window_s`` each, and
  the two delays differ by at most ``tolerance_s`` (a loop delays both alike);
* ``HALF``: the note-on came back, the note-off did not, or not after the same delay.

A note the player could have played anyway is no evidence: when the player struck the same
key in the last bars, a looped clip (or a player repeating a bar) sends it again now
whether or not there is a loop. Such a trip still meets its echo, but its verdict is not
counted (``counts=False``), unless the key arrives *twice* around our note (within the
window before or after it, and within the window after it): the clip's own and our echo,
which only a loop adds. A loop shows in the notes the player did not just play, and in the
doubled ones. (An input note that met a counted trip is likely our own echo, not the
player's: :mod:`~qbdi.server.echo` does not take it for something the player played.)

A loop is *found* when, of the last ``RECENT`` counted trips (at least ``FIND_AFTER``), none
is a miss and all but one at most came back whole; it is *lost* when ``LOSE_MISSES`` of
the last ``RECENT`` are misses. Pure bookkeeping: no MIDI library, no clock, no I/O.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Final

Key = tuple[int, int, int]  # (channel, pitch, velocity) of a note-on

RECENT: Final = 8
FIND_AFTER: Final = 4
LOSE_MISSES: Final = 6
MAX_OPEN: Final = 512  # trips awaiting their verdict; older ones are forgotten unjudged
MAX_MISSED: Final = 256  # missed trips kept for an echo arriving late (heard_late)


class Trip(Enum):
    MISS = "miss"
    HALF = "half"
    ROUND = "round"


@dataclass(slots=True)
class _Open:
    key: Key
    on_s: float
    counts: bool = True
    heard_before: bool = False  # the key arrived in the window before our note
    off_s: float | None = None
    back_on_s: float | None = None
    back_off_s: float | None = None


class RoundTrips:
    """Round trips of the notes we send, and the verdict they give."""

    def __init__(self, window_s: float = 0.05, tolerance_s: float = 0.015) -> None:
        self.window_s = window_s
        self.tolerance_s = tolerance_s
        self._open: deque[_Open] = deque()
        self._missed: deque[_Open] = deque(maxlen=MAX_MISSED)
        self.recent: deque[Trip] = deque(maxlen=RECENT)
        self._delays_s: deque[float] = deque(maxlen=RECENT)
        self.looped = False
        self.trips = {trip: 0 for trip in Trip}
        self.uncounted = 0  # trips of notes the player could have played anyway

    @property
    def latency_s(self) -> float:
        """The median delay of the recent whole round trips (0 before any)."""
        return statistics.median(self._delays_s) if self._delays_s else 0.0

    def sent_on(self, t_s: float, key: Key, counts: bool = True,
                heard_before: bool = False) -> None:
        """One of our note-ons; ``counts=False``: its verdict will be no evidence unless the
        key arrives twice around it (``heard_before``: once already, just before it)."""
        if len(self._open) >= MAX_OPEN:
            self._open.popleft()
        self._open.append(_Open(key, t_s, counts, heard_before))

    def sent_off(self, t_s: float, channel: int, pitch: int) -> None:
        """Our note-off of ``pitch``: it ends the latest of our notes of that pitch."""
        for trip in reversed(self._open):
            if trip.off_s is None and trip.key[:2] == (channel, pitch):
                trip.off_s = t_s
                return

    def heard_on(self, t_s: float, key: Key) -> _Open | None:
        """An input note-on: the trip of ours it meets (same key, within the window after
        it, not met before), or None. Each of ours is met once."""
        met = [trip for trip in self._open
               if trip.key == key and 0.0 <= t_s - trip.on_s <= self.window_s]
        for trip in met:
            if trip.back_on_s is None:
                trip.back_on_s = t_s
                trip.counts = trip.counts or trip.heard_before  # the second arrival
                return trip
        for trip in met:  # all met already: a second arrival for the first of them
            trip.counts = True
            break
        return None

    def heard_late(self, t_s: float, key: Key, late_s: float) -> bool:
        """An input note-on that met none of ours in time: True when it meets one of ours
        missed less than ``late_s`` before (an echo delayed by a stalled machine). The trip
        is met once, and its miss becomes a half trip: the note did come back, so a stall
        is no evidence that the loop is gone (under load a loop was lost and found again
        twice a minute, letting echoes into the queries), nor evidence of a loop."""
        while self._missed and t_s - self._missed[0].on_s > late_s:
            self._missed.popleft()
        for index, trip in enumerate(self._missed):
            if trip.key == key and t_s >= trip.on_s:
                del self._missed[index]
                if trip.counts:
                    self._unmiss()
                return True
        return False

    def _unmiss(self) -> None:
        """Turn the latest miss among the recent verdicts into a half trip."""
        for index in range(len(self.recent) - 1, -1, -1):
            if self.recent[index] is Trip.MISS:
                self.recent[index] = Trip.HALF
                self.trips[Trip.MISS] -= 1
                self.trips[Trip.HALF] += 1
                return

    def heard_off(self, t_s: float, channel: int, pitch: int) -> bool:
        """An input note-off: True when it meets the note-off of one of our notes whose
        note-on came back (of two, the one delayed as its note-on was)."""
        for trip in self._open:
            if (trip.back_on_s is not None and trip.off_s is not None
                    and trip.key[:2] == (channel, pitch)
                    and 0.0 <= t_s - trip.off_s <= self.window_s):
                on_delay_s = trip.back_on_s - trip.on_s
                if trip.back_off_s is None or abs(t_s - trip.off_s - on_delay_s) < abs(
                        trip.back_off_s - trip.off_s - on_delay_s):
                    trip.back_off_s = t_s
                return True
        return False

    def judge(self, now_s: float) -> bool | None:
        """Resolve the trips whose windows have passed and update the verdict. Returns True
        when a loop was just found, False when one was just lost, None otherwise."""
        still_open: deque[_Open] = deque()
        for trip in self._open:
            verdict = self._verdict(trip, now_s)
            if verdict is None:
                still_open.append(trip)
            else:
                self._record(trip, verdict)
        self._open = still_open
        return self._decide()

    def _verdict(self, trip: _Open, now_s: float) -> Trip | None:
        if trip.back_on_s is None:
            return Trip.MISS if now_s - trip.on_s > self.window_s else None
        if trip.off_s is None:
            return None
        over = now_s - trip.off_s > self.window_s
        if trip.back_off_s is None:
            return Trip.HALF if over else None
        on_delay_s = trip.back_on_s - trip.on_s
        off_delay_s = trip.back_off_s - trip.off_s
        if abs(on_delay_s - off_delay_s) <= self.tolerance_s:
            return Trip.ROUND
        return Trip.HALF if over else None  # a second note-off may still come in time

    def _record(self, trip: _Open, verdict: Trip) -> None:
        if verdict is Trip.MISS:
            self._missed.append(trip)
        if not trip.counts:
            self.uncounted += 1
            return
        self.recent.append(verdict)
        self.trips[verdict] += 1
        if verdict is Trip.ROUND and trip.back_on_s is not None:
            self._delays_s.append(trip.back_on_s - trip.on_s)

    def _decide(self) -> bool | None:
        misses = self.recent.count(Trip.MISS)
        if not self.looped:
            whole = self.recent.count(Trip.ROUND)
            if len(self.recent) >= FIND_AFTER and misses == 0 and whole >= len(self.recent) - 1:
                self.looped = True
                return True
        elif misses >= LOSE_MISSES:
            self.looped = False
            return False
        return None

    def forget(self) -> None:
        """Start over (the guard was switched): no open trips, no evidence, no loop."""
        self._open.clear()
        self._missed.clear()
        self.recent.clear()
        self._delays_s.clear()
        self.looped = False
