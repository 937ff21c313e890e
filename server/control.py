"""The server's control surface: every change a performer makes, from any controller.

OSC messages are routed through the one address table (:mod:`~qbdi.server.osc`) to the
control methods here; MIDI knobs, program changes and pads (:mod:`~qbdi.server.midi_control`)
become the same OSC messages and take the same path. Each change builds a new validated state
and hands it to the loop; a refused value never replaces the last good state, and the sender
(or, for MIDI, the feedback target) is told why (``/qbdi/error``). Refusals are counted and
logged in bounded amounts (the first few of each kind, then a summary line every 10 s:
:class:`~qbdi.server.bounded_log.BoundedLog`), since a peer can send them as fast as the rate
limit lets it. Everything here runs on the loop thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from qbdi.errors import QbdiError
from qbdi.presets import load_named_preset
from qbdi.server import osc
from qbdi.server.bounded_log import BoundedLog
from qbdi.server.loop import Loop
from qbdi.server.midi_control import MidiControl
from qbdi.settings import Preset, changed, describe_error

log = logging.getLogger(__name__)

Address = tuple[str, int]
MAX_REASON_CHARS = 300  # the longest /qbdi/error reason sent back to an OSC peer


class Feedback(Protocol):
    """Where values, reports and errors go: the OSC transport, or a list in tests."""

    def send(self, address: str, args: Sequence[Any], to: Address | None = None) -> None: ...


class Control:
    """Validated changes of the loop's state, and replies to whoever asked."""

    def __init__(self, loop: Loop, feedback: Feedback,
                 preset_loader: Callable[[str], Preset] = load_named_preset,
                 status_counts: Callable[[], list[Any]] = list,
                 separate_controls_port: bool = False) -> None:
        self.loop = loop
        self.feedback = feedback
        self._preset_loader = preset_loader
        self._status_counts = status_counts  # extra status pairs, e.g. the OSC transport's
        self._dispatcher = osc.build_dispatcher()
        self._reply_to: Address | None = None  # the sender of the message in hand
        self.log = BoundedLog(log, "OSC control")
        self.osc_errors = 0
        self.panics = 0
        self.midi = MidiControl(self, loop.clock.now_s, separate_controls_port)
        self._learn_requester: Address | None = None

    @property
    def state(self) -> Preset:
        return self.loop.state

    # -- OSC ------------------------------------------------------------------------------
    def handle_osc(self, address: str, args: list[Any], sender: Address | None) -> None:
        """Run the handlers an address (or pattern) names; refuse what they refuse. A knob's
        value still waiting (rate-limited) is applied first, so the later message wins."""
        self.midi.flush(self.loop.clock.now_s(), force=True)
        rows = osc.rows_for(self._dispatcher, address)
        if not rows:
            self._refuse(sender, f"{address[:64]}: unknown address", "unknown addresses")
            return
        for row in rows:
            refused = self._run(row, args, sender)
            if refused is not None:
                self._refuse(sender, *refused)

    def apply_midi(self, address: str, args: list[Any], origin: str) -> bool:
        """A knob's, button's or program change's message (``origin`` names it): run the
        handler of ``address`` as for an OSC message from no sender, so the value in use
        goes to the feedback target. False when refused: the reason goes there too
        (``/qbdi/error``), and the state stays. :class:`MidiControl` counts refusals."""
        refused = self._run(osc.BY_ADDRESS[address], args, None)
        if refused is not None:
            self._refuse(None, f"MIDI {origin}: {refused[0]}",
                         refused[1] and "refused MIDI controls", osc_error=False)
        return refused is None

    def refuse_midi(self, origin: str, reason: str) -> None:
        self._refuse(None, f"MIDI {origin}: {reason}", "refused MIDI controls", osc_error=False)

    def _run(self, row: osc.OscAddress, args: list[Any],
             sender: Address | None) -> tuple[str, str | None] | None:
        """Run one row's handler and report the value in use; when refused, the reason and
        the kind it is logged as (None: logged already)."""
        self._reply_to = sender
        try:
            row.handler(self, args)
        except ValidationError as err:
            return f"{row.address}: {describe_error(err)}", "refused values"
        except (ValueError, QbdiError) as err:
            return f"{row.address}: {err}", "refused values"
        except Exception as err:  # a bug, not the sender's fault: keep serving
            self.log.event("internal errors", "%s %r failed", row.address, args[:8],
                           level=logging.ERROR, exc_info=err)
            return f"{row.address}: internal error: {type(err).__name__}", None
        else:
            if row.report is not None:
                self.feedback.send(row.address, row.report(self.state), sender)
            return None
        finally:
            self._reply_to = None

    def _refuse(self, sender: Address | None, reason: str,
                kind: str | None = "refused values", osc_error: bool = True) -> None:
        """Tell ``sender`` why; count it, and log it as ``kind`` (None: logged already)."""
        # Bounded: a reply must never echo a 64 kB datagram back (nor overflow UDP).
        reason = reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "..."
        self.osc_errors += osc_error
        if kind is not None:
            self.log.event(kind, "refused: %s", reason)
        self.feedback.send(osc.ERROR, [reason], sender)

    # -- the control methods, for the handlers ---------------------------------------------
    def change(self, **updates: Any) -> None:
        """Apply a validated change; raises ``ValueError`` and keeps the state on refusal."""
        self.loop.apply(changed(self.state, **updates))

    def set_tempo(self, tempo_bpm: float) -> None:
        if self.loop.clock.follows_midi:
            raise ValueError("following MIDI clock: the tempo comes from the DAW")
        self.change(tempo_bpm=tempo_bpm)

    def load_preset(self, name: str) -> None:
        """Load a preset live; a bad one raises and the current state stays. A preset that
        names no model keeps the one in use. The controls in use (bindings learned included)
        stay too: the performer's hands do not change with the sound, and the program list
        that chose this preset still holds."""
        new = self._preset_loader(name).model_copy(update={"controls": self.state.controls})
        if new.model is None:
            new = new.model_copy(update={"model": self.state.model})
        self._check_model(new.model)
        self.loop.end_notes(f"preset {name}")
        self.loop.apply(new)
        self.send_values()

    def set_model(self, name: str) -> None:
        """Answer with another loaded model from the next barline."""
        self._check_model(name)
        self.change(model=name)

    def _check_model(self, name: str | None) -> None:
        if name is not None and name not in self.loop.models:
            loaded = ", ".join(self.loop.models) or "none besides the one in use"
            raise ValueError(f"no model named {name!r} is loaded (loaded: {loaded})")

    def panic(self) -> None:
        self.panics += 1
        self.loop.end_notes("panic")

    def learn(self, setting: str) -> None:
        """Bind the next CC that moves to ``setting`` (see ``/qbdi/learn``), or ``cancel``.
        Loop thread only: another thread posts ``/qbdi/learn SETTING`` with
        :meth:`~qbdi.server.session.Server.post_osc` instead. Raises ``ValueError`` for a
        setting that cannot be learned."""
        self._learn_requester = self._reply_to
        self.midi.learn(setting)

    def bind_cc(self, setting: str, cc: int) -> None:
        """Bind ``cc`` to ``setting`` in the state, moving it from any other setting."""
        bound = {name: number for name, number in self.state.controls.cc.bound().items()
                 if number != cc}
        self.change(controls={"cc": {**bound, setting: cc}})

    def report_learn(self, setting: str, phase: str, cc: int | None) -> None:
        """``/qbdi/learn SETTING PHASE [CC]`` to whoever asked and the feedback target;
        once bound, the bindings in use too (``/qbdi/controls``)."""
        to = self._learn_requester
        self.feedback.send(osc.LEARN, [setting, phase] + ([cc] if cc is not None else []), to)
        if phase == "bound":
            self.feedback.send(osc.CONTROLS, osc.controls_report(self.state), to)
        self.loop.listeners.learning(setting, phase, cc)

    def send_values(self) -> None:
        """Every current value, each at its own address."""
        for row in osc.TABLE:
            if row.report is not None:
                self.feedback.send(row.address, row.report(self.state), self._reply_to)

    def send_status(self) -> None:
        """Every current value, then the counters as name, value pairs."""
        self.send_values()
        self.feedback.send(osc.CONTROLS, osc.controls_report(self.state), self._reply_to)
        self.feedback.send(osc.STATUS, self.status_pairs(), self._reply_to)

    def status_pairs(self) -> list[Any]:
        loop = self.loop
        c, heard = loop.counters, loop.player.counters
        return ["model", self.state.model or "", "bar", loop.next_bar, "bars", c.bars,
                "overruns", c.overruns,
                "skipped_bars", c.skipped_bars, "bar_errors", c.bar_errors,
                "notes_in", heard.notes_in, "other_channel", heard.other_channel,
                "notes_out", loop.scheduler.notes_out, "echoes_dropped", loop.echo.dropped,
                "echo_notes_dropped", loop.echo.dropped_note_ons,
                "notes_held", loop.player.notes_held,
                "echo_loop", int(loop.echo.looped),
                "osc_errors", self.osc_errors, "panics", self.panics,
                "midi_controls", self.midi.counters.taken,
                "midi_refused", self.midi.counters.refused,
                "compute_ms", round(c.last_compute_ms, 3),
                *self._status_counts()]
