"""Checks of OSC arguments: each returns the value, or raises ``ValueError`` with the reason
the sender is told."""

from __future__ import annotations

import math
from collections.abc import Sequence
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
