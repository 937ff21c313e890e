"""Checks of OSC arguments: each returns the value, or raises ``ValueError`` with the reason
the sender is told; and :class:`Arg`, what one argument of an address may be."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def one(args: Sequence[Any]) -> Any:
    if len(args) != 1:
        raise ValueError(f"expects one argument, got {len(args)}")
    return args[0]


def none(args: Sequence[Any]) -> None:
    if args:
        raise ValueError(f"expects no argument, got {len(args)}")


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expects a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"expects a finite number, got {value}")
    return float(value)


def integer(value: Any) -> int:
    real = number(value)
    if real != int(real):
        raise ValueError(f"expects a whole number, got {value}")
    return int(real)


def switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("on", "off", "true", "false"):
        return value.lower() in ("on", "true")
    raise ValueError(f"expects 0/1, true/false or on/off, got {value!r}")


def choice(value: Any, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"expects one of {'|'.join(options)}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Arg:
    """What one argument of an address may be: its OSC type tag and the values its handler
    accepts. The OSCQuery namespace (``TYPE``, ``RANGE``) and the browser surface's controls
    are generated from these, so they describe exactly what the server takes.

    ``low``/``high`` bound numbers (``low_open``/``high_open``: the bound itself is refused);
    ``vals`` lists every accepted value; ``also`` names strings accepted besides the numbers
    (``"full"``); ``choices`` names a list known only while serving (``"presets"``).
    """

    tag: str  # "i", "f" or "s"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    vals: tuple[Any, ...] = ()
    also: tuple[str, ...] = ()
    choices: str | None = None
