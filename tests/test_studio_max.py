"""The Max/MSP patch: valid patcher JSON, every OSC message it can send is one the server
accepts (at the ends of every control's range), and it shows the feedback the server sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from studio_surface import feedback_addresses, refusal

from qbdi.commands.serve import add_arguments as add_serve_arguments
from qbdi.presets import list_presets, load_preset
from qbdi.server import osc
from tools import max_patch

Box = dict[str, Any]


@pytest.fixture(scope="module")
def patcher() -> dict[str, Any]:
    return json.loads(max_patch.PATCH_PATH.read_text(encoding="utf-8"))["patcher"]


@pytest.fixture(scope="module")
def boxes(patcher) -> dict[str, Box]:
    return {entry["box"]["id"]: entry["box"] for entry in patcher["boxes"]}


@pytest.fixture(scope="module")
def cords(patcher) -> list[tuple[str, int, str, int]]:
    return [(*line["patchline"]["source"], *line["patchline"]["destination"])
            for line in patcher["lines"]]


def _text(box: Box) -> str:
    return str(box.get("text", ""))


def _only(boxes: dict[str, Box], head: str) -> Box:
    found = [b for b in boxes.values() if _text(b).split()[:1] == [head]]
    assert len(found) == 1, f"expected one [{head}], found {len(found)}"
    return found[0]


def _control_values(box: Box, outlet: int) -> list[Any]:
    """The values a control can put out of ``outlet``: both ends of its range."""
    kind = box["maxclass"]
    if kind == "dial":
        assert box.get("floatoutput", 0) == 0, "the bits dial must send whole numbers"
        low = int(box.get("min", 0))
        return [low, low + int(box["size"]) - 1]
    if kind in ("flonum", "number"):
        return [box["minimum"], box["maximum"]]
    if kind == "umenu":
        assert outlet == 1, "a menu sends its item text (outlet 1), not its index"
        return [item for item in box["items"] if item != ","]
    if kind == "toggle":
        return [0, 1]
    raise AssertionError(f"{kind} feeds an OSC address: no rule for its values")


def _sent_messages(boxes, cords) -> Iterator[tuple[str, list[Any]]]:
    """Every (address, args) the patch can send to [udpsend], from its cords."""
    udpsend = _only(boxes, "udpsend")["id"]
    for source, _, destination, _ in cords:
        if destination != udpsend:
            continue
        box = boxes[source]
        words = _text(box).split()
        if box["maxclass"] == "message":
            yield words[0], [_atom(word) for word in words[1:]]
        elif words[0] == "prepend":
            feeders = [(boxes[s], o) for s, o, d, i in cords if d == source and i == 0]
            assert feeders, f"[{_text(box)}] is fed by nothing"
            for feeder, outlet in feeders:
                for value in _control_values(feeder, outlet):
                    yield words[1], [value]
        else:
            raise AssertionError(f"[{_text(box)}] sends to udpsend: not a message or prepend")


def _atom(word: str) -> Any:
    """A Max atom: int, float or symbol."""
    for kind in (int, float):
        try:
            return kind(word)
        except ValueError:
            pass
    return word


def test_the_file_is_the_generators_output():
    assert max_patch.PATCH_PATH.read_text(encoding="utf-8") == max_patch.render(), \
        "presets/max/qbdi.maxpat is stale: run python -m tools.max_patch"


def test_every_cord_joins_existing_inlets_and_outlets(boxes, cords):
    assert cords
    for source, outlet, destination, inlet in cords:
        assert outlet < boxes[source]["numoutlets"], (source, outlet)
        assert inlet < boxes[destination]["numinlets"], (destination, inlet)
        assert len(boxes[source]["outlettype"]) == boxes[source]["numoutlets"]


def test_it_sends_to_the_servers_default_osc_port(boxes):
    import argparse

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    default_port = parser.parse_args([]).osc_port
    assert _text(_only(boxes, "udpsend")).split()[1:] == ["127.0.0.1", str(default_port)]
    assert _text(_only(boxes, "udpreceive")).split()[1:] == [str(max_patch.FEEDBACK_PORT)]


def test_every_message_it_sends_is_accepted_by_the_server(boxes, cords):
    messages = list(_sent_messages(boxes, cords))
    addresses = {address for address, _ in messages}
    assert addresses == {"/qbdi/bits", "/qbdi/mode", "/qbdi/preset", "/qbdi/bpm",
                         "/qbdi/threshold", "/qbdi/sampling", "/qbdi/ir/enable",
                         "/qbdi/panic", "/qbdi/status", "/qbdi/echo/guard"}
    assert addresses <= set(osc.BY_ADDRESS)
    assert ("/qbdi/bits", [0]) in messages and ("/qbdi/bits", ["full"]) in messages
    assert ("/qbdi/bits", [max_patch.MAX_BITS]) in messages
    for address, args in messages:
        assert refusal(address, args) is None, (address, args, refusal(address, args))


def test_the_check_refuses_what_the_server_refuses():
    assert "threshold" in (refusal("/qbdi/threshold", [1.0]) or "")
    assert "unknown address" in (refusal("/qbdi/volume", [1]) or "")
    assert refusal("/qbdi/mode", ["loud"]) is not None


def test_the_preset_menu_lists_shipped_presets(boxes):
    menus = [b for b in boxes.values() if b["maxclass"] == "umenu"]
    items = [[i for i in menu["items"] if i != ","] for menu in menus]
    assert list(max_patch.MODES) in items and list(max_patch.PRESETS) in items
    assert list(max_patch.ECHO_GUARDS) in items
    for name in max_patch.PRESETS:
        assert name in list_presets()
        load_preset(name)


def test_it_shows_the_feedback_the_server_sends(boxes, cords):
    route = _only(boxes, "route")
    routed = _text(route).split()[1:]
    assert set(routed) <= feedback_addresses(), set(routed) - feedback_addresses()
    for wanted in ("/qbdi/bar", "/qbdi/error", "/qbdi/heartbeat", "/qbdi/ir/in",
                   "/qbdi/ir/out", "/qbdi/motif", "/qbdi/echo/loop"):
        assert wanted in routed
        outlet = routed.index(wanted)
        assert any(s == route["id"] and o == outlet for s, o, _, _ in cords), \
            f"{wanted} is routed to nothing"
    bar_unpack = [b for b in boxes.values() if _text(b).startswith("unpack")]
    assert len(bar_unpack) == 1 and len(_text(bar_unpack[0]).split()) - 1 == len(
        ["bar", "compute_ms", "dims_with_bits", "notes_in", "notes_out"])
