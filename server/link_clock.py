"""An Ableton Link clock: tempo and bar phase follow a Link session (``--clock link``).

Link (through the optional ``aalink`` package: ``pip install "qbdi[link]"``) shares one
timeline among the peers on the local network: Ableton Live with Link on, other apps, other
qbdi servers. A bar is Link's quantum of 4 beats, so a bar starts exactly where every peer's
bar phase is 0; step 0 of bar 0 is Link beat 0.

Guarantees, the same interface as :mod:`qbdi.server.clocks`:

* ``now_s()`` is Link's host clock (seconds); ``step_at(t_s)`` is the session's beat at
  ``t_s`` times 4 (sixteenths), exact for any ``t_s`` at the current tempo.
* A tempo change by any peer changes ``tempo_bpm`` and keeps the position continuous;
  ``set_tempo`` proposes a tempo to the whole session (Link lets every peer do so).
* A jump of the timeline (joining a session whose bar phase differs, a peer forcing the
  beat) bumps ``epoch``, so the loop ends its notes and restarts its bars on the new grid.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import mido

from qbdi.errors import QbdiError
from qbdi.server.clocks import STEPS_PER_BEAT, steps_per_s

QUANTUM_BEATS = 4  # one 4/4 bar: bars start where the session's bar phase is 0
JUMP_TOLERANCE_STEPS = 0.5  # a position off the tempo's prediction by more is a jump
INSTALL_HINT = 'Ableton Link needs the aalink package: pip install "qbdi[link]" (or aalink)'


def _new_link(tempo_bpm: float) -> tuple[Any, asyncio.AbstractEventLoop]:
    """An enabled aalink ``Link`` at ``tempo_bpm`` and the private event loop it belongs to.

    aalink needs a running loop only to be constructed (its ``sync`` futures are not used
    here), so the loop runs just for that and is kept open for the Link's lifetime.
    """
    try:
        import aalink
    except ImportError as err:
        raise QbdiError(INSTALL_HINT) from err

    async def make() -> Any:
        return aalink.Link(float(tempo_bpm))

    loop = asyncio.new_event_loop()
    link = loop.run_until_complete(make())
    link.quantum = QUANTUM_BEATS
    link.enabled = True
    return link, loop


class LinkClock:
    """Position and tempo from the Link session; always running (Link has no transport
    here: a session's timeline runs whether or not anyone plays)."""

    follows_midi = False
    running = True

    def __init__(self, tempo_bpm: float = 120.0, link: Any = None) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        if link is None:
            link, self._loop = _new_link(tempo_bpm)
        self._link = link
        self._epoch = 0
        self._last: tuple[float, float, float] | None = None  # (t_s, steps, tempo_bpm)

    # -- the session ----------------------------------------------------------------------
    @property
    def peers(self) -> int:
        """Other Link peers in the session now."""
        return int(self._link.num_peers)

    def wait_for_peers(self, timeout_s: float = 1.5, settle_s: float = 0.5) -> int:
        """Wait up to ``timeout_s`` for Link to find a session (discovery takes ~0.5 s),
        then up to ``settle_s`` more for its tempo to arrive (Link counts a peer before it
        has measured the peer's clock and joined its timeline). Returns the number of peers
        (0: alone, the session is ours)."""
        start_bpm = self.tempo_bpm
        deadline = time.monotonic() + timeout_s
        while self.peers == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.peers == 0:
            return 0
        deadline = time.monotonic() + settle_s
        while self.tempo_bpm == start_bpm and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.peers

    @property
    def tempo_bpm(self) -> float:
        return float(self._link.tempo)

    def set_tempo(self, tempo_bpm: float) -> None:
        """Propose ``tempo_bpm`` to the session; every peer follows, the position does not
        jump."""
        self._link.tempo = float(tempo_bpm)
        self._last = None  # the prediction over this change is not a jump

    # -- time and position ----------------------------------------------------------------
    def now_s(self) -> float:
        return self._link.time.total_seconds()

    def _sample(self) -> tuple[float, float, float]:
        """(t_s, steps at t_s, tempo_bpm) from one reading of the session."""
        before_s = self.now_s()
        beat = float(self._link.beat)
        after_s = self.now_s()
        return (before_s + after_s) / 2, beat * STEPS_PER_BEAT, self.tempo_bpm

    def _observe(self) -> tuple[float, float, float]:
        """Sample the session; count a jump when the position left the tempo's line."""
        sample = self._sample()
        last, self._last = self._last, sample
        if last is not None:
            elapsed_s = max(sample[0] - last[0], 0.0)
            low, high = sorted((steps_per_s(last[2]), steps_per_s(sample[2])))
            lowest = last[1] + elapsed_s * low - JUMP_TOLERANCE_STEPS
            highest = last[1] + elapsed_s * high + JUMP_TOLERANCE_STEPS
            if not lowest <= sample[1] <= highest:
                self._epoch += 1
        return sample

    @property
    def epoch(self) -> int:
        """Bumped on each jump of the timeline (reading it checks for one)."""
        self._observe()
        return self._epoch

    def step_at(self, t_s: float) -> float:
        """The session's position (steps) at ``t_s`` on :meth:`now_s`'s clock."""
        at_s, steps, tempo_bpm = self._sample()
        return steps + (t_s - at_s) * steps_per_s(tempo_bpm)

    def now_steps(self) -> float:
        return self._observe()[1]

    def seconds_until(self, step: float) -> float:
        """Seconds from now until ``step`` at the session's tempo (negative when past)."""
        _, steps, tempo_bpm = self._sample()
        return (step - steps) / steps_per_s(tempo_bpm)

    def feed(self, t_s: float, message: mido.Message) -> None:
        """A Link clock ignores MIDI clock messages."""

    def begin(self) -> None:
        """The Link session decides where the music is."""

    def close(self) -> None:
        """Leave the session. Idempotent."""
        self._link.enabled = False
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()
