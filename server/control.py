"""The server's control surface: every change a performer makes, from any controller.

OSC messages are routed through the one address table (:mod:`~qbdi.server.osc`) to the
control methods here. Each change builds a new validated state and hands it to the loop; a
refused value never replaces the last good state, and the sender is told why
(``/qbdi/error``). Everything here runs on the loop thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from qbdi.errors import QbdiError
from qbdi.presets import load_named_preset
from qbdi.server import osc, osc_routing
from qbdi.server.loop import Loop
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
                 status_counts: Callable[[], list[Any]] = list) -> None:
        self.loop = loop
        self.feedback = feedback
        self._preset_loader = preset_loader
        self._status_counts = status_counts  # extra status pairs, e.g. the OSC transport's
        self._dispatcher = osc_routing.build_dispatcher()
        self._reply_to: Address | None = None  # the sender of the message in hand
        self.osc_errors = 0

    @property
    def state(self) -> Preset:
        return self.loop.state

    # -- OSC ------------------------------------------------------------------------------
    def handle_osc(self, address: str, args: list[Any], sender: Address | None) -> None:
        """Run the handlers an address (or pattern) names; refuse what they refuse."""
        rows = osc_routing.rows_for(self._dispatcher, address)
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
                    self.feedback.send(row.address, row.report(self.state), sender)
            finally:
                self._reply_to = None

    def _refuse(self, sender: Address | None, reason: str) -> None:
        # Bounded: a reply must never echo a 64 kB datagram back (nor overflow UDP).
        reason = reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "..."
        self.osc_errors += 1
        log.warning("OSC refused: %s", reason)
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
        names no model keeps the one in use."""
        new = self._preset_loader(name)
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
        self.loop.end_notes("panic")

    def send_values(self) -> None:
        """Every current value, each at its own address."""
        for row in osc.TABLE:
            if row.report is not None:
                self.feedback.send(row.address, row.report(self.state), self._reply_to)

    def send_status(self) -> None:
        """Every current value, then the counters as name, value pairs."""
        self.send_values()
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
                "osc_errors", self.osc_errors, "compute_ms", round(c.last_compute_ms, 3),
                *self._status_counts()]
