"""The live loop, as in the paper's Figure 1: collect bar n -> encode -> channel -> decode ->
schedule the answer during bar n+1.

:class:`Server` is built from injected parts (ports, clock, improviser, feedback) and owns
the state: MIDI and OSC callbacks only append to its inbox; :meth:`Server.step` (called by
:meth:`Server.serve` on one thread, or by a test) drains the inbox, closes the bars that
are due, runs the one improviser and sends the notes that are due.

Guarantees:

* Bar n closes half a sixteenth before its end (``close_ahead_steps``): input later than
  that rounds onto bar n+1's grid anyway, so nothing is lost, and the answer gets that long
  to compute before its first note is due.
* Latency never piles up: when the loop falls behind by more than a bar it answers only the
  latest bar (``skipped_bars``); an answer ready after its bar began is an overrun: its late
  notes are dropped, the overrun is counted, logged and reported over OSC.
* Every note-on sent gets its note-off. A mode change, a preset change, panic, an exception
  in a bar, a clock stop or jump, the port failing and shutdown all end sounding notes
  (note-offs, then CC 123).
* Input identical to our own output within ``echo_window_s`` is dropped (DAW loops).
* Only once a bar's answer is scheduled do its input and answer go to the live IR feed
  (:mod:`~qbdi.server.live_ir`, off by default), which analyses them on its own thread.
* With a take (:mod:`~qbdi.server.take`, ``serve --record``), what is played, what is sent,
  the tempo and each change of mode or budget are handed to it, and it is saved on shutdown.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import mido
from pydantic import ValidationError

from qbdi.bars import STEPS_PER_BAR, bars_to_notes
from qbdi.errors import QbdiError
from qbdi.improviser import Improviser, ImproviserSettings
from qbdi.presets import (
    MAX_TEMPO_BPM,
    MIN_TEMPO_BPM,
    Preset,
    changed,
    describe_error,
    load_named_preset,
)
from qbdi.server import osc
from qbdi.server.clocks import CLOCK_MESSAGES
from qbdi.server.collector import BarCollector, CollectedBar
from qbdi.server.echo import EchoFilter, note_key
from qbdi.server.errors import PortLost
from qbdi.server.live_ir import LiveIr
from qbdi.server.ports import Ports
from qbdi.server.scheduler import Scheduler
from qbdi.server.take import SUSTAIN_CC, Take

log = logging.getLogger(__name__)

Address = tuple[str, int]
MAX_WAIT_S = 0.05  # the loop wakes at least this often (heartbeat, MIDI clock, tempo changes)
HEARTBEAT_S = 1.0
MAX_REASON_CHARS = 300  # the longest /qbdi/error reason sent back to an OSC peer


class Clock(Protocol):
    follows_midi: bool
    epoch: int
    tempo_bpm: float

    @property
    def running(self) -> bool: ...

    def now_s(self) -> float: ...

    def step_at(self, t_s: float) -> float: ...

    def now_steps(self) -> float: ...

    def seconds_until(self, step: float) -> float: ...

    def feed(self, t_s: float, message: mido.Message) -> None: ...


class Feedback(Protocol):
    def send(self, address: str, args: Sequence[Any], to: Address | None = None) -> None: ...


class MemoryFeedback:
    """Feedback kept in a list of ``(address, args, to)``, for tests and headless runs."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any], Address | None]] = []

    def send(self, address: str, args: Sequence[Any], to: Address | None = None) -> None:
        self.sent.append((address, list(args), to))

    def addressed(self, address: str) -> list[list[Any]]:
        return [args for a, args, _ in self.sent if a == address]


@dataclass(frozen=True, slots=True)
class BarReport:
    """What happened in one answered bar (for the status line and the logs)."""

    bar: int
    compute_ms: float
    dims_with_bits: int
    notes_in: int
    notes_out: int
    overrun: bool
    tempo_bpm: float
    mode: str
    budget_bits: int | str


