"""The Max/MSP control patch ``presets/max/qbdi.maxpat``, generated from this module.

``python -m tools.max_patch`` rewrites the file; the test suite checks that the file
is this module's output and that every OSC message it can send is one the server accepts.

The patch sends to ``udpsend 127.0.0.1 9000`` (``qbdi serve``'s default OSC port) and listens
on ``udpreceive 9001``: start the server with ``--feedback 127.0.0.1:9001`` to see bar
reports, errors, the heartbeat, the values in use and the live information rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbdi.settings import ECHO_GUARDS, MODES

OSC_PORT = 9000
FEEDBACK_PORT = 9001
PATCH_PATH = Path(__file__).resolve().parents[1] / "presets" / "max" / "qbdi.maxpat"
PRESETS = ("default", "paper-256", "free")
MAX_BITS = 1024  # the dial's top; "full" bypasses the channel
TEMPO_RANGE_BPM = (20.0, 960.0)
THRESHOLD_RANGE = (0.01, 0.99)
# Feedback the patch shows, each in its own display, in route's outlet order.
SHOWN = ("/qbdi/bar", "/qbdi/error", "/qbdi/heartbeat", "/qbdi/ir/in", "/qbdi/ir/out",
         "/qbdi/motif", "/qbdi/overrun", "/qbdi/bits", "/qbdi/mode", "/qbdi/bpm",
         "/qbdi/echo/loop")

# (inlets, outlets, outlet types) of the Max objects used, by the object's first word.
NEWOBJ_IO: dict[str, tuple[int, int, list[str]]] = {
    "udpsend": (1, 0, []),
    "udpreceive": (1, 1, [""]),
    "prepend": (2, 1, [""]),
    "loadbang": (1, 1, ["bang"]),
}


@dataclass
class Patch:
    """Boxes and patch cords, numbered in the order they are added."""

    boxes: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)

    def add(self, maxclass: str, rect: tuple[float, float, float, float], inlets: int,
            outlets: int, outlettype: list[str], **attributes: Any) -> str:
        box_id = f"obj-{len(self.boxes) + 1}"
        box = {"id": box_id, "maxclass": maxclass, "numinlets": inlets,
               "numoutlets": outlets, "outlettype": outlettype,
               "patching_rect": [float(v) for v in rect], **attributes}
        self.boxes.append({"box": box})
        return box_id

    def obj(self, text: str, x: float, y: float, width: float = 120.0) -> str:
        head = text.split()[0]
        if head == "route":
            n = len(text.split()) - 1
            inlets, outlets, types = 2, n + 1, [""] * (n + 1)
        elif head == "unpack":
            n = len(text.split()) - 1
            inlets, outlets, types = 1, n, ["float" if "." in a else "int"
                                             for a in text.split()[1:]]
        else:
            inlets, outlets, types = NEWOBJ_IO[head]
        return self.add("newobj", (x, y, width, 22), inlets, outlets, types, text=text)

    def message(self, text: str, x: float, y: float, width: float = 120.0) -> str:
        return self.add("message", (x, y, width, 22), 2, 1, [""], text=text)

    def comment(self, text: str, x: float, y: float, width: float = 200.0) -> str:
        return self.add("comment", (x, y, width, 20), 1, 0, [], text=text)

    def connect(self, source: str, outlet: int, destination: str, inlet: int = 0) -> None:
        self.lines.append({"patchline": {"source": [source, outlet],
                                         "destination": [destination, inlet]}})


# -- the control side: each control feeds [prepend /qbdi/...] -> [udpsend] -----------------

def _send(patch: Patch, control: str, outlet: int, address: str, udpsend: str,
          x: float, y: float) -> None:
    prepend = patch.obj(f"prepend {address}", x, y, 150)
    patch.connect(control, outlet, prepend)
    patch.connect(prepend, 0, udpsend)


def _umenu(patch: Patch, items: tuple[str, ...], x: float, y: float) -> str:
    listed: list[str] = []
    for item in items:
        listed += [item, ","] if item != items[-1] else [item]
    return patch.add("umenu", (x, y, 110, 22), 1, 3, ["int", "", ""], items=listed,
                     parameter_enable=0)


def _controls(patch: Patch, udpsend: str) -> None:
    patch.comment(f"bits per bar 0-{MAX_BITS}", 20, 60)
    dial = patch.add("dial", (20, 85, 60, 60), 1, 1, ["float"], size=float(MAX_BITS + 1),
                     min=0.0, mult=1.0, floatoutput=0, parameter_enable=0)
    _send(patch, dial, 0, "/qbdi/bits", udpsend, 20, 160)
    patch.connect(patch.message("/qbdi/bits full", 100, 100, 110), 0, udpsend)

    patch.comment("mode", 240, 60, 80)
    _send(patch, _umenu(patch, MODES, 240, 85), 1, "/qbdi/mode", udpsend, 240, 160)
    patch.comment("preset", 380, 60, 80)
    _send(patch, _umenu(patch, PRESETS, 380, 85), 1, "/qbdi/preset", udpsend, 380, 160)
    patch.comment("echo guard", 700, 60, 80)
    _send(patch, _umenu(patch, ECHO_GUARDS, 700, 85), 1, "/qbdi/echo/guard", udpsend, 700, 200)

    patch.comment("tempo (BPM)", 20, 200, 100)
    tempo = patch.add("flonum", (20, 225, 70, 22), 1, 2, ["", "bang"], format=6,
                      minimum=TEMPO_RANGE_BPM[0], maximum=TEMPO_RANGE_BPM[1],
                      parameter_enable=0)
    _send(patch, tempo, 0, "/qbdi/bpm", udpsend, 20, 260)
    patch.comment("threshold", 180, 200, 100)
    threshold = patch.add("flonum", (180, 225, 70, 22), 1, 2, ["", "bang"], format=6,
                          minimum=THRESHOLD_RANGE[0], maximum=THRESHOLD_RANGE[1],
                          parameter_enable=0)
    _send(patch, threshold, 0, "/qbdi/threshold", udpsend, 180, 260)

    for x, label, address in ((330, "sampling", "/qbdi/sampling"),
                              (450, "live IR", "/qbdi/ir/enable")):
        patch.comment(label, x, 200, 100)
        toggle = patch.add("toggle", (x, 225, 24, 24), 1, 1, ["int"], parameter_enable=0)
        _send(patch, toggle, 0, address, udpsend, x, 260)

    patch.connect(patch.message("/qbdi/panic", 580, 85, 100), 0, udpsend)
    status = patch.message("/qbdi/status", 580, 160, 100)
    patch.connect(patch.obj("loadbang", 580, 130, 70), 0, status)
    patch.connect(status, 0, udpsend)


# -- the feedback side: [udpreceive] -> [route ...] -> displays ---------------------------

def _display(patch: Patch, source: str, outlet: int, label: str, x: float, y: float,
             width: float = 260.0) -> None:
    """A message box showing the arguments it receives (``prepend set``)."""
    patch.comment(label, x, y, 140)
    prepend = patch.obj("prepend set", x + 140, y, 80)
    shown = patch.message("", x + 230, y, width)
    patch.connect(source, outlet, prepend)
    patch.connect(prepend, 0, shown)


def _bar_report(patch: Patch, route: str, x: float, y: float) -> None:
    """/qbdi/bar: bar, compute_ms, dims_with_bits, notes in, notes out in number boxes."""
    unpack = patch.obj("unpack 0 0. 0 0 0", x, y, 200)
    patch.connect(route, SHOWN.index("/qbdi/bar"), unpack)
    names = ("bar", "compute ms", "dims with bits", "notes in", "notes out")
    for i, name in enumerate(names):
        patch.comment(name, x + i * 100, y + 30, 95)
        kind = "flonum" if i == 1 else "number"
        box = patch.add(kind, (x + i * 100, y + 50, 70, 22), 1, 2, ["", "bang"],
                        parameter_enable=0)
        patch.connect(unpack, i, box)


def _feedback(patch: Patch) -> None:
    y0 = 330
    patch.comment(f"feedback: qbdi serve --feedback 127.0.0.1:{FEEDBACK_PORT}", 20, y0, 360)
    receive = patch.obj(f"udpreceive {FEEDBACK_PORT}", 20, y0 + 25, 130)
    route = patch.obj("route " + " ".join(SHOWN), 20, y0 + 55, 640)
    patch.connect(receive, 0, route)
    _bar_report(patch, route, 20, y0 + 90)
    labels = {"/qbdi/error": "error", "/qbdi/heartbeat": "heartbeat (uptime_s bar)",
              "/qbdi/ir/in": "IR in (bar bits...)", "/qbdi/ir/out": "IR out (bar bits...)",
              "/qbdi/motif": "motif (side len start...)", "/qbdi/overrun": "overrun",
              "/qbdi/bits": "bits in use", "/qbdi/mode": "mode in use",
              "/qbdi/bpm": "tempo in use", "/qbdi/echo/loop": "loop back? (1|0 ms)"}
    for row, (address, label) in enumerate(labels.items()):
        _display(patch, route, SHOWN.index(address), label, 20, y0 + 175 + row * 28)


def build() -> dict[str, Any]:
    """The patcher as a JSON-ready dict (Max 8 format)."""
    patch = Patch()
    patch.comment("qbdi: query-based deep improvisation, OSC control", 20, 15, 420)
    udpsend = patch.obj(f"udpsend 127.0.0.1 {OSC_PORT}", 580, 260, 160)
    _controls(patch, udpsend)
    _feedback(patch)
    return {"patcher": {
        "fileversion": 1,
        "appversion": {"major": 8, "minor": 5, "revision": 0, "architecture": "x64",
                       "modernui": 1},
        "classnamespace": "box",
        "rect": [80.0, 80.0, 880.0, 720.0],
        "openinpresentation": 0,
        "default_fontsize": 12.0,
        "default_fontface": 0,
        "default_fontname": "Arial",
        "gridsize": [15.0, 15.0],
        "boxes": patch.boxes,
        "lines": patch.lines,
        "dependency_cache": [],
        "autosave": 0,
    }}


def render() -> str:
    """The file's text: stable key order, one trailing newline."""
    return json.dumps(build(), indent=1) + "\n"


def main() -> None:
    PATCH_PATH.parent.mkdir(parents=True, exist_ok=True)
    PATCH_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {PATCH_PATH}")


if __name__ == "__main__":
    main()
