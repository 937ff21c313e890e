"""What a knob's value (0-127) means for each setting it can be bound to.

Each function maps a controller value to the argument the setting's OSC handler takes, so a
knob's change is then validated and applied exactly like an OSC message.

* bits: :func:`bits_for_cc`, a scale musicians can turn: 0 at the bottom, "full" (the
  channel bypassed) at the top, and between them 8 to 1024 bits in equal ratios (about 18
  values per doubling), since the difference between 8 and 16 bits is heard as much as
  the difference between 512 and 1024;
* threshold: 0.05 at 0 to 0.95 at 127, in equal steps, to 3 decimals;
* mode: four equal zones, 0-31 query, 32-63 free, 64-95 echo, 96-127 mute;
* sampling (on) and silence (repeat): 64 and above, as MIDI switches (the sustain pedal) do;
* panic: a press, the value rising from below 64 to 64 or above (see :class:`Presses`).
"""

from __future__ import annotations

from typing import Final

from qbdi.settings import FULL_RATE, MODES, SILENCE_POLICIES

MAX_VALUE: Final = 127
SWITCH_ON: Final = 64  # MIDI's switch convention: 0-63 off, 64-127 on
LOWEST_BITS: Final = 8  # the budget at value 1
HIGHEST_BITS: Final = 1024  # the budget at value 126, one below "full"
MIN_THRESHOLD: Final = 0.05
MAX_THRESHOLD: Final = 0.95


def _check(value: int) -> int:
    if not 0 <= value <= MAX_VALUE:
        raise ValueError(f"a controller value is 0-127, got {value}")
    return value


def bits_for_cc(value: int) -> int | str:
    """The bit budget for a controller value: 0 -> 0 bits, 127 -> "full", and value v in
    1..126 -> round(8 * 128 ** ((v - 1) / 125)), which runs from 8 (v = 1) to 1024
    (v = 126) in equal ratios. The whole table is in docs/controllers.md."""
    if _check(value) == 0:
        return 0
    if value == MAX_VALUE:
        return FULL_RATE
    ratio = HIGHEST_BITS / LOWEST_BITS
    return round(LOWEST_BITS * ratio ** ((value - 1) / (MAX_VALUE - 2)))


def threshold_for_cc(value: int) -> float:
    """0.05 at 0 up to 0.95 at 127 (always strictly inside (0, 1)), to 3 decimals."""
    span = MAX_THRESHOLD - MIN_THRESHOLD
    return round(MIN_THRESHOLD + span * _check(value) / MAX_VALUE, 3)


def mode_for_cc(value: int) -> str:
    """Four equal zones: 0-31 query, 32-63 free, 64-95 echo, 96-127 mute."""
    return MODES[_check(value) * len(MODES) // (MAX_VALUE + 1)]


def switch_for_cc(value: int) -> bool:
    """On at 64 and above."""
    return _check(value) >= SWITCH_ON


def silence_for_cc(value: int) -> str:
    """silent below 64, repeat at 64 and above."""
    return SILENCE_POLICIES[int(switch_for_cc(value))]


def bits_table() -> list[tuple[int, int | str]]:
    """Every controller value with its budget, for the documentation."""
    return [(value, bits_for_cc(value)) for value in range(MAX_VALUE + 1)]


class Presses:
    """Edge detection for buttons bound to an action (panic): a press is a value rising
    from below 64 to 64 or more. A button sending 127 then 0 presses once; a knob swept
    up presses once, not once per message."""

    def __init__(self) -> None:
        self._down: set[tuple[int, int]] = set()  # (channel, number) held at 64 or more

    def pressed(self, channel: int, number: int, value: int) -> bool:
        key = (channel, number)
        if not switch_for_cc(value):
            self._down.discard(key)
            return False
        if key in self._down:
            return False
        self._down.add(key)
        return True
