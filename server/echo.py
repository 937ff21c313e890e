"""The echo guard: ignore our own output coming back to our input, when it does.

A DAW can route "qbdi out" back into "qbdi in" (a monitored track, a MIDI thru). Each
answer would then be heard as the player's and answered again, bar after bar. An input
note-on identical to one we sent (channel, pitch, velocity) within ``window_s`` after it is
a *candidate* echo; what happens to it depends on ``playing.echo_guard``:

* ``on``: every candidate is dropped, once per note we sent (the next note-off of its
  pitch too). This also drops a player's note that looks like ours, which a looped clip
  at a fixed velocity, answered in the same rhythm, does all the time.
* ``off``: nothing is dropped.

While a loop is found, an echo arriving up to ``LATE_S`` after its note (a stalled machine)
is still dropped.
* ``auto`` (default): candidates are dropped only while a loop is detected from the data
  (:mod:`~qbdi.server.round_trips`: nearly every note we send comes back, note-on and
  note-off, after the same delay; notes whose key the player struck in the last two bars,
  which a looped clip plays again anyway, are no evidence). Until the round
  trips decide, a candidate is *held*: :class:`~qbdi.server.player.PlayerInput` keeps it
  (and what follows it) aside and hands it on at the bar's close, or drops it if a loop is
  found before then. So the query of a bar never holds an echo that was recognised in
  time, and never loses a player's note.

In every mode a loop found or lost is logged and reported once (``on_loop(found,
latency_ms)``), so a forced ``off`` still tells the user. A note-on of velocity 0 counts
as a note-off, as MIDI says.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from enum import Enum

import mido

from qbdi.server.messages import note_key
from qbdi.server.round_trips import RoundTrips

log = logging.getLogger(__name__)

OnLoop = Callable[[bool, float], None]
HEARD_KEPT = 1024  # input note-ons remembered (two bars and a bit of them, bounded)
LATELY_BARS = 2  # a key struck this many bars back may come again from a looped clip
LATELY_SLACK_S = 0.1  # and a little more: a clip's clock drifts, a loaded machine stalls
LATE_S = 0.5  # while a loop is found, an echo this late is still recognised


class Verdict(Enum):
    PLAYER = "player"  # the player's: collect it
    ECHO = "echo"  # ours coming back: drop it
    HELD = "held"  # maybe ours: keep it aside until the round trips or the bar decide


class EchoGuard:
    """Judges input notes against what we sent; owned by the loop thread."""

    def __init__(self, window_s: float = 0.05, mode: str = "auto",
                 on_loop: OnLoop | None = None,
                 bar_s: Callable[[], float] = lambda: 2.0) -> None:
        self.window_s = window_s
        self.mode = mode
        self.trips = RoundTrips(window_s)
        self.on_loop = on_loop or (lambda found, latency_ms: None)
        self.bar_s = bar_s  # the length of a bar now (the clock's tempo)
        self._heard: deque[tuple[float, tuple[int, int, int]]] = deque(maxlen=HEARD_KEPT)
        self._echoed: set[tuple[int, int]] = set()  # (channel, pitch) of dropped note-ons
        self.dropped = 0  # messages dropped as echoes (note-ons and their note-offs)
        self.dropped_note_ons = 0

    @property
    def looped(self) -> bool:
        return self.trips.looped

    def set_mode(self, mode: str) -> None:
        """``auto``, ``on`` or ``off``; the evidence gathered so far is kept."""
        self.mode = mode

    # -- what we send ---------------------------------------------------------------------
    def sent(self, t_s: float, message: mido.Message) -> None:
        key = note_key(message)
        if key is None:
            return
        if key[0] == "on":
            lately, just_now = self._played_lately(t_s, key[1:])
            self.trips.sent_on(t_s, key[1:], counts=not lately, heard_before=just_now)
        else:
            self.trips.sent_off(t_s, key[1], key[2])
        self.update(t_s)  # resolves old trips: bounded without any input too

    # -- what we hear ---------------------------------------------------------------------
    def judge(self, t_s: float, message: mido.Message) -> Verdict:
        """The verdict on one input message (anything but a note is the player's)."""
        key = note_key(message)
        if key is None:
            return Verdict.PLAYER
        if key[0] == "off":
            self.trips.heard_off(t_s, key[1], key[2])
            self.update(t_s)
            return Verdict.ECHO if self.echoed_off(message) else Verdict.PLAYER
        met = self.trips.heard_on(t_s, key[1:])
        if met is None or not met.counts:  # the player's, as far as a repetition goes
            self._heard.append((t_s, key[1:]))
        self.update(t_s)
        if self.mode == "off":
            return Verdict.PLAYER
        if met is None:
            late = self.looped and self.trips.heard_late(t_s, key[1:], LATE_S)
            if not late:
                return Verdict.PLAYER
        if self.mode == "on" or self.looped:
            self.drop(message)
            return Verdict.ECHO
        return Verdict.HELD

    def drop(self, message: mido.Message) -> None:
        """Count a note-on as an echo; the next note-off of its pitch goes with it."""
        self._echoed.add((message.channel, message.note))
        self.dropped += 1
        self.dropped_note_ons += 1

    def _played_lately(self, t_s: float, key: tuple[int, int, int]) -> tuple[bool, bool]:
        """Whether the player struck this key in the last ``LATELY_BARS`` bars before
        ``t_s`` (a clip looping them plays it again now, loop or no loop), and whether in
        the window just before ``t_s``. (Measured in a 30-minute run: matching only the same
        moment one bar before, a clip drifting against our clock on a loaded machine
        escaped it, and made a loop of copies.)"""
        since_s = t_s - LATELY_BARS * self.bar_s() - LATELY_SLACK_S
        while self._heard and self._heard[0][0] < since_s:
            self._heard.popleft()
        times_s = [heard_s for heard_s, heard in self._heard if heard == key]
        return bool(times_s), any(t_s - heard_s <= self.window_s for heard_s in times_s)

    def echoed_off(self, message: mido.Message) -> bool:
        """Whether a note-off ends a note-on dropped as an echo (then it is dropped too)."""
        pitch = (message.channel, message.note)
        if pitch not in self._echoed:
            return False
        self._echoed.discard(pitch)
        self.dropped += 1
        return True

    def drops_held(self) -> bool:
        """Whether held candidates are echoes now (a loop is found, or the guard is on)."""
        return self.mode == "on" or (self.mode == "auto" and self.looped)

    def update(self, now_s: float) -> None:
        """Resolve the round trips due by ``now_s``; log and report a loop found or lost."""
        change = self.trips.judge(now_s)
        if change is None:
            return
        latency_ms = self.trips.latency_s * 1000.0
        if change:
            action = {"off": "kept (echo guard off)", "on": "ignored",
                      "auto": "ignored"}[self.mode]
            log.warning("qbdi out is routed back into qbdi in: our notes come back after "
                        "%.1f ms; they are %s. Break the loop in the DAW (README, 'Echo "
                        "guard')", latency_ms, action)
        else:
            log.info("qbdi out no longer comes back into qbdi in")
        self.on_loop(change, latency_ms)