@dataclass(slots=True)
class Counters:
    bars: int = 0
    overruns: int = 0
    skipped_bars: int = 0
    late_notes_dropped: int = 0
    bar_errors: int = 0
    notes_in: int = 0
    other_channel: int = 0  # input messages left out by playing.input_channel
    osc_errors: int = 0
    last_compute_ms: float = 0.0


class Server:
    """One improvisation session. Not thread-safe except :meth:`post_midi`/:meth:`post_osc`."""

    def __init__(self, ports: Ports, clock: Clock, improviser: Improviser, state: Preset, *,
                 feedback: Feedback | None = None,
                 preset_loader: Callable[[str], Preset] = load_named_preset,
                 on_bar: Callable[[BarReport], None] | None = None,
                 take: Take | None = None,
                 close_ahead_steps: float = 0.5, echo_window_s: float = 0.05) -> None:
        self.ports = ports
        self.clock = clock
        self.improviser = improviser
        self.state = state
        self.feedback = feedback
        self.on_bar = on_bar
        self.take = take
        self._marked: ImproviserSettings | None = None  # settings last marked in the take
        self._preset_loader = preset_loader
        self.close_ahead_steps = close_ahead_steps
        self.counters = Counters()
        self.echo = EchoFilter(echo_window_s)
        self.collector = BarCollector()
        self.scheduler = Scheduler(self._send, state.playing.midi_channel - 1)
        self.live_ir = LiveIr(self._feedback, state.live_ir)  # its worker sends
        self._dispatcher = osc.build_dispatcher()
        self._inbox: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._next_bar = 0
        self._epoch = clock.epoch
        self._was_running = clock.running
        self._last_query: CollectedBar | None = None
        self._last_velocity: int | None = None
        self._reply_to: Address | None = None  # the sender of the OSC message in hand
        self._heartbeat_s = clock.now_s()
        self._started_s = clock.now_s()
        self.fatal: PortLost | None = None
        self.closed = False
        improviser.reset(state.improviser)
        if not clock.follows_midi:
            self._set_clock_tempo(state.tempo_bpm)

    # -- callbacks (any thread): enqueue only ---------------------------------------------
    def post_midi(self, message: mido.Message) -> None:
        """Input port callback: stamp and enqueue; the loop thread does the rest."""
        self._inbox.append(("midi", self.clock.now_s(), message))
        self._wake.set()

    def post_osc(self, address: str, args: list[Any], sender: Address | None) -> None:
        """OSC socket callback: enqueue; the loop thread handles it."""
        self._inbox.append(("osc", address, args, sender))
        self._wake.set()

    def post_port_event(self, direction: str, name: str, kind: str) -> None:
        """Port watcher callback: a named port went away (``lost``) or is back (``back``)."""
        self._inbox.append(("port", direction, name, kind))
        self._wake.set()

    def wake(self) -> None:
        """Make :meth:`serve` look at its stop event now (signal handlers call this)."""
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Open the ports; bars count from the bar the clock is in now."""
        self.ports.open(self.post_midi)
        watch = getattr(self.ports, "watch", None)
        if watch is not None:
            watch(self.post_port_event)
        self._restart_bars()
        if self.take is not None:
            self.take.start(self.clock.now_steps(), self.state.tempo_bpm)

    def serve(self, stop: threading.Event) -> None:
        """Run the loop on this thread until ``stop`` is set or the port is lost; then end
        every note and close the ports. Re-raises :class:`PortLost`."""
        try:
            while not stop.is_set() and self.fatal is None:
                self.step()
                self._wake.wait(self._seconds_to_wake())
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
        self.live_ir.close()
        if self.take is not None and self.take.started:
            self.take.close()
            if self.take.last_save_ok:
                log.info("take saved to %s: %s note-ons", self.take.path, self.take.notes)
            else:
                log.error("the take could not be saved to %s (see above)", self.take.path)

    # -- one turn of the loop -------------------------------------------------------------
    def step(self) -> None:
        """Handle the inbox, answer the bars that are due, send the notes that are due."""
        self._wake.clear()
        try:
            self._drain_inbox()
            self._follow_clock()
            if self.clock.running:
                self._close_due_bars(self.clock.now_steps())
            self.scheduler.due(self.clock.now_steps())
            self._heartbeat()
        except PortLost as err:
            self._port_lost(err)

    def next_wakeup_step(self) -> float:
        """The earliest position at which :meth:`step` has something to do."""
        close = self._close_step(self._next_bar)
        pending = self.scheduler.next_step()
        return close if pending is None else min(close, pending)

    def run_until(self, step: float) -> None:
        """Manual clock only: move the clock through every wake-up up to ``step``, calling
        :meth:`step` at each, as :meth:`serve` would without sleeping."""
        for _ in range(100_000):
            wake = self.next_wakeup_step()
            if wake > step or self.fatal is not None:
                break
            if wake > self.clock.now_steps():
                self.clock.set_step(wake)  # type: ignore[attr-defined]
            self.step()
        if step > self.clock.now_steps():
            self.clock.set_step(step)  # type: ignore[attr-defined]
        self.step()

    def _seconds_to_wake(self) -> float:
        if not self.clock.running:
            return MAX_WAIT_S
        return min(max(self.clock.seconds_until(self.next_wakeup_step()), 0.0), MAX_WAIT_S)

    # -- input ----------------------------------------------------------------------------
    def _drain_inbox(self) -> None:
        while self._inbox:
            item = self._inbox.popleft()
            if item[0] == "midi":
                self._take_midi(item[1], item[2])
            elif item[0] == "port":
                self._port_event(item[1], item[2], item[3])
            else:
                self._take_osc(item[1], item[2], item[3])

    def _take_midi(self, t_s: float, message: mido.Message) -> None:
        if message.type in CLOCK_MESSAGES:
            self.clock.feed(t_s, message)
            return
        wanted = self.state.playing.input_channel
        if wanted != "all" and getattr(message, "channel", wanted - 1) != wanted - 1:
            self.counters.other_channel += 1
            return
        key = note_key(message)
        if key is None:
            if self.take is not None and message.is_cc(SUSTAIN_CC):
                self.take.note("player", self.clock.step_at(t_s), message)
            return
        if self.echo.is_echo(t_s, message):
            return
        position = self.clock.step_at(t_s)
        if self.take is not None:
            self.take.note("player", position, message)
        if key[0] == "on":
            self.collector.note_on(position, message.note, message.velocity)
            self.counters.notes_in += 1
        else:
            self.collector.note_off(position, message.note)

    def _follow_clock(self) -> None:
        """A MIDI clock Stop, Start or jump ends the notes and restarts the bars."""
        running = self.clock.running
        if self.clock.epoch != self._epoch or (self._was_running and not running):
            self.end_notes("clock stopped or moved", cc_when_silent=False)
            self._restart_bars()
            if self.take is not None and self.clock.epoch != self._epoch:
                self.take.jump(self.clock.now_steps())
        self._epoch, self._was_running = self.clock.epoch, running

    def _restart_bars(self) -> None:
        bar = max(math.floor(self.clock.now_steps() / STEPS_PER_BAR), 0)
        self._next_bar = bar
        self.collector.restart(bar)

    # -- bars -----------------------------------------------------------------------------
    def _close_step(self, bar: int) -> float:
        return (bar + 1) * STEPS_PER_BAR - self.close_ahead_steps

    def _close_due_bars(self, now_steps: float) -> None:
        if self._close_step(self._next_bar) > now_steps:
            return
        # Fell behind by more than a bar: answer only the latest bar, never queue.
        while self._close_step(self._next_bar + 1) <= now_steps:
            self.collector.close(self._next_bar)
            self.counters.skipped_bars += 1
            log.warning("bar %d skipped: the loop fell behind", self._next_bar)
            self._next_bar += 1
        bar = self._next_bar
        self._next_bar += 1
        collected = self.collector.close(bar)
        try:
            self._answer(collected)
        except PortLost:
            raise
        except Exception as err:
            self._bar_failed(bar, err)

    def _query_for(self, collected: CollectedBar) -> tuple[bool, CollectedBar | None]:
        """(whether to call the improviser, the bar to answer) under the mode and policy."""
        mode = self.state.improviser.mode
        if mode == "mute":
            return False, None
        if mode != "query" or not collected.empty:
            return True, collected
        if self.state.playing.silence == "repeat" and self._last_query is not None:
            return True, self._last_query
        return False, None

    def _answer(self, collected: CollectedBar) -> None:
        if not collected.empty:
            self._last_query = collected
        if collected.velocity is not None:
            self._last_velocity = collected.velocity
        call, query = self._query_for(collected)
        compute_ms, dims, notes, answered = 0.0, 0, [], None
        answer_step = (collected.index + 1) * STEPS_PER_BAR
        if call:
            answer = self.improviser.step(None if query is None else query.bar)
            answered = answer.bar
            compute_ms, dims = answer.compute_s * 1e3, answer.dims_with_bits
            notes = bars_to_notes(answer.bar, self._velocity(), first_step=answer_step)
        now_steps = self.clock.now_steps()
        dropped = self.scheduler.add(notes, now_steps)
        overrun = now_steps > answer_step
        self._mark_settings(answer_step)
        self._report_bar(collected, compute_ms, dims, len(notes) - dropped, overrun, dropped)
        self.live_ir.feed(collected.index, collected.bar, answered)  # after: never delays it

    def _mark_settings(self, answer_step: float) -> None:
        """In the take, where the answers' settings change: a marker when the mode or the
        budget does (``query, 256 bits``), and a text event with every improviser setting
        (seed, statistics, threshold...) so a take says how to reproduce it."""
        settings = self.state.improviser
        if self.take is None or settings == self._marked:
            return
        old, self._marked = self._marked, settings
        if old is None or (old.mode, old.budget_bits) != (settings.mode, settings.budget_bits):
            bits = ("full rate" if settings.budget_bits == "full"
                    else f"{settings.budget_bits} bits")
            self.take.marker(answer_step, f"{settings.mode}, {bits}")
        self.take.text(answer_step, "improviser " + settings.model_dump_json())

    def _velocity(self) -> int:
        play = self.state.playing
        if play.velocity == "follow" and self._last_velocity is not None:
            return self._last_velocity
        return play.fixed_velocity

    def _report_bar(self, collected: CollectedBar, compute_ms: float, dims: int,
                    notes_out: int, overrun: bool, dropped: int) -> None:
        counters = self.counters
        counters.bars += 1
        counters.last_compute_ms = compute_ms
        self._adopt_clock_tempo()
        self._feedback("/qbdi/bar", [collected.index, round(compute_ms, 3), dims,
                                     collected.notes_struck, notes_out])
        if overrun:
            counters.overruns += 1
            counters.late_notes_dropped += dropped
            log.warning("bar %d overran: its answer (%.2f ms to compute) was ready after its "
                        "bar began; %d late notes dropped", collected.index, compute_ms, dropped)
            self._feedback("/qbdi/overrun", [collected.index, round(compute_ms, 3),
                                             counters.overruns])
        if self.on_bar is not None:
            settings = self.state.improviser
            self.on_bar(BarReport(collected.index, compute_ms, dims, collected.notes_struck,
                                  notes_out, overrun, self.clock.tempo_bpm, settings.mode,
                                  settings.budget_bits))

    def _bar_failed(self, bar: int, err: Exception) -> None:
        self.counters.bar_errors += 1
        settings = self.state.improviser
        log.error("bar %d failed (mode %s, bits %s): %s: %s", bar, settings.mode,
                  settings.budget_bits, type(err).__name__, err, exc_info=err)
        self.end_notes(f"error in bar {bar}")
        self._feedback("/qbdi/error", [f"bar {bar}: {type(err).__name__}: {err}"])

    # -- output ---------------------------------------------------------------------------
    def _send(self, message: mido.Message, step: float | None) -> None:
        """Send one message the scheduler releases; ``step`` is the step it was scheduled
        for (None: now), which places it in the take."""
        self.ports.send(message)
        self.echo.sent(self.clock.now_s(), message)
        if self.take is not None:
            self.take.note("qbdi", self.clock.now_steps() if step is None else step, message)

    def end_notes(self, reason: str, cc_when_silent: bool = True) -> None:
        """End every sounding note (note-offs, then CC 123) and drop what is scheduled."""
        if self.scheduler.sounding:
            log.info("ending %d sounding notes: %s", len(self.scheduler.sounding), reason)
        errors = self.scheduler.end_all(cc_when_silent)
        lost = next((err for err in errors if isinstance(err, PortLost)), None)
        if lost is not None and self.fatal is None:
            self.fatal = lost

    def _port_lost(self, err: PortLost) -> None:
        log.error("MIDI port lost: %s; ending notes and stopping", err)
        self.fatal = err
        self.end_notes("port lost")
        self._feedback("/qbdi/error", [f"port lost: {err}"])

    def _port_event(self, direction: str, name: str, kind: str) -> None:
        """A named port closed (end what sounds, release what the player held) or is back
        (CC 123 first, so the DAW starts from silence); report both, keep serving."""
        if kind == "lost":
            log.warning("MIDI %s port %r lost; serving on, reconnecting when it returns",
                        direction, name)
            if direction == "out":
                self.end_notes(f"output port {name!r} lost")
            else:
                self._release_held()
            self._feedback("/qbdi/error", [f"port lost: {direction} {name}; waiting for it"])
        elif direction == "out":
            self.end_notes(f"output port {name!r} back")
        self._feedback("/qbdi/port", [direction, name, kind])

    def _release_held(self) -> None:
        """Release now what the player holds: its note-offs will not reach us (the input
        port went, or their channel is no longer listened to)."""
        position = self.clock.now_steps()
        for pitch in self.collector.held_pitches:
            self.collector.note_off(position, pitch)

    def _heartbeat(self) -> None:
        now_s = self.clock.now_s()
        if now_s - self._heartbeat_s >= HEARTBEAT_S:
            self._heartbeat_s = now_s
            self._feedback("/qbdi/heartbeat", [round(now_s - self._started_s, 3),
                                               self._next_bar])

    def _feedback(self, address: str, args: list[Any], to: Address | None = None) -> None:
        if self.feedback is not None:
            self.feedback.send(address, args, to)

    # -- OSC (loop thread) ----------------------------------------------------------------
    def _take_osc(self, address: str, args: list[Any], sender: Address | None) -> None:
        rows = osc.rows_for(self._dispatcher, address)
        if not rows:
            self._refuse(sender, f"{address[:64]}: unknown address")
            return
        for row in rows:
            self._reply_to = sender
            try:
                row.handler(self, args)
            except ValidationError as err:
                self._refuse(sender, f"{row.address}: {describe_error(err)}")
            except (ValueError, QbdiError) as err:
                self._refuse(sender, f"{row.address}: {err}")
            except Exception as err:  # a bug, not the sender's fault: keep serving
                log.exception("OSC %s %r failed", row.address, args[:8])
                self._refuse(sender, f"{row.address}: internal error: {type(err).__name__}")
            else:
                if row.report is not None:
                    self._feedback(row.address, row.report(self.state), sender)
            finally:
                self._reply_to = None

    def _refuse(self, sender: Address | None, reason: str) -> None:
        # Bounded: a reply must never echo a 64 kB datagram back (nor overflow UDP).
        reason = reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "..."
        self.counters.osc_errors += 1
        log.warning("OSC refused: %s", reason)
        self._feedback("/qbdi/error", [reason], sender)

    # -- Controls, for the OSC handlers ---------------------------------------------------
    def change(self, **updates: Any) -> None:
        """Apply a validated change; raises ``ValueError`` and keeps the state on refusal."""
        self._apply(changed(self.state, **updates))

    def _apply(self, new: Preset) -> None:
        old, self.state = self.state, new
        if new.improviser.mode != old.improviser.mode:
            self.end_notes(f"mode {old.improviser.mode} -> {new.improviser.mode}")
        if new.playing.input_channel != old.playing.input_channel:
            self._release_held()
        if new.playing.midi_channel != old.playing.midi_channel:
            self.end_notes("output channel changed")
            self.scheduler.channel = new.playing.midi_channel - 1
        if new.improviser != old.improviser:
            self.improviser.update(new.improviser)
        if new.live_ir != old.live_ir:
            self.live_ir.configure(new.live_ir)
        if new.tempo_bpm != old.tempo_bpm and not self.clock.follows_midi:
            self._set_clock_tempo(new.tempo_bpm)
            if self.take is not None:
                self.take.tempo(self.clock.now_steps(), new.tempo_bpm)

    def _adopt_clock_tempo(self) -> None:
        """Once a bar, take a tempo set outside (the DAW's MIDI clock, a Link peer) into the
        state, so ``/qbdi/bpm``, status and presets tell the truth, and report it. MIDI clock
        jitters: it is followed in 0.5 BPM steps, Link (exact) in 0.01 BPM steps."""
        tolerance_bpm = 0.5 if self.clock.follows_midi else 0.01
        tempo_bpm = min(max(round(self.clock.tempo_bpm, 2), MIN_TEMPO_BPM), MAX_TEMPO_BPM)
        if abs(tempo_bpm - self.state.tempo_bpm) < tolerance_bpm:
            return
        # Straight into the state, not through _apply: the clock already runs at it.
        self.state = changed(self.state, tempo_bpm=tempo_bpm)
        self._feedback("/qbdi/bpm", [tempo_bpm])
        if self.take is not None:
            self.take.tempo(self.clock.now_steps(), self.clock.tempo_bpm)

    def _set_clock_tempo(self, tempo_bpm: float) -> None:
        set_tempo = getattr(self.clock, "set_tempo", None)
        if set_tempo is not None:
            set_tempo(tempo_bpm)

    def set_tempo(self, tempo_bpm: float) -> None:
        if self.clock.follows_midi:
            raise ValueError("following MIDI clock: the tempo comes from the DAW")
        self.change(tempo_bpm=tempo_bpm)

    def load_preset(self, name: str) -> None:
        """Load a preset live; a bad one raises and the current state stays."""
        new = self._preset_loader(name)
        self.end_notes(f"preset {name}")
        self._apply(new)
        self.send_status(replies_only=True)

    def panic(self) -> None:
        self.end_notes("panic")

    def send_status(self, replies_only: bool = False) -> None:
        """Send every current value, then (unless ``replies_only``) the counters."""
        for row in osc.TABLE:
            if row.report is not None:
                self._feedback(row.address, row.report(self.state), self._reply_to)
        if replies_only:
            return
        c = self.counters
        self._feedback("/qbdi/status", [
            "bar", self._next_bar, "bars", c.bars, "overruns", c.overruns,
            "skipped_bars", c.skipped_bars, "bar_errors", c.bar_errors,
            "notes_in", c.notes_in, "other_channel", c.other_channel,
            "notes_out", self.scheduler.notes_out,
            "echoes_dropped", self.echo.dropped, "osc_errors", c.osc_errors,
            "compute_ms", round(c.last_compute_ms, 3), *self._transport_counts()],
            self._reply_to)

    def _transport_counts(self) -> list[Any]:
        counters = getattr(self.feedback, "counters", None)
        if counters is None:
            return []
        return ["osc_malformed", counters.malformed, "osc_rate_limited", counters.rate_limited,
                "osc_refused_sender", counters.refused_sender]
