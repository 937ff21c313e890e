"""The TouchOSC layout ``presets/touchosc/qbdi.tosc``, generated from this module.

``python -m tools.touchosc_layout`` rewrites the file; the test suite checks that the file is
this module's output and that every OSC message a control can send is one the server accepts.

Format: TouchOSC (the 2021+ "MK2" app) reads a ``.tosc`` file as one zlib stream of XML,
``<lexml version='6'>`` holding one root ``GROUP`` node. Controls carry their OSC messages
in ``<messages><osc>``: a path made of constant partials and arguments that are constants
or the control's ``x`` value scaled to ``scaleMin..scaleMax``. The feedback labels are
filled by the root node's Lua ``onReceiveOSC``.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from qbdi.settings import MODES

LAYOUT_PATH = Path(__file__).resolve().parents[1] / "presets" / "touchosc" / "qbdi.tosc"
LEXML_VERSION = "6"
WIDTH, HEIGHT = 640, 1136  # a phone in portrait; TouchOSC scales to the screen
PRESETS = ("default", "paper-256", "free")
MAX_BITS = 1024
TEMPO_RANGE_BPM = (40.0, 240.0)  # a finger's range; the server takes 20-960
THRESHOLD_RANGE = (0.05, 0.95)
ID_NAMESPACE = uuid.UUID("6f1c1d0e-8f2b-4c4e-9a57-71b1d0c0ffee")
# The feedback each label shows: address -> label name (the Lua below uses this table).
FEEDBACK_LABELS = {
    "/qbdi/bar": "fb_bar", "/qbdi/error": "fb_error", "/qbdi/heartbeat": "fb_heartbeat",
    "/qbdi/ir/in": "fb_ir_in", "/qbdi/ir/out": "fb_ir_out", "/qbdi/motif": "fb_motif",
    "/qbdi/bits": "fb_bits", "/qbdi/mode": "fb_mode", "/qbdi/bpm": "fb_bpm",
}
Rgba = tuple[float, float, float, float]
GREY: Rgba = (0.25, 0.25, 0.28, 1.0)
BLUE: Rgba = (0.16, 0.47, 0.83, 1.0)
RED: Rgba = (0.85, 0.18, 0.18, 1.0)
WHITE: Rgba = (1.0, 1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Arg:
    """One OSC argument: a constant, or the control's ``x`` scaled to ``low..high``."""

    conversion: str  # STRING | INTEGER | FLOAT
    constant: str | None = None
    low: float = 0.0
    high: float = 1.0


@dataclass
class Control:
    kind: str  # BUTTON | FADER | LABEL | GROUP
    name: str
    frame: tuple[int, int, int, int]
    color: Rgba = GREY
    address: str | None = None
    args: tuple[Arg, ...] = ()
    trigger: str = "ANY"  # RISE: buttons fire on press
    toggle: bool = False
    text: str = ""
    script: str = ""
    children: list[Control] = field(default_factory=list)


# -- XML --------------------------------------------------------------------------------

def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _property(props: ET.Element, kind: str, key: str, value: object) -> None:
    prop = _sub(props, "property")
    prop.set("type", kind)
    _sub(prop, "key", key)
    holder = _sub(prop, "value")
    if kind == "r":
        for tag, number in zip("xywh", value, strict=True):  # type: ignore[arg-type]
            _sub(holder, tag, str(number))
    elif kind == "c":
        for tag, number in zip("rgba", value, strict=True):  # type: ignore[arg-type]
            _sub(holder, tag, f"{number:g}")
    else:
        holder.text = str(value)


