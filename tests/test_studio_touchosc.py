"""The TouchOSC layout: a zlib stream of TouchOSC XML; every OSC message a control can send
is one the server accepts (at both ends of every fader), and the feedback script fills
labels that exist from addresses the server sends."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zlib
from typing import Any

import pytest
from studio_surface import feedback_addresses, refusal

from qbdi.presets import list_presets
from qbdi.server import osc
from qbdi.settings import MODES
from tools import touchosc_layout

CONVERT = {"INTEGER": lambda v: round(float(v)), "FLOAT": float, "STRING": str}


@pytest.fixture(scope="module")
def lexml() -> ET.Element:
    data = touchosc_layout.LAYOUT_PATH.read_bytes()
    text = zlib.decompress(data).decode("utf-8")
    assert text.startswith("<?xml version='1.0' encoding='UTF-8'?>")
    return ET.fromstring(text.split("\n", 1)[1])


def _prop(node: ET.Element, key: str) -> str | None:
    for prop in node.find("properties") or []:
        if prop.findtext("key") == key:
            return prop.findtext("value")
    return None


def _nodes(lexml: ET.Element) -> list[ET.Element]:
    return list(lexml.iter("node"))


def _messages(node: ET.Element) -> list[tuple[str, list[Any]]]:
    """What this control can send: (address, args) for both ends of each value's range."""
    out: list[tuple[str, list[Any]]] = []
    for message in node.findall("messages/osc"):
        if message.findtext("enabled") != "1" or message.findtext("send") != "1":
            continue
        path = message.findall("path/partial")
        assert all(p.findtext("type") == "CONSTANT" for p in path), "a computed address"
        address = "".join(p.findtext("value") or "" for p in path)
        ends: list[list[Any]] = [[], []]
        for partial in message.findall("arguments/partial"):
            convert = CONVERT[partial.findtext("conversion") or ""]
            if partial.findtext("type") == "CONSTANT":
                value = convert(partial.findtext("value") or "")
                ends[0].append(value)
                ends[1].append(value)
            else:
                assert partial.findtext("type") == "VALUE"
                assert partial.findtext("value") == "x"
                ends[0].append(convert(partial.findtext("scaleMin")))
                ends[1].append(convert(partial.findtext("scaleMax")))
        out += [(address, ends[0]), (address, ends[1])]
    return out


def test_the_file_is_the_generators_output():
    assert touchosc_layout.LAYOUT_PATH.read_bytes() == touchosc_layout.render(), \
        "presets/touchosc/qbdi.tosc is stale: run python -m tools.touchosc_layout"


def test_the_document_is_one_touchosc_group(lexml):
    assert lexml.tag == "lexml" and lexml.get("version") == touchosc_layout.LEXML_VERSION
    (root,) = lexml.findall("node")
    assert root.get("type") == "GROUP" and root.find("includes") is not None
    names = [_prop(node, "name") for node in _nodes(lexml)]
    assert len(names) == len(set(names)), "names are how the script finds labels"
    for node in _nodes(lexml):
        assert node.get("type") in ("GROUP", "BUTTON", "FADER", "LABEL")
        frame = node.find("properties/property[key='frame']/value")
        x, y, w, h = (int(frame.findtext(tag)) for tag in "xywh")
        assert x >= 0 and y >= 0 and x + w <= touchosc_layout.WIDTH
        assert y + h <= touchosc_layout.HEIGHT, _prop(node, "name")


def test_every_message_a_control_sends_is_accepted_by_the_server(lexml):
    messages = [m for node in _nodes(lexml) for m in _messages(node)]
    addresses = {address for address, _ in messages}
    assert addresses == {"/qbdi/bits", "/qbdi/mode", "/qbdi/preset", "/qbdi/bpm",
                         "/qbdi/threshold", "/qbdi/sampling", "/qbdi/ir/enable",
                         "/qbdi/panic", "/qbdi/status"}
    assert addresses <= set(osc.BY_ADDRESS)
    assert ("/qbdi/bits", ["full"]) in messages
    assert ("/qbdi/bits", [touchosc_layout.MAX_BITS]) in messages
    assert {tuple(a) for ad, a in messages if ad == "/qbdi/mode"} == {
        (m,) for m in MODES}
    for address, args in set((a, tuple(v)) for a, v in messages):
        assert refusal(address, list(args)) is None, (address, args)


def test_presets_are_shipped_ones(lexml):
    sent = {a[0] for node in _nodes(lexml) for ad, a in _messages(node)
            if ad == "/qbdi/preset"}
    assert sent == set(touchosc_layout.PRESETS) and sent <= set(list_presets())


def test_the_feedback_script_fills_existing_labels_from_sent_addresses(lexml):
    (root,) = lexml.findall("node")
    script = _prop(root, "script") or ""
    assert "function onReceiveOSC(message, connections)" in script
    table = dict(re.findall(r'\["(/[^"]+)"\] = "([^"]+)"', script))
    assert set(table) <= feedback_addresses(), set(table) - feedback_addresses()
    assert {"/qbdi/bar", "/qbdi/error", "/qbdi/heartbeat", "/qbdi/ir/in", "/qbdi/ir/out",
            "/qbdi/motif"} <= set(table)
    labels = {_prop(n, "name") for n in _nodes(lexml) if n.get("type") == "LABEL"}
    assert set(table.values()) <= labels
