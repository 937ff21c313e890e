"""The live loop, as in the paper's Figure 1: collect bar n -> encode -> channel -> decode ->
schedule the answer during bar n+1.

:class:`Loop` is built from injected parts and owns the live state. Callbacks only append to
its inbox; :meth:`Loop.step` (run by :meth:`Loop.serve`, or by a test) drains the inbox,
closes the bars that are due, has them answered and sends the notes that are due.

Guarantees:

* **The loop thread never waits on I/O.** Output is handed over without waiting (a reader
  that cannot keep up loses lines, counted): logs through a bounded queue to a writer thread
  (:mod:`~qbdi.server.logs`), OSC feedback out of a non-blocking socket, the view and the
  take on threads of their own; listeners only queue work. What outsiders can repeat at
  will is logged in bounded amounts (:mod:`~qbdi.server.bounded_log`) and counted.
* Bar n closes half a sixteenth before its end (``close_ahead_steps``), or ``close_ahead_s``
  if longer (none by default; never more than an eighth, as a MIDI clock can jump to any
  tempo): the answer gets that long to be ready before its first note is due. Input later
  than half a sixteenth rounds onto bar n+1's grid anyway, later input in a longer closing
  time counts from bar n+1's first step: nothing is lost (a soak saw 56 ms stalls).
* Latency never piles up: when the loop falls behind by more than a bar it answers only the
  latest bar (``skipped_bars``); an answer ready after its bar began is an overrun: its late
  notes are dropped, the overrun is counted and reported.
* Every note-on sent gets its note-off. A mode change, a preset change, panic, an exception
  in a bar, a clock stop or jump, the port failing and shutdown all end sounding notes
  (note-offs, then CC 123).
* Our output routed back to our input (DAW loops) is dropped as :mod:`~.echo` says.
* Listeners hear of a bar only once its answer is scheduled, so none can delay it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import mido

from qbdi.bars import STEPS_PER_BAR
from qbdi.improviser import Improviser
from qbdi.server.clocks import Clock, steps_per_s
from qbdi.server.collector import BarCollector, CollectedBar
from qbdi.server.echo import EchoGuard
from qbdi.server.errors import PortLost
from qbdi.server.events import AnsweredBar, BarReport, Listeners, LoopCounters, LoopListener
from qbdi.server.inbox import Inbox, Item
from qbdi.server.player import PlayerInput
from qbdi.server.ports import Ports
from qbdi.server.responder import Responder
from qbdi.server.scheduler import Scheduler
from qbdi.settings import MAX_TEMPO_BPM, MIN_TEMPO_BPM, Preset, changed

log = logging.getLogger(__name__)

CLOSE_AHEAD_S = 0.0  # the least time an answer gets beyond half a sixteenth: none
MAX_WAIT_S = 0.05  # the loop wakes at least this often (heartbeat, MIDI clock, tempo changes)


class Loop:
    """One improvisation session's bar loop. Other threads reach it through its
    :class:`~qbdi.server.inbox.Inbox` alone."""

    def __init__(self, ports: Ports, clock: Clock, improviser: Improviser, state: Preset, *,
                 models: Mapping[str, Improviser] | None = None,
                 listeners: LoopListener | None = None, close_ahead_steps: float = 0.5,
                 close_ahead_s: float = CLOSE_AHEAD_S, echo_window_s: float = 0.05) -> None:
        self.ports = ports
        self.models = dict(models or {})  # the loaded models a state may name
        self.clock = clock
        self.state = state
        self.listeners = listeners if listeners is not None else Listeners()
        self.close_ahead_steps = close_ahead_steps
        self.close_ahead_s = close_ahead_s
        self.counters = LoopCounters()
        self.collector = BarCollector()
        self.echo = EchoGuard(echo_window_s, state.playing.echo_guard, self.listeners.echo_loop,
                              lambda: STEPS_PER_BAR / steps_per_s(self.clock.tempo_bpm))
        self.player = PlayerInput(clock, self.collector, self.echo, self.listeners)
        self.responder = Responder(improviser)
        self.scheduler = Scheduler(self._send, state.playing.midi_channel - 1)
        self.on_osc: Callable[[str, list[Any], Any], None] = lambda *_: None  # the control's
        self.inbox = Inbox(clock.now_s)
        self.next_bar = 0
        self._epoch = clock.epoch
        self._was_running = clock.running
        self.fatal: PortLost | None = None
        self.closed = False
        if not clock.follows_midi:
            clock.set_tempo(state.tempo_bpm)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Open the ports; bars count from the bar the clock is in now."""
        self.ports.open(self.inbox.post_midi, self.inbox.post_control)
        self.ports.watch(self.inbox.post_port_event)
        self.clock.begin()
        self._epoch = self.clock.epoch
        self._restart_bars()
        self.listeners.started(self.clock.now_steps(), self.state.tempo_bpm)

    def serve(self, stop: threading.Event) -> None:
        """Run the loop on this thread until ``stop`` is set or the port is lost; then end
        every note and close the ports. Re-raises :class:`PortLost`."""
        try:
            while not stop.is_set() and self.fatal is None:
                self.step()
                self.inbox.wait(self._seconds_to_wake())
        finally:
            self.shutdown()
        if self.fatal is not None:
            raise self.fatal

    def shutdown(self) -> None:
        """End every sounding note (note-offs, then CC 123) and close the ports. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.end_notes("shutdown")
        self.ports.close()
        self.listeners.stopped()

    # -- one turn of the loop -------------------------------------------------------------
    def step(self) -> None:
        """Handle the inbox, answer the bars that are due, send the notes that are due."""
        try:
            self.inbox.drain(self._handle)
            self.player.controls.flush(self.clock.now_s())
            self._follow_clock()
            if self.clock.running:
                self._close_due_bars(self.clock.now_steps())
            self.scheduler.due(self.clock.now_steps())
            self.listeners.tick(self.clock.now_s(), self.next_bar)
        except PortLost as err:
            log.error("MIDI port lost: %s; ending notes and stopping", err)
            self.fatal = err
            self.end_notes("port lost")
            self.listeners.error(f"port lost: {err}")

    def _closes_at(self, bar: int) -> float:  # early: see the guarantees
        ahead_steps = min(max(self.close_ahead_steps,  # never more than an eighth
                              self.close_ahead_s * steps_per_s(self.clock.tempo_bpm)), 2.0)
        return (bar + 1) * STEPS_PER_BAR - ahead_steps

    def next_wakeup_step(self) -> float:
        """The earliest position at which :meth:`step` has something to do."""
        close = self._closes_at(self.next_bar)
        pending = self.scheduler.next_step()
        return close if pending is None else min(close, pending)

    def _seconds_to_wake(self) -> float:
        if not self.clock.running:
            return MAX_WAIT_S
        return min(max(self.clock.seconds_until(self.next_wakeup_step()), 0.0), MAX_WAIT_S)

    def _handle(self, item: Item) -> None:
        if item[0] in ("midi", "controls"):
            self.player.take(item[1], item[2], self.state.playing, item[0] == "controls")
        elif item[0] == "port":
            self._port_event(item[1], item[2], item[3])
        else:
            self.on_osc(item[1], item[2], item[3])

    def _follow_clock(self) -> None:
        """A MIDI clock Stop, Start or jump ends the notes and restarts the bars."""
        running = self.clock.running
        if self.clock.epoch != self._epoch or (self._was_running and not running):
            self.end_notes("clock stopped or moved", cc_when_silent=False)
            self._restart_bars()
            if self.clock.epoch != self._epoch:
                self.listeners.clock_jumped(self.clock.now_steps())
        self._epoch, self._was_running = self.clock.epoch, running

    def _restart_bars(self) -> None:
        bar = max(math.floor(self.clock.now_steps() / STEPS_PER_BAR), 0)
        self.next_bar = bar
        self.player.settle()
        self.collector.restart(bar)

    # -- bars -----------------------------------------------------------------------------
    def _close_due_bars(self, now_steps: float) -> None:
        if self._closes_at(self.next_bar) > now_steps:
            return
        # Fell behind by more than a bar: answer only the latest bar, never queue.
        self.player.settle(self.clock.now_s())  # nothing held is left out of its bar
        while self._closes_at(self.next_bar + 1) <= now_steps:
            self.collector.close(self.next_bar)
            self.counters.skipped_bars += 1
            log.warning("bar %d skipped: the loop fell behind", self.next_bar)
            self.next_bar += 1
        bar = self.next_bar
        self.next_bar += 1
        self.player.controls.flush(self.clock.now_s(), force=True)  # the knobs' last values
        collected = self.collector.close(bar)
        try:
            self._answer(collected, now_steps - self._closes_at(bar))
        except PortLost:
            raise
        except Exception as err:
            self._bar_failed(bar, err)

    def _answer(self, collected: CollectedBar, woke_late_steps: float) -> None:
        response = self.responder.respond(collected, self.state)
        answer_step = (collected.index + 1) * STEPS_PER_BAR
        now_steps = self.clock.now_steps()
        dropped = self.scheduler.add(response.notes, now_steps)
        overrun = now_steps > answer_step
        counters = self.counters
        counters.bars += 1
        counters.last_compute_ms = response.compute_ms
        if overrun:
            counters.overruns += 1
            counters.late_notes_dropped += dropped
            # Woke late: the machine stalled us; else the bar's own work took too long.
            log.warning("bar %d overran: its answer (%.2f ms) was ready after its bar began "
                        "(the loop woke %.1f ms after the bar closed); %d late notes dropped",
                        collected.index, response.compute_ms,
                        woke_late_steps / steps_per_s(self.clock.tempo_bpm) * 1e3, dropped)
        self._adopt_clock_tempo()
        settings = self.state.improviser
        report = BarReport(collected.index, response.compute_ms, response.dims_with_bits,
                           collected.notes_struck, len(response.notes) - dropped, overrun,
                           counters.overruns, self.clock.tempo_bpm, settings.mode,
                           settings.budget_bits)
        self.listeners.answered(AnsweredBar(report, collected.bar, response.bar, answer_step,
                                            self.state))

    def _bar_failed(self, bar: int, err: Exception) -> None:
        self.counters.bar_errors += 1
        settings = self.state.improviser
        log.error("bar %d failed (mode %s, bits %s): %s", bar, settings.mode,
                  settings.budget_bits, f"{type(err).__name__}: {err}", exc_info=err)
        self.end_notes(f"error in bar {bar}")
        self.listeners.error(f"bar {bar}: {type(err).__name__}: {err}")

    # -- state ----------------------------------------------------------------------------
    def apply(self, new: Preset) -> None:
        """Make ``new`` (already validated; its model, if named, one of :attr:`models`) the
        state, with what a change of it implies: a new model, mode or output channel ends
        the sounding notes (the new model answers from the next barline), a new input
        channel releases what the player held, a new tempo moves the internal clock."""
        old, self.state = self.state, new
        if new.model is not None and new.model != old.model:
            self.end_notes(f"model {old.model} -> {new.model}")
            self.responder.improviser = self.models[new.model]  # answers from the next bar
        if new.improviser.mode != old.improviser.mode:
            self.end_notes(f"mode {old.improviser.mode} -> {new.improviser.mode}")
        self.player.adopt(old.playing, new.playing)  # input channel, echo guard
        if new.playing.midi_channel != old.playing.midi_channel:
            self.end_notes("output channel changed")
            self.scheduler.channel = new.playing.midi_channel - 1
        if new.tempo_bpm != old.tempo_bpm and not self.clock.follows_midi:
            self.clock.set_tempo(new.tempo_bpm)
            self.listeners.tempo_changed(self.clock.now_steps(), new.tempo_bpm, False)
        self.listeners.state_changed(old, new)

    def _adopt_clock_tempo(self) -> None:
        """Once a bar, take a tempo set outside (the DAW's MIDI clock, a Link peer) into the
        state, so ``/qbdi/bpm``, status and presets tell the truth. MIDI clock jitters: it
        is followed in 0.5 BPM steps, Link (exact) in 0.01 BPM steps."""
        tolerance_bpm = 0.5 if self.clock.follows_midi else 0.01
        tempo_bpm = min(max(round(self.clock.tempo_bpm, 2), MIN_TEMPO_BPM), MAX_TEMPO_BPM)
        if abs(tempo_bpm - self.state.tempo_bpm) < tolerance_bpm:
            return
        # Straight into the state, not through apply: the clock already runs at it.
        self.state = changed(self.state, tempo_bpm=tempo_bpm)
        self.listeners.tempo_changed(self.clock.now_steps(), self.clock.tempo_bpm, True)

    # -- output ---------------------------------------------------------------------------
    def _send(self, message: mido.Message, step: float | None) -> None:
        """Send one message the scheduler releases; ``step`` is the step it was scheduled
        for (None: now)."""
        sent_s = self.clock.now_s()  # before: its echo may arrive before send() returns
        self.ports.send(message)
        self.echo.sent(sent_s, message)
        self.listeners.sent(self.clock.now_steps() if step is None else step, message)

    def end_notes(self, reason: str, cc_when_silent: bool = True) -> None:
        """End every sounding note (note-offs, then CC 123) and drop what is scheduled."""
        if self.scheduler.sounding:
            log.info("ending %d sounding notes: %s", len(self.scheduler.sounding), reason)
        errors = self.scheduler.end_all(cc_when_silent)
        lost = next((err for err in errors if isinstance(err, PortLost)), None)
        if lost is not None and self.fatal is None:
            self.fatal = lost

    def _port_event(self, direction: str, name: str, kind: str) -> None:
        """A named port closed (end what sounds, release what the player held) or is back
        (CC 123 first, so the DAW starts from silence); keep serving."""
        if kind == "lost":
            log.warning("MIDI %s port %r lost; serving on, reconnecting when it returns",
                        direction, name)
            if direction == "out":
                self.end_notes(f"output port {name!r} lost")
            else:
                self.player.release_held()
        elif direction == "out":
            self.end_notes(f"output port {name!r} back")
        self.listeners.port_event(direction, name, kind)
