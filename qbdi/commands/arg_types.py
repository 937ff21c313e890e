"""Argparse types for numbers in a range: the value, or a message naming what was wrong."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(text: str, convert: Callable[[str], float]) -> float:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def port(text: str) -> int:
    """A UDP or TCP port number, 0 (any free port) to 65535."""
    value = int(_number(text, int))
    if not 0 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {value}")
    return value


def rate_per_s(text: str) -> float:
    """A finite rate > 0 per second."""
    value = _number(text, float)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"a rate must be finite and > 0, got {text}")
    return value


def milliseconds(high_ms: float) -> Callable[[str], float]:
    """A time in milliseconds, 0 to ``high_ms``."""

    def parse(text: str) -> float:
        value = _number(text, float)
        if not 0 <= value <= high_ms:
            raise argparse.ArgumentTypeError(f"must be between 0 and {high_ms:g} ms, got {text}")
        return value

    return parse
