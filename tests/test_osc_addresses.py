"""Every OSC address the server sends is documented in the one address table
(:mod:`qbdi.server.osc`): checked on what a server actually sends through a session that
provokes every kind of feedback, and on the source (no address literal outside the table)."""

from __future__ import annotations

import re
from pathlib import Path

import mido

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server import osc
from qbdi.server.clocks import ManualClock
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.manual import run_until
from qbdi.server.ports import MemoryPorts
from qbdi.server.session import Server
from qbdi.settings import changed

SERVER = Path(__file__).resolve().parents[1] / "server"


def documented() -> set[str]:
    return {row.address for row in osc.TABLE} | {
        address for address, _, _ in osc.FEEDBACK if "<" not in address}


def test_every_address_a_busy_session_sends_is_documented(tiny_checkpoint):
    clock = ManualClock(120.0)
    ports = MemoryPorts(now=clock.now_steps)
    feedback = MemoryFeedback()
    state = changed(load_preset("default"), tempo_bpm=120.0,
                    improviser={"mode": "echo"}, live_ir={"enabled": True})
    server = Server(ports, clock, Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint)),
                    state, feedback=feedback)
    server.start()
    for row in osc.TABLE:  # every address once, with a value it refuses or accepts
        server.post_osc(row.address, [], None)
    server.post_osc("/qbdi/status", [], None)
    server.post_osc("/qbdi/bits", [64], None)
    for bar in range(6):
        run_until(server.loop, bar * 16 + 1)
        ports.play(mido.Message("note_on", note=60 + bar % 2, velocity=90))
        run_until(server.loop, bar * 16 + 3)
        ports.play(mido.Message("note_off", note=60 + bar % 2))
    run_until(server.loop, 6 * 16 + 8)
    ports.disappear("out")
    ports.reappear("out")
    run_until(server.loop, 7 * 16)
    assert server.live_ir.wait_idle()
    server.shutdown()
    sent = {address for address, _, _ in feedback.sent}
    assert {osc.BAR, osc.ERROR, osc.STATUS, osc.HEARTBEAT, osc.PORT, osc.IR_IN,
            osc.IR_OUT} <= sent, sent
    assert sent <= documented(), sent - documented()


def test_no_address_literal_outside_the_table():
    literal = re.compile(r"""["']/qbdi/[^"']*["']""")
    for path in SERVER.rglob("*.py"):
        if path.name == "osc.py":
            continue
        found = literal.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name} sends {found}: declare it in server/osc.py"
