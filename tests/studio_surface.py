"""Shared by the Max patch and TouchOSC layout tests (not collected): does the real server
accept an OSC message, and which addresses does it send back?"""

from __future__ import annotations

from functools import cache
from typing import Any

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server import osc
from qbdi.server.clocks import ManualClock
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.ports import MemoryPorts
from qbdi.server.session import Server

SENDER = ("127.0.0.1", 9001)


@cache
def _checkpoint() -> Any:
    return load_checkpoint(None)


def refusal(address: str, args: list[Any]) -> str | None:
    """The server's ``/qbdi/error`` reason for this message, or None when it is accepted.

    A fresh server (shipped model and default preset, in-memory ports, manual clock) takes
    the message through its OSC path exactly as from the socket; an accepted change must
    also be answered with the value in use.
    """
    state = load_preset("default")
    improviser = Improviser.from_checkpoint(_checkpoint())
    feedback = MemoryFeedback()
    server = Server(MemoryPorts(), ManualClock(), improviser, state, feedback=feedback)
    try:
        server.post_osc(address, list(args), SENDER)
        server.step()
    finally:
        server.shutdown()
    errors = feedback.addressed("/qbdi/error")
    if errors:
        return str(errors[0][0])
    row = osc.BY_ADDRESS.get(address)
    if row is not None and row.report is not None and not feedback.addressed(address):
        return f"{address}: accepted but no reply with the value in use"
    return None


def feedback_addresses() -> set[str]:
    """Every address the server sends: the feedback table and the replies to settings."""
    sent = {address for address, _, _ in osc.FEEDBACK if "<" not in address}
    return sent | {row.address for row in osc.TABLE if row.report is not None}
