"""The Pure Data patch: the generator's output, cords that join existing inlets and outlets,
the same controls and feedback as the Max patch, every OSC message it can send accepted by
the server, and, headless (``pd -nogui``), the patch driving a real ``qbdi serve``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
from jack_session import Output, free_udp_port
from stress_rig import OscClient
from studio_surface import feedback_addresses, refusal

from qbdi.commands.serve import add_arguments as add_serve_arguments
from qbdi.server import osc
from tools import max_patch, pd_patch


@dataclass(frozen=True)
class Box:
    kind: str  # obj, msg, text, floatatom
    words: tuple[str, ...]  # after the position; an obj's first word is its class

    @property
    def head(self) -> str:
        return self.words[0] if self.words else ""


def _parse(text: str) -> tuple[list[Box], list[tuple[int, int, int, int]]]:
    boxes, cords = [], []
    for statement in re.split(r"(?<!\\);\n", text.strip().rstrip(";")):
        words = statement.split()
        if words[:2] == ["#X", "connect"]:
            cords.append(tuple(int(w) for w in words[2:6]))
        elif words[0] == "#X":
            boxes.append(Box(words[1], tuple(words[4:])))
    return boxes, cords


@pytest.fixture(scope="module")
def patch() -> tuple[list[Box], list[tuple[int, int, int, int]]]:
    return _parse(pd_patch.PATCH_PATH.read_text(encoding="utf-8"))


def _io(box: Box) -> tuple[int, int]:
    if box.kind in ("msg", "floatatom"):
        return 1, 1
    if box.kind == "text":
        return 0, 0
    if box.head == "tgl":
        return 1, 1
    if box.head == "route":
        return 2, len(box.words)
    return pd_patch.OBJECT_IO[box.head]


def _feeders(cords, boxes, index: int) -> list[Box]:
    return [boxes[s] for s, _, d, i in cords if d == index and i == 0]


def _values(box: Box) -> list[list]:
    """Every argument list a box feeding an [oscformat] can put out: both ends of a number
    box's range, a message box's words, a toggle's 0 and 1."""
    if box.kind == "floatatom":
        return [[float(box.words[1])], [float(box.words[2])]]
    if box.kind == "msg":
        words = [w for w in box.words if w != "list"]
        return [[] if words == ["bang"] else [_atom(w) for w in words]]
    if box.head == "tgl":
        return [[0.0], [1.0]]
    if box.head == "list":  # a receiver's names: the same as its message boxes'
        return []
    raise AssertionError(f"{box} feeds an OSC address: no rule for its values")


def _atom(word: str):
    try:
        return float(word)  # Pd numbers are floats
    except ValueError:
        return word


def _sent(boxes, cords) -> list[tuple[str, list]]:
    netsend = next(i for i, b in enumerate(boxes) if b.head == "netsend")
    messages = []
    for source, _, destination, _ in cords:
        box = boxes[source]
        if destination != netsend or box.head != "oscformat":
            continue
        address = "/" + "/".join(box.words[1:])
        for feeder in _feeders(cords, boxes, source):
            messages += [(address, args) for args in _values(feeder)]
    return messages


def test_the_file_is_the_generators_output():
    assert pd_patch.PATCH_PATH.read_text(encoding="utf-8") == pd_patch.render(), \
        "presets/pd/qbdi.pd is stale: run python -m tools.pd_patch"


def test_every_cord_joins_existing_inlets_and_outlets(patch):
    boxes, cords = patch
    assert cords
    for source, outlet, destination, inlet in cords:
        assert outlet < _io(boxes[source])[1], (boxes[source], outlet)
        assert inlet < _io(boxes[destination])[0], (boxes[destination], inlet)


def test_it_has_the_max_patchs_controls_and_every_message_is_accepted(patch):
    messages = _sent(*patch)
    addresses = {address for address, _ in messages}
    assert addresses == {"/qbdi/bits", "/qbdi/mode", "/qbdi/preset", "/qbdi/bpm",
                         "/qbdi/threshold", "/qbdi/sampling", "/qbdi/ir/enable",
                         "/qbdi/panic", "/qbdi/status", "/qbdi/echo/guard"}
    assert addresses <= set(osc.BY_ADDRESS)
    for wanted in ([0.0], ["full"], [float(max_patch.MAX_BITS)]):
        assert ("/qbdi/bits", wanted) in messages
    for address, args in messages:
        assert refusal(address, args) is None, (address, args, refusal(address, args))


