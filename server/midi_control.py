"""MIDI control of the live settings: knobs (CCs), program changes, pads (notes), and learn.

Messages are routed here before the note path (:mod:`~qbdi.server.player`). What the
preset's ``[controls]`` table binds (:class:`~qbdi.settings.ControlSettings`) becomes the OSC
message that setting takes (``/qbdi/bits 256``, ``/qbdi/preset free``) and goes through the
control's own handlers: validated the same way, refused and counted the same way, and
reported to the feedback target the same way.

Guarantees:

* A control message never becomes a note, and the echo filter never sees it. With a
  ``--controls-in`` port every message from that port is a control (or ignored), and the
  input port carries notes alone.
* No flood: each setting changes at most once per ``MIN_INTERVAL_S``; a knob's values in
  between are coalesced to the latest, which is applied within ``MIN_INTERVAL_S``, and
  before the next bar closes, so the next answer always hears the knob's last position.
  A value equal to the one in use changes nothing and sends nothing.
* Learn binds the next CC (0-119) on the controls channel; it times out after
  ``LEARN_TIMEOUT_S``. The message that binds changes nothing.

Everything here runs on the loop thread and never blocks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import mido

from qbdi.server import midi_values, osc
from qbdi.settings import LEARNABLE, MAX_CONTROL_CC, MODES, SILENCE_POLICIES, Preset

log = logging.getLogger(__name__)

MIN_INTERVAL_S: Final = 0.05  # each setting changes at most 20 times a second
LEARN_TIMEOUT_S: Final = 10.0
CANCEL: Final = "cancel"

# What a CC bound to a setting sends: the argument of that setting's OSC message.
CC_VALUES: Final[dict[str, Callable[[int], Any]]] = {
    "bits": midi_values.bits_for_cc,
    "threshold": midi_values.threshold_for_cc,
    "mode": midi_values.mode_for_cc,
    "sampling": lambda v: int(midi_values.switch_for_cc(v)),
    "silence": midi_values.silence_for_cc,
}


class Applier(Protocol):
    """The control surface MIDI controls go through (:class:`~qbdi.server.control.Control`)."""

    @property
    def state(self) -> Preset: ...

    def apply_midi(self, address: str, args: list[Any], origin: str) -> bool:
        """Run the OSC handler of ``address``; False (counted, reported) when refused."""

    def refuse_midi(self, origin: str, reason: str) -> None:
        """Report a control message that cannot be applied (to the feedback target)."""

    def bind_cc(self, setting: str, cc: int) -> None:
        """Bind ``cc`` to ``setting`` in the state (and unbind it from any other)."""

    def report_learn(self, setting: str, phase: str, cc: int | None) -> None:
        """Tell whoever asked (and the feedback target) how a learn went."""


class MidiRouting(Protocol):
    """What the loop asks of MIDI control: take a message first, apply what is due."""

    def take(self, t_s: float, message: mido.Message, from_controls_port: bool) -> bool: ...

    def flush(self, now_s: float, force: bool = False) -> None: ...


class NoMidiControl:
    """No MIDI control: the controls port's messages are dropped, the input's all played."""

    def take(self, t_s: float, message: mido.Message, from_controls_port: bool) -> bool:
        return from_controls_port

    def flush(self, now_s: float, force: bool = False) -> None:
        pass


@dataclass(slots=True)
class ControlCounters:
    taken: int = 0  # control messages taken (never played)
    applied: int = 0  # changes applied
    refused: int = 0
    coalesced: int = 0  # values replaced by a later one before they were applied


def _matches(wanted: int | str | None, message: mido.Message) -> bool:
    return wanted == "all" or (wanted is not None and message.channel == wanted - 1)


class MidiControl:
    """Routes control messages to the control path; owned by the loop thread."""

    def __init__(self, applier: Applier, now_s: Callable[[], float],
                 separate_port: bool = False) -> None:
        self.applier = applier
        self._now_s = now_s
        self.separate_port = separate_port  # controls come from --controls-in alone
        self.counters = ControlCounters()
        self._presses = midi_values.Presses()
        self._pending: dict[str, tuple[list[Any], str]] = {}  # setting -> (args, origin)
        self._applied_s: dict[str, float] = {}
        self._refused_s = -math.inf  # when a refusal was last reported
        self._learning: tuple[str, float] | None = None  # (setting, deadline_s)

    @property
    def learning(self) -> str | None:
        """The setting waiting for a CC, or None."""
        return None if self._learning is None else self._learning[0]

    # -- routing --------------------------------------------------------------------------
    def take(self, t_s: float, message: mido.Message, from_controls_port: bool) -> bool:
        """Take ``message`` as a control when it is one; True means it must not be played
        (every message of the controls port, and every control of the input port)."""
        if self.separate_port and not from_controls_port:
            return False
        controls = self.applier.state.controls
        if message.type == "control_change" and _matches(controls.channel, message):
            taken = self._cc(message, controls.cc.bound())
        elif message.type == "program_change" and _matches(controls.channel, message):
            taken = self._program(message.program, controls.programs)
        elif message.type in ("note_on", "note_off") and _matches(controls.notes_channel,
                                                                   message):
            taken = self._pad(message, controls.notes.bound())
        else:
            taken = False
        self.counters.taken += taken
        return taken or from_controls_port

    def _cc(self, message: mido.Message, bound: dict[str, int]) -> bool:
        number, value = message.control, message.value
        if self._learning is not None and number <= MAX_CONTROL_CC:
            setting, self._learning = self._learning[0], None
            self.applier.bind_cc(setting, number)
            self.applier.report_learn(setting, "bound", number)
            return True
        setting = next((name for name, cc in bound.items() if cc == number), None)
        if setting is None:
            return False
        origin = f"CC {number} (channel {message.channel + 1})"
        if setting == "panic":
            if self._presses.pressed(message.channel, number, value):
                self._queue("panic", [], origin)
        else:
            self._queue(setting, [CC_VALUES[setting](value)], origin)
        return True

    def _program(self, program: int, programs: list[str]) -> bool:
        if not programs:
            return False
        if program >= len(programs):
            self.counters.refused += 1
            now_s = self._now_s()
            if now_s - self._refused_s >= MIN_INTERVAL_S:  # a flood is counted, not echoed
                self._refused_s = now_s
                self.applier.refuse_midi(f"program {program}", f"controls.programs names "
                                         f"{len(programs)} presets (programs 0-"
                                         f"{len(programs) - 1})")
            return True
        self._queue("preset", [programs[program]], f"program {program}")
        return True

    def _pad(self, message: mido.Message, bound: dict[str, int]) -> bool:
        """Every note on the pads' channel is taken; a press of a bound pad acts."""
        setting = next((name for name, note in bound.items() if note == message.note), None)
        if setting is not None and message.type == "note_on" and message.velocity > 0:
            self._queue(setting, self._pressed_value(setting), f"note {message.note}")
        return True

    def _pressed_value(self, setting: str) -> list[Any]:
        """A pad press: the next mode, or the other sampling or silence setting."""
        if setting == "panic":
            return []
        current = self._current(setting)
        if setting == "mode":
            return [MODES[(MODES.index(current) + 1) % len(MODES)]]
        if setting == "sampling":
            return [1 - current]
        return [SILENCE_POLICIES[1 - SILENCE_POLICIES.index(current)]]

    def _current(self, setting: str) -> Any:
        """The value in use, or the one waiting to be applied."""
        if setting in self._pending:
            return self._pending[setting][0][0]
        row = osc.BY_ADDRESS[osc.CONTROL_ADDRESSES[setting]]
        assert row.report is not None
        return row.report(self.applier.state)[0]

    # -- applying, at most once per MIN_INTERVAL_S per setting ------------------------------
    def _queue(self, setting: str, args: list[Any], origin: str) -> None:
        self.counters.coalesced += setting in self._pending
        self._pending[setting] = (args, origin)

    def flush(self, now_s: float, force: bool = False) -> None:
        """Apply what is pending and may be applied now (everything when ``force``: a bar
        is about to close, or an OSC message must not be overtaken); end a learn that has
        waited too long."""
        if self._learning is not None and now_s >= self._learning[1]:
            setting, self._learning = self._learning[0], None
            self.applier.report_learn(setting, "timeout", None)
        for setting in list(self._pending):
            if force or now_s - self._applied_s.get(setting, -math.inf) >= MIN_INTERVAL_S:
                args, origin = self._pending.pop(setting)
                self._apply(setting, args, origin, now_s)

    def _apply(self, setting: str, args: list[Any], origin: str, now_s: float) -> None:
        address = osc.CONTROL_ADDRESSES[setting]
        row = osc.BY_ADDRESS[address]
        if row.report is not None and row.report(self.applier.state) == args:
            return  # the value in use: nothing to change or report
        self._applied_s[setting] = now_s
        if self.applier.apply_midi(address, args, origin):
            self.counters.applied += 1
        else:
            self.counters.refused += 1

    # -- learn ----------------------------------------------------------------------------
    def learn(self, setting: str) -> None:
        """Bind the next CC that moves to ``setting``; ``cancel`` stops waiting. A learn
        replaces one pending (which is reported cancelled). Raises ``ValueError`` for a
        setting that cannot be learned."""
        if setting != CANCEL and setting not in LEARNABLE:
            raise ValueError(f"expects one of {'|'.join((*LEARNABLE, CANCEL))}, "
                             f"got {setting!r}")
        if self._learning is not None:
            self.applier.report_learn(self._learning[0], "cancelled", None)
            self._learning = None
        if setting != CANCEL:
            self._learning = (setting, self._now_s() + LEARN_TIMEOUT_S)
            self.applier.report_learn(setting, "waiting", None)
