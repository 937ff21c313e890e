"""Routing incoming OSC addresses (and patterns such as ``/qbdi/*``) to the rows of the one
address table (:mod:`~qbdi.server.osc`), through python-osc's Dispatcher."""

from __future__ import annotations

from pythonosc.dispatcher import Dispatcher

from qbdi.server.osc import BY_ADDRESS, MAX_ADDRESS_CHARS, TABLE, OscAddress


def build_dispatcher() -> Dispatcher:
    """python-osc's Dispatcher over the table, for OSC address patterns (``/qbdi/*``).

    ``strict_timing=False``: a bundle's future timetag must never put the loop to sleep.
    """
    dispatcher = Dispatcher(strict_timing=False)
    for row in TABLE:
        dispatcher.map(row.address, row.handler)
    return dispatcher


def rows_for(dispatcher: Dispatcher, address: str) -> list[OscAddress]:
    """The table rows an incoming address (or pattern) names; empty when none."""
    if address in BY_ADDRESS:
        return [BY_ADDRESS[address]]
    if len(address) > MAX_ADDRESS_CHARS or not address.startswith("/"):
        return []
    handlers = {id(h.callback) for h in dispatcher.handlers_for_address(address)}
    return [row for row in TABLE if id(row.handler) in handlers]
