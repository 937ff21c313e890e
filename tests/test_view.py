"""The live terminal view (issue 14.4), through a pseudo-terminal: ``qbdi serve --backend
memory`` under a pty draws the view; keys typed into the pty change the server's state
through the same validated path as OSC (checked over real UDP with ``/qbdi/status``); log
lines appear above the view; ``--quiet``, ``--log-json`` and ``--no-view`` keep plain logs.
The drawing itself is checked exactly from snapshots, without a terminal."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from serve_rig import PtyServe, free_udp_port, wait_until_answering
from stress_rig import OscClient

from qbdi.presets import load_preset
from qbdi.server import osc
from qbdi.server.clocks import ManualClock
from qbdi.server.events import AnsweredBar, BarReport
from qbdi.server.view import BITS_LADDER, LEARN_ADDRESS, Keys, next_budget
from qbdi.server.view_feed import ViewFeed
from qbdi.server.view_render import bits_meter, piano_roll, render


@pytest.fixture
def served():
    """``qbdi serve --backend memory`` under a pty, with an OSC client of its port."""
    port = free_udp_port()
    rig = PtyServe(["--backend", "memory", "--osc-port", str(port), "--bpm", "240"])
    client = OscClient(port)
    try:
        yield rig, client
    finally:
        client.close()
        rig.close()


def _values(client: OscClient) -> dict[str, list]:
    """Every value ``/qbdi/status`` reports, by address, and the counters."""
    client.drain()
    client.send("/qbdi/status")
    values = {}
    while "/qbdi/status" not in values:
        parsed = OscMessage(client.sock.recvfrom(65_535)[0])
        values[parsed.address] = list(parsed.params)
    return values


def _counters(client: OscClient) -> dict[str, object]:
    pairs = _values(client)["/qbdi/status"]
    return dict(zip(pairs[::2], pairs[1::2], strict=True))


def _wait_value(client: OscClient, address: str, expected, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = _values(client)[address]
        if got == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"{address} is {got}, not {expected}")


def test_keys_change_the_server_through_the_control_path(served):
    rig, client = served
    rig.wait_for("keys:")
    screen = rig.wait_for("mode query")
    assert "ready" in screen and "bits   256" in screen
    wait_until_answering(client, rig.process)
    mark = len(rig.raw)
    rig.type(b"m")
    _wait_value(client, "/qbdi/mode", ["free"])
    rig.wait_for("mode free", since=mark)
    rig.type(b"+")
    _wait_value(client, "/qbdi/bits", [384])
    rig.type(b"\x1b[B\x1b[B")  # down arrow twice: 384 -> 256 -> 192
    _wait_value(client, "/qbdi/bits", [192])
    rig.type(b"p")
    deadline = time.monotonic() + 5
    while _counters(client)["panics"] != 1:
        assert time.monotonic() < deadline, "the panic key did not reach the control"
    mark = len(rig.raw)
    rig.type(b"l")
    expected = "learn bits" if LEARN_ADDRESS in osc.BY_ADDRESS else "no MIDI controls"
    rig.wait_for(expected, since=mark)


def test_log_lines_appear_above_the_view_and_the_free_mode_draws_its_answers(served):
    rig, client = served
    rig.wait_for("keys:")
    wait_until_answering(client, rig.process)
    mark = len(rig.raw)
    client.send_raw(b"not osc at all")
    rig.wait_for("malformed OSC packet", since=mark)
    client.send("/qbdi/mode", "free")
    client.send("/qbdi/threshold", 0.05)  # free play with many notes: the roll fills
    rig.wait_for("notes in 0 out", since=mark)
    # The answer's half blocks are drawn in the roll once free play sounds.
    deadline = time.monotonic() + 10
    while not any(block in rig.screen(mark) for block in "▀▄"):
        assert time.monotonic() < deadline, rig.screen(mark)[-1500:]
        rig.read(0.2)


@pytest.mark.realtime  # an exit within 1.5 s of SIGTERM
def test_sigterm_ends_the_view_and_exits_at_once(served):
    rig, client = served
    rig.wait_for("keys:")
    wait_until_answering(client, rig.process)
    sent_s = time.monotonic()
    rig.process.send_signal(signal.SIGTERM)
    rig.wait_for("stopped after")
    assert rig.process.wait(5) == 0
    assert time.monotonic() - sent_s < 1.5


@pytest.mark.parametrize("flag", ["--quiet", "--log-json", "--no-view"])
def test_plain_logs_on_a_terminal_when_asked(flag):
    port = free_udp_port()
    rig = PtyServe(["--backend", "memory", "--osc-port", str(port), flag])
    try:
        client = OscClient(port)
        wait_until_answering(client, rig.process)
        client.send_raw(b"junk")
        time.sleep(0.5)
        rig.process.send_signal(signal.SIGTERM)
        rig.process.wait(5)
        rig.read(0.3)
        screen = rig.screen()
        assert "keys:" not in screen
        assert "ready" in screen
        if flag != "--quiet":
            assert "malformed OSC packet" in screen
        if flag == "--log-json":
            assert '"level": "warning"' in screen and '"server": "qbdi"' in screen
        client.close()
    finally:
        rig.close()


# -- drawing and keys, exactly ------------------------------------------------------------

def _feed_with_a_bar() -> ViewFeed:
    state = load_preset("default")
    feed = ViewFeed(ManualClock(120.0), state)
    feed.started(0.0, 120.0)
    played = np.zeros((16, 2, 78), bool)
    played[0:4, 0, 36] = True  # C4 (pitch 60) for a beat
    answer = np.zeros((16, 2, 78), bool)
    answer[4:8, 0, 43] = True  # G4 on the second beat
    report = BarReport(3, 0.42, 120, 1, 1, False, 0, 120.0, "query", 256)
    feed.answered(AnsweredBar(report, played, answer, 64.0, state))
    return feed


def test_piano_roll_draws_the_bar_and_its_answer():
    feed = _feed_with_a_bar()
    rows = piano_roll(feed.bar.played, feed.bar.answer, rows=2)
    # Pitches 60-67 in 4 bands of 2, two rows: G4 (67) is in the top row's upper band,
    # C4 (60) in the lower row's lower band; each row is labelled with its top pitch.
    assert rows == ["  G4 ·   ·   ·   ·      ·   ▀▀▀▀·   ·   ",
                    " D#4 ▄▄▄▄·   ·   ·      ·   ·   ·   ·   "]
    assert piano_roll(None, None) == ["     ·   ·   ·   ·      ·   ·   ·   ·   "]


def test_render_shows_every_field():
    from rich.console import Console

    feed = _feed_with_a_bar()
    feed.error("bar 2: RuntimeError: injected")
    console = Console(width=120, record=True, force_terminal=False)
    console.print(render(feed, "qbdi", ["osc_malformed", 3, "log_dropped", 0], "panic"))
    text = console.export_text()
    for expected in ("120.0 BPM", "bar     0  ●○○○", "mode query", "bits   256",
                     "compute   0.42 ms", "notes in 1 out 1", "overruns 0", "osc malformed 3",
                     "last error: bar 2: RuntimeError: injected", "[panic]", "live IR off"):
        assert expected in text, (expected, text)
    assert bits_meter("full") == "█" * 24 and bits_meter(0) == "░" * 24


def test_bits_keys_climb_the_ladder_and_stop_at_its_ends():
    assert next_budget(256, 1) == 384 and next_budget(256, -1) == 192
    assert next_budget(300, 1) == 384 and next_budget(300, -1) == 256
    assert next_budget("full", 1) == "full" and next_budget("full", -1) == 2048
    assert next_budget(0, -1) == 0 and next_budget(5000, 1) == "full"
    assert BITS_LADDER[0] == 0 and BITS_LADDER[-1] == "full"


def test_keys_only_post_messages():
    feed = _feed_with_a_bar()
    posted, quits = [], []
    keys = Keys(feed, lambda address, args: posted.append((address, args)),
                lambda: quits.append(1))
    for key in ["p", "m", "up", "down", "x", "q"]:
        keys.press(key)
    # Before the loop applies a key's change, the next key steps on from what was asked.
    assert posted == [("/qbdi/panic", []), ("/qbdi/mode", ["free"]), ("/qbdi/bits", [384]),
                      ("/qbdi/bits", [256])]
    assert quits == [1]