def test_it_talks_to_the_servers_default_ports(patch):
    import argparse

    boxes, _ = patch
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    default_port = parser.parse_args([]).osc_port
    connects = [b for b in boxes if b.kind == "msg" and b.head == "connect"]
    assert [b.words for b in connects] == [("connect", "127.0.0.1", str(default_port))]
    receive = next(b for b in boxes if b.head == "netreceive")
    assert receive.words == ("netreceive", "-u", "-b", str(max_patch.FEEDBACK_PORT))


def test_it_shows_the_feedback_the_max_patch_shows(patch):
    boxes, cords = patch
    routed = set()
    top = next(i for i, b in enumerate(boxes) if b.words[:2] == ("route", "qbdi"))
    for source, outlet, destination, _ in cords:
        if source == top and outlet == 0:
            words = boxes[destination].words[1:]
            for index, word in enumerate(words):
                subs = [boxes[d] for s, o, d, _ in cords if s == destination and o == index
                        and boxes[d].head == "route"]
                routed |= ({f"/qbdi/{word}/{w}" for sub in subs for w in sub.words[1:]}
                           if subs else {f"/qbdi/{word}"})
    assert routed <= feedback_addresses(), routed - feedback_addresses()
    assert set(max_patch.SHOWN) == routed


# -- headless, against a real server ---------------------------------------------------

def _serve(feedback_port: int) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "memory", "--osc-port", "0",
         "--feedback", f"127.0.0.1:{feedback_port}", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline()
    match = re.search(r"osc [\d.]+:(\d+)", line)
    if match is None:
        process.kill()
        raise AssertionError(f"qbdi serve did not start: {line}{process.stdout.read()}")
    return process, int(match.group(1))


def _values_in_use(client: OscClient) -> dict:
    """/qbdi/status's replies: every value at its own address, then the counters."""
    client.drain()
    client.send("/qbdi/status")
    values = {a: client.wait_for(a) for a in ("/qbdi/bits", "/qbdi/mode", "/qbdi/echo/guard")}
    pairs = client.wait_for("/qbdi/status")
    return {**values, "/qbdi/status": dict(zip(pairs[::2], pairs[1::2], strict=True))}


def test_pd_runs_the_patch_headless_against_a_real_server():
    if shutil.which("pd") is None:
        pytest.skip("pd is not installed (apt-get install puredata-core; scripts/setup.sh)")
    feedback_port = free_udp_port()
    server, osc_port = _serve(feedback_port)
    client = OscClient(osc_port)
    pd = subprocess.Popen(
        ["pd", "-nogui", "-nosound", "-nomidi", "-stderr",
         "-send", f"qbdi-osc-port {osc_port}", "-send", f"qbdi-feedback-port {feedback_port}",
         "-send", "qbdi-bits 64", "-send", "qbdi-mode free", "-send", "qbdi-echo-guard off",
         "-open", str(pd_patch.PATCH_PATH)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed = Output()
    printed.follow(pd.stdout)
    try:
        deadline = time.monotonic() + 15
        values = _values_in_use(client)
        while values["/qbdi/bits"] != [64] and time.monotonic() < deadline:
            time.sleep(0.2)
            values = _values_in_use(client)
        # what pd sent is in use: checked from the server's status
        assert values["/qbdi/bits"] == [64], printed.text()
        assert values["/qbdi/mode"] == ["free"] and values["/qbdi/echo/guard"] == ["off"]
        assert values["/qbdi/status"]["osc_errors"] == 0, printed.text()
        # and the patch heard the server's replies and its bar reports (Pd's console)
        while time.monotonic() < deadline and not any(
                line.startswith("qbdi: qbdi bar ") for _, line in printed.lines):
            time.sleep(0.1)
        lines = {line for _, line in printed.lines}
        assert {"qbdi: qbdi bits 64", "qbdi: qbdi mode free",
                "qbdi: qbdi echo guard off"} <= lines, printed.text()
        assert any(line.startswith("qbdi: qbdi bar ") for line in lines), printed.text()
        assert not any(line.startswith("error:") for line in lines), printed.text()
    finally:
        pd.terminate()
        pd.wait(timeout=10)
        client.close()
        server.terminate()
        server.wait(timeout=10)
