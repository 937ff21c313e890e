"""What the browser page and the server say to each other over the WebSocket (JSON text).

From a page: ``{"osc": ADDRESS, "args": [512]}``, an OSC message in all but its encoding.
:func:`parse_command` checks its shape at the edge (an address of at most 64 characters, at
most 4 arguments, each a finite number, a bool or a string of at most 64 characters); the
value itself is then checked by the address's handler on the loop thread, exactly as for
OSC, so a page can do nothing an OSC client cannot.

To a page: ``hello`` (the controls, built from the one address table, and the bits knob's
steps), ``osc`` (every message the server sends over OSC; ``reply`` is true on the page
whose command it answers), ``bar`` (the last answered bar, for the piano roll) and
``refused`` (a command refused at the edge, with the reason).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qbdi.bars import ARTICULATED, LOWEST_PITCH, SOUNDING, STEPS_PER_BAR
from qbdi.server.midi_values import MAX_VALUE as MAX_CC_VALUE
from qbdi.server.midi_values import bits_for_cc
from qbdi.server.osc import MAX_ADDRESS_CHARS, TABLE
from qbdi.server.osc_values import Arg

MAX_MESSAGE_BYTES = 4096
MAX_ARGS = 4
MAX_TEXT_CHARS = 64
MAX_INT = 2**63 - 1  # larger ints are refused here (no OSC type carries them)


class Refused(ValueError):
    """A page's message refused at the edge; the text is the reason the page is told."""


def _no_constant(name: str) -> Any:
    raise Refused(f"{name} is not a value")  # json accepts NaN and Infinity by default


def _check_arg(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        if value is None:
            raise Refused("null is not an argument")
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise Refused("integer too large")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Refused("number not finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise Refused(f"text argument longer than {MAX_TEXT_CHARS} characters")
        return value
    raise Refused(f"argument of type {type(value).__name__} (numbers, bools, text only)")


def parse_command(text: str | bytes) -> tuple[str, list[Any]]:
    """``(address, args)`` from a page's message, or :class:`Refused` with the reason."""
    if not isinstance(text, str):
        raise Refused("commands are JSON text, not binary")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as err:
        raise Refused(str(err) if isinstance(err, Refused) else "not JSON") from None
    if not isinstance(data, dict) or not set(data) <= {"osc", "args"} or "osc" not in data:
        raise Refused('expects {"osc": ADDRESS, "args": [...]}')
    address, args = data["osc"], data.get("args", [])
    if not isinstance(address, str) or not address.startswith("/"):
        raise Refused("the address must be text starting with /")
    if len(address) > MAX_ADDRESS_CHARS:
        raise Refused(f"address longer than {MAX_ADDRESS_CHARS} characters")
    if not isinstance(args, list) or len(args) > MAX_ARGS:
        raise Refused(f"args must be a list of at most {MAX_ARGS} values")
    return address, [_check_arg(value) for value in args]


STEP_BITS = 1 << np.arange(STEPS_PER_BAR)  # step k -> bit k of a row's masks


def bar_rows(bar: np.ndarray | None) -> list[list[int]]:
    """One bar for the piano roll, as ``[pitch, sounding_mask, articulated_mask]`` for each
    pitch with anything on (bit k of a mask: step k). Vectorised (tens of microseconds,
    where walking the notes in Python took milliseconds for a dense bar, holding the GIL the
    loop thread needs); the page reads the notes from the masks by the rule of
    :func:`qbdi.bars.bars_to_notes`."""
    if bar is None:
        return []
    masks = np.einsum("k,kfp->fp", STEP_BITS, np.asarray(bar, dtype=np.int64))  # (2, 78)
    active = np.flatnonzero(masks[SOUNDING] | masks[ARTICULATED])
    rows = np.stack([active + LOWEST_PITCH, masks[SOUNDING, active], masks[ARTICULATED, active]])
    return rows.T.tolist()


def bar_message(index: int, query: np.ndarray, answer: np.ndarray | None) -> dict[str, Any]:
    """Input bar ``index`` and its answer, which sounds during bar ``index + 1``."""
    return {"type": "bar", "bar": index, "input": bar_rows(query), "answer": bar_rows(answer),
            "answered": answer is not None}


def knob_bits() -> list[int | str]:
    """The bits knob's steps, bottom to top: the MIDI knob's scale (0, then 8 to 1024 in
    equal ratios, then "full"), so a page and a hardware knob turn the budget alike and the
    low budgets, where the answer changes most, get as much of the turn as the high ones."""
    steps: list[int | str] = []
    for value in range(MAX_CC_VALUE + 1):
        bits = bits_for_cc(value)
        if bits not in steps:
            steps.append(bits)
    return steps


def _arg_json(arg: Arg, choices: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    vals = list(choices.get(arg.choices, ())) if arg.choices else list(arg.vals)
    return {"tag": arg.tag, "low": arg.low, "high": arg.high, "low_open": arg.low_open,
            "high_open": arg.high_open, "vals": vals, "also": list(arg.also)}


def hello(choices: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The first message to a page: every address it can send, from the one table."""
    controls = [{"address": row.address, "arguments": row.arguments, "doc": row.doc,
                 "replies": row.report is not None,
                 "arg": None if row.value is None else _arg_json(row.value, choices)}
                for row in TABLE]
    return {"type": "hello", "controls": controls, "knob_bits": knob_bits()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=_plain, allow_nan=False)
