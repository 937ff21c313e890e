"""Malformed MIDI is counted and logged in bounded amounts (issue 12.2): raw packets sent
through a real JACK port into :class:`~qbdi.server.midi_input.MidiInput`; valid ones become
messages exactly as mido makes them."""

from __future__ import annotations

import logging
import time

import mido
import pytest
from stress_rig import jack_server

from qbdi.server.backends import rtmidi_api
from qbdi.server.bounded_log import BoundedLog
from qbdi.server.midi_input import MALFORMED, MidiInput
from qbdi.server.ports import close_in_turn

pytestmark = pytest.mark.jack

VALID = [[0x90, 60, 100], [0x80, 60, 0], [0xB0, 64, 127], [0xF8]]
# A data byte above 127, an undefined status, a truncated note, a status inside a sysex.
# (Not an unterminated sysex: rtmidi's JACK input then holds everything that follows as
# part of it until an F7 arrives, with mido's input as with ours.)
MALFORMED_PACKETS = [[0x90, 0xC8, 64], [0xF4], [0x90, 60], [0xF0, 1, 0x90, 0xF7]]


def _send_round(raw, rtmidi) -> int:
    """Send every malformed packet, then the valid ones; return how many bad ones left."""
    sent_bad = 0
    for packet in MALFORMED_PACKETS:
        try:
            raw.send_message(packet)
            sent_bad += 1
        except (ValueError, rtmidi.RtMidiError):
            pass  # python-rtmidi refuses some shapes before they reach JACK
    for packet in VALID:
        raw.send_message(packet)
    return sent_bad


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def test_malformed_packets_are_counted_and_valid_ones_delivered(caplog):
    """Round by round: what reaches our port is sorted exactly (every bad packet counted,
    every valid one delivered in order). The dummy driver may lose a period of events in
    JACK itself, so a round that arrives incomplete is counted apart as the transport's
    loss (what of it arrived still sorted exactly), and only a few of those are allowed."""
    import rtmidi

    got: list[mido.Message] = []
    rounds, lost_rounds, sent_bad_total = 25, 0, 0
    with jack_server():
        bounded = BoundedLog(logging.getLogger("qbdi.test.midi"), "MIDI input", first=2)
        port = MidiInput(rtmidi_api("jack"), "qbdi-test-in", "fuzz in", True, got.append,
                         bounded)
        raw = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="fuzzer")
        try:
            raw.open_port(next(i for i, name in enumerate(raw.get_ports())
                               if name.endswith(":fuzz in")))
            time.sleep(0.3)  # the connection is made by the JACK server, not at once
            with caplog.at_level(logging.WARNING):
                for _ in range(rounds):
                    got_before, bad_before = len(got), port.malformed
                    sent_bad = _send_round(raw, rtmidi)
                    want = (got_before + len(VALID), bad_before + sent_bad)
                    arrived = _wait_for(lambda w=want: (len(got), port.malformed) == w, 2.0)
                    if not arrived:
                        # JACK lost part of it (a round may span two periods): what did
                        # arrive is sorted as ever, valid ones in order, none invented.
                        arrived_valid = [m.bytes() for m in got[got_before:]]
                        assert arrived_valid in (VALID[:k] for k in range(len(VALID)))
                        assert port.malformed - bad_before <= sent_bad
                        sent_bad_total += port.malformed - bad_before
                        lost_rounds += 1
                        continue
                    assert [m.bytes() for m in got[got_before:]] == VALID
                    sent_bad_total += sent_bad
        finally:
            close_in_turn(raw.delete, port.close)
    assert sent_bad_total > 0
    assert lost_rounds <= 2, f"JACK lost {lost_rounds} of {rounds} rounds"
    assert len(got) >= len(VALID) * (rounds - lost_rounds)
    assert port.malformed == sent_bad_total
    logged = [r for r in caplog.records if "malformed MIDI packet" in r.getMessage()]
    assert len(logged) == 2, "the first two, then only counted"
    assert bounded.count(MALFORMED) == sent_bad_total


# A client of the test's JACK server sending a note every millisecond until killed.
_SENDER = """
import rtmidi, time
out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="sender")
out.open_virtual_port("notes")
print("ready", flush=True)
while True:
    out.send_message([0x90, 60, 100])
    time.sleep(0.001)
"""

# Opens our input on the sender's port and closes it while another thread of ours holds the
# GIL and notes arrive (the switch interval keeps the GIL with the busy thread): prints how
# many notes each port received.
_CLOSER = """
import logging, sys, time
from qbdi.server.backends import rtmidi_api
from qbdi.server.bounded_log import BoundedLog
from qbdi.server.midi_input import MidiInput
sys.setswitchinterval(1.0)
for _ in range(3):
    got = []
    port = MidiInput(rtmidi_api("jack"), "qbdi-test-in", "sender:notes", False, got.append,
                     BoundedLog(logging.getLogger("qbdi.test"), "MIDI input"))
    deadline = time.monotonic() + 5.0  # the connection is made by the JACK server
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    busy_until = time.perf_counter() + 0.03
    while time.perf_counter() < busy_until:
        pass
    port.close()
    print(len(got), flush=True)
"""


def test_input_closes_while_notes_arrive_and_the_gil_is_held():
    """Closing an input while notes arrive never hangs: with python-rtmidi's callback,
    JACK's process thread waited for the GIL inside it, and the port's close (a JACK call
    made holding the GIL) hung the process, every time in this scenario."""
    import subprocess
    import sys

    with jack_server():
        sender = subprocess.Popen([sys.executable, "-c", _SENDER], stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert sender.stdout.readline().strip() == "ready"
            closer = subprocess.run([sys.executable, "-c", _CLOSER], capture_output=True,
                                    text=True, timeout=30)
        finally:
            sender.kill()
            sender.wait()
    assert closer.returncode == 0, closer.stderr
    received = [int(line) for line in closer.stdout.split()]
    assert len(received) == 3 and all(count > 0 for count in received), closer.stdout