def _properties(node: ET.Element, control: Control) -> None:
    props = _sub(node, "properties")
    entries: list[tuple[str, str, object]] = [
        ("b", "background", 1), ("c", "color", control.color), ("f", "cornerRadius", 4),
        ("r", "frame", control.frame), ("b", "grabFocus", int(control.kind != "LABEL")),
        ("b", "interactive", int(control.kind in ("BUTTON", "FADER"))), ("b", "locked", 0),
        ("s", "name", control.name),
        ("i", "orientation", 1 if control.kind == "FADER" else 0),  # 1: east, left to right
        ("b", "outline", 1),
        ("i", "outlineStyle", 0), ("i", "pointerPriority", 0), ("i", "shape", 1),
        ("b", "visible", 1)]
    if control.kind == "BUTTON":
        entries += [("i", "buttonType", 1 if control.toggle else 0), ("b", "press", 1),
                    ("b", "release", 1), ("b", "valuePosition", 0)]
    elif control.kind == "FADER":
        entries += [("b", "bar", 1), ("i", "barDisplay", 0), ("b", "centered", 0),
                    ("b", "cursor", 1), ("i", "cursorDisplay", 0), ("b", "grid", 0),
                    ("i", "gridSteps", 10), ("i", "response", 0),
                    ("i", "responseFactor", 100)]
    elif control.kind == "LABEL":
        entries += [("i", "font", 0), ("i", "textAlignH", 2), ("i", "textAlignV", 2),
                    ("b", "textClip", 1), ("c", "textColor", WHITE), ("i", "textLength", 0),
                    ("i", "textSize", 20)]
    if control.script:
        entries.append(("s", "script", control.script))
    for kind, key, value in sorted(entries, key=lambda entry: entry[1]):
        _property(props, kind, key, value)


def _value(values: ET.Element, key: str, default: str) -> None:
    value = _sub(values, "value")
    _sub(value, "key", key)
    _sub(value, "locked", "0")
    _sub(value, "lockedDefaultCurrent", "0")
    _sub(value, "default", default)
    _sub(value, "defaultPull", "0")


def _partial(parent: ET.Element, kind: str, conversion: str, value: str,
             low: float = 0.0, high: float = 1.0) -> None:
    partial = _sub(parent, "partial")
    _sub(partial, "type", kind)
    _sub(partial, "conversion", conversion)
    _sub(partial, "value", value)
    _sub(partial, "scaleMin", f"{low:g}")
    _sub(partial, "scaleMax", f"{high:g}")


def _osc(node: ET.Element, control: Control) -> None:
    osc = _sub(_sub(node, "messages"), "osc")
    for tag, text in (("enabled", "1"), ("send", "1"), ("receive", "0"), ("feedback", "0"),
                      ("noDuplicates", "0"), ("connections", "1111111111")):
        _sub(osc, tag, text)
    trigger = _sub(_sub(osc, "triggers"), "trigger")
    _sub(trigger, "var", "x")
    _sub(trigger, "condition", control.trigger)
    _partial(_sub(osc, "path"), "CONSTANT", "STRING", control.address or "")
    arguments = _sub(osc, "arguments")
    for arg in control.args:
        if arg.constant is not None:
            _partial(arguments, "CONSTANT", arg.conversion, arg.constant)
        else:
            _partial(arguments, "VALUE", arg.conversion, "x", arg.low, arg.high)


def _node(parent: ET.Element, control: Control) -> ET.Element:
    node = _sub(parent, "node")
    node.set("ID", str(uuid.uuid5(ID_NAMESPACE, control.name)))
    node.set("type", control.kind)
    if control.kind == "GROUP" and parent.tag == "lexml":
        _sub(node, "includes")
    _properties(node, control)
    values = _sub(node, "values")
    _value(values, "touch", "false")
    if control.kind in ("BUTTON", "FADER"):
        _value(values, "x", "0")
    elif control.kind == "LABEL":
        _value(values, "text", control.text)
    if control.address is not None:
        _osc(node, control)
    if control.children:
        children = _sub(node, "children")
        for child in control.children:
            _node(children, child)
    return node


# -- the layout -------------------------------------------------------------------------

FEEDBACK_SCRIPT = """-- qbdi feedback: each address the server sends fills one label.
local LABELS = {
%s
}

local function joined(arguments)
  local parts = {}
  for i = 1, #arguments do
    local value = arguments[i].value
    if type(value) == "number" and value ~= math.floor(value) then
      value = string.format("%%.2f", value)
    end
    parts[#parts + 1] = tostring(value)
  end
  return table.concat(parts, " ")
end

function onReceiveOSC(message, connections)
  local name = LABELS[message[1]]
  if name == nil then
    return false
  end
  local label = self:findByName(name, true)
  if label ~= nil then
    label.values.text = joined(message[2])
  end
  return true
end
"""


def _label(name: str, frame: tuple[int, int, int, int], text: str,
           color: Rgba = (0.0, 0.0, 0.0, 0.0)) -> Control:
    return Control("LABEL", name, frame, color=color, text=text)


def _button(name: str, frame: tuple[int, int, int, int], address: str, *args: Arg,
            color: Rgba = GREY) -> Control:
    return Control("BUTTON", name, frame, color=color, address=address, args=args,
                   trigger="RISE")


