"""Driving a loop by hand: a test moves a :class:`~qbdi.server.clocks.ManualClock` through
every moment the loop would wake at, and asserts exact event lists without sleeping."""

from __future__ import annotations

from qbdi.server.clocks import ManualClock
from qbdi.server.loop import Loop

MAX_WAKEUPS = 100_000  # a guard against a loop that never gets past a step


def run_until(loop: Loop, step: float) -> None:
    """Move the loop's manual clock through every wake-up up to ``step``, running one turn
    of the loop at each, as :meth:`Loop.serve` would without sleeping; then to ``step``."""
    clock = loop.clock
    if not isinstance(clock, ManualClock):
        raise TypeError(f"run_until drives a ManualClock, not a {type(clock).__name__}")
    for _ in range(MAX_WAKEUPS):
        wake = loop.next_wakeup_step()
        if wake > step or loop.fatal is not None:
            break
        if wake > clock.now_steps():
            clock.set_step(wake)
        loop.step()
    if step > clock.now_steps():
        clock.set_step(step)
    loop.step()