def _sends() -> list[Control]:
    controls = [
        _label("title", (20, 10, 600, 40), "qbdi"),
        _label("bits_label", (20, 60, 440, 30), f"bits per bar 0-{MAX_BITS}"),
        Control("FADER", "bits", (20, 95, 440, 70), color=BLUE, address="/qbdi/bits",
                args=(Arg("INTEGER", low=0, high=MAX_BITS),)),
        _button("bits_full", (480, 95, 140, 70), "/qbdi/bits", Arg("STRING", "full"),
                color=BLUE),
        _label("tempo_label", (20, 180, 290, 30),
               f"tempo {TEMPO_RANGE_BPM[0]:g}-{TEMPO_RANGE_BPM[1]:g} BPM"),
        Control("FADER", "tempo", (20, 215, 290, 60), address="/qbdi/bpm",
                args=(Arg("FLOAT", low=TEMPO_RANGE_BPM[0], high=TEMPO_RANGE_BPM[1]),)),
        _label("threshold_label", (330, 180, 290, 30), "threshold"),
        Control("FADER", "threshold", (330, 215, 290, 60), address="/qbdi/threshold",
                args=(Arg("FLOAT", low=THRESHOLD_RANGE[0], high=THRESHOLD_RANGE[1]),)),
    ]
    width = 600 // len(MODES)
    controls += [_button(f"mode_{mode}", (20 + i * width, 295, width - 10, 60),
                         "/qbdi/mode", Arg("STRING", mode)) for i, mode in enumerate(MODES)]
    width = 600 // len(PRESETS)
    controls += [_button(f"preset_{name}", (20 + i * width, 370, width - 10, 60),
                         "/qbdi/preset", Arg("STRING", name))
                 for i, name in enumerate(PRESETS)]
    controls += [
        Control("BUTTON", "sampling", (20, 445, 140, 60), address="/qbdi/sampling",
                args=(Arg("INTEGER", low=0, high=1),), toggle=True),
        Control("BUTTON", "live_ir", (170, 445, 140, 60), address="/qbdi/ir/enable",
                args=(Arg("INTEGER", low=0, high=1),), toggle=True),
        _button("status", (320, 445, 140, 60), "/qbdi/status"),
        _button("panic", (470, 445, 150, 60), "/qbdi/panic", color=RED),
        _label("sampling_label", (20, 505, 140, 25), "sampling"),
        _label("live_ir_label", (170, 505, 140, 25), "live IR"),
        _label("status_label", (320, 505, 140, 25), "status"),
        _label("panic_label", (470, 505, 150, 25), "PANIC"),
    ]
    return controls


def _feedback() -> list[Control]:
    captions = {"fb_bar": "bar ms dims in out", "fb_error": "error", "fb_heartbeat": "uptime bar",
                "fb_ir_in": "IR in", "fb_ir_out": "IR out", "fb_motif": "motif",
                "fb_bits": "bits", "fb_mode": "mode", "fb_bpm": "BPM"}
    rows = []
    for i, name in enumerate(FEEDBACK_LABELS.values()):
        y = 550 + i * 62
        rows.append(_label(f"{name}_caption", (20, y, 170, 54), captions[name]))
        rows.append(_label(name, (200, y, 420, 54), "-", color=(0.1, 0.1, 0.12, 1.0)))
    return rows


def build() -> ET.Element:
    """The layout's ``<lexml>`` element."""
    table = "\n".join(f'  ["{address}"] = "{name}",'
                      for address, name in FEEDBACK_LABELS.items())
    root = Control("GROUP", "qbdi", (0, 0, WIDTH, HEIGHT), color=(0.0, 0.0, 0.0, 1.0),
                   script=FEEDBACK_SCRIPT % table, children=_sends() + _feedback())
    lexml = ET.Element("lexml")
    lexml.set("version", LEXML_VERSION)
    _node(lexml, root)
    return lexml


def render() -> bytes:
    """The ``.tosc`` bytes: the XML, zlib level 9 (what TouchOSC writes)."""
    xml = "<?xml version='1.0' encoding='UTF-8'?>\n" + ET.tostring(build(), encoding="unicode")
    return zlib.compress(xml.encode("utf-8"), 9)


def main() -> None:
    LAYOUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    LAYOUT_PATH.write_bytes(render())
    print(f"wrote {LAYOUT_PATH}")


if __name__ == "__main__":
    main()
