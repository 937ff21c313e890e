"""The Pure Data control patch ``presets/pd/qbdi.pd``, generated from this module.

``python -m tools.pd_patch`` rewrites the file; the test suite checks that the file is this
module's output, that every OSC message it can send is one the server accepts, and runs it
headless (``pd -nogui``) against a real server.

Pd vanilla only (0.51 or later): each control feeds ``[oscformat qbdi ...]`` into
``[netsend -u -b]`` (connected to ``qbdi serve``'s default 127.0.0.1:9000 on load), and
``[netreceive -u -b 9001]`` → ``[oscparse]`` → ``[route ...]`` shows what the server sends:
start the server with ``--feedback 127.0.0.1:9001``. Every control also listens on a named
receiver (``qbdi-bits``, ``qbdi-mode``, ...), so another patch or ``pd -send`` can drive it,
and ``qbdi-osc-port`` / ``qbdi-feedback-port`` move the two sockets to other ports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qbdi.settings import ECHO_GUARDS, MODES
from tools.max_patch import (
    FEEDBACK_PORT,
    MAX_BITS,
    OSC_PORT,
    PRESETS,
    TEMPO_RANGE_BPM,
    THRESHOLD_RANGE,
)

PATCH_PATH = Path(__file__).resolve().parents[1] / "presets" / "pd" / "qbdi.pd"
# (inlets, outlets) of the Pd objects used, by the object's first word.
OBJECT_IO: dict[str, tuple[int, int]] = {
    "loadbang": (0, 1), "t": (1, 2), "netsend": (1, 1), "netreceive": (1, 2),
    "oscformat": (1, 1), "oscparse": (1, 1), "list": (2, 1), "r": (0, 1),
    "unpack": (1, 5), "print": (1, 0),
}
# Feedback shown, each in its own display: OSC address -> label.
SHOWN = {"/qbdi/error": "error", "/qbdi/heartbeat": "heartbeat (uptime_s bar)",
         "/qbdi/overrun": "overrun (bar ms overruns)", "/qbdi/ir/in": "IR in (bar bits...)",
         "/qbdi/ir/out": "IR out (bar bits...)", "/qbdi/motif": "motif (side len start...)",
         "/qbdi/echo/loop": "loop back? (1|0 latency_ms)", "/qbdi/bits": "bits in use",
         "/qbdi/mode": "mode in use", "/qbdi/bpm": "tempo in use"}
BAR_FIELDS = ("bar", "compute ms", "dims with bits", "notes in", "notes out")


def escape(text: str) -> str:
    """Pd's text escapes: commas, semicolons and dollars are written with a backslash."""
    return text.replace("$", "\\$").replace(",", " \\,").replace(";", " \\;")


@dataclass
class Patch:
    """Pd boxes (numbered in order, as ``#X connect`` counts them) and their cords."""

    lines: list[str] = field(default_factory=list)
    cords: list[str] = field(default_factory=list)

    def _add(self, line: str) -> int:
        self.lines.append(line)
        return len(self.lines) - 1

    def obj(self, text: str, x: int, y: int) -> int:
        assert text.split()[0] in OBJECT_IO or text.startswith("route "), text
        return self._add(f"#X obj {x} {y} {text};")

    def msg(self, text: str, x: int, y: int) -> int:
        return self._add(f"#X msg {x} {y} {escape(text)};")

    def text(self, text: str, x: int, y: int) -> int:
        return self._add(f"#X text {x} {y} {escape(text)};")

    def floatatom(self, x: int, y: int, low: float, high: float, receive: str = "-",
                  width: int = 6) -> int:
        return self._add(f"#X floatatom {x} {y} {width} {low:g} {high:g} 0 - {receive} - 0;")

    def toggle(self, x: int, y: int, receive: str) -> int:
        return self._add(f"#X obj {x} {y} tgl 18 0 empty {receive} empty 17 7 0 10 #fcfcfc "
                         "#000000 #000000 0 1;")

    def connect(self, source: int, outlet: int, destination: int, inlet: int = 0) -> None:
        self.cords.append(f"#X connect {source} {outlet} {destination} {inlet};")

    def render(self) -> str:
        return "\n".join(["#N canvas 80 60 860 780 12;", *self.lines, *self.cords]) + "\n"


def address_words(address: str) -> str:
    """``/qbdi/ir/enable`` -> ``qbdi ir enable`` (oscformat's and oscparse's spelling)."""
    return " ".join(address.strip("/").split("/"))


# -- the control side: each control -> [oscformat qbdi ...] -> [netsend -u -b] -------------

def _sender(patch: Patch) -> int:
    netsend = patch.obj("netsend -u -b", 620, 330)
    start = patch.obj("t b b", 620, 60)
    patch.connect(patch.obj("loadbang", 620, 30), 0, start)
    connect = patch.msg(f"connect 127.0.0.1 {OSC_PORT}", 620, 300)
    patch.connect(start, 1, connect)  # right first: connected before /qbdi/status
    patch.connect(connect, 0, netsend)
    moved = patch.msg("disconnect, connect 127.0.0.1 $1", 620, 270)
    patch.connect(patch.obj("r qbdi-osc-port", 620, 240), 0, moved)
    patch.connect(moved, 0, netsend)
    status = patch.msg("bang", 660, 90)
    patch.connect(start, 0, status)
    _format(patch, status, "/qbdi/status", netsend, 660, 120)
    return netsend


def _format(patch: Patch, source: int, address: str, netsend: int, x: int, y: int) -> int:
    formatter = patch.obj(f"oscformat {address_words(address)}", x, y)
    patch.connect(source, 0, formatter)
    patch.connect(formatter, 0, netsend)
    return formatter


def _choices(patch: Patch, label: str, address: str, receive: str, items: tuple[str, ...],
             netsend: int, x: int, y: int) -> None:
    """One message box per item, and a receiver that takes an item by name."""
    patch.text(label, x, y)
    formatter = patch.obj(f"oscformat {address_words(address)}", x, y + 30 + 25 * len(items))
    patch.connect(formatter, 0, netsend)
    for row, item in enumerate(items):
        patch.connect(patch.msg(f"list {item}", x, y + 25 + 25 * row), 0, formatter)
    # A name sent to the receiver is a message of its own ("free"): [list] makes it data.
    as_list = patch.obj("list", x + 90, y + 25)
    patch.connect(patch.obj(f"r {receive}", x + 90, y), 0, as_list)
    patch.connect(as_list, 0, formatter)


def _controls(patch: Patch, netsend: int) -> None:
    patch.text(f"bits per bar 0-{MAX_BITS}", 20, 60)
    bits = patch.floatatom(20, 85, 0, MAX_BITS, "qbdi-bits")
    bits_out = _format(patch, bits, "/qbdi/bits", netsend, 20, 120)
    patch.connect(patch.msg("list full", 90, 85), 0, bits_out)
    _choices(patch, "mode", "/qbdi/mode", "qbdi-mode", MODES, netsend, 200, 60)
    _choices(patch, "preset", "/qbdi/preset", "qbdi-preset", PRESETS, netsend, 330, 60)
    _choices(patch, "echo guard", "/qbdi/echo/guard", "qbdi-echo-guard", ECHO_GUARDS,
             netsend, 470, 60)
    for x, label, address, (low, high), receive in (
            (20, "tempo (BPM)", "/qbdi/bpm", TEMPO_RANGE_BPM, "qbdi-bpm"),
            (20, "threshold", "/qbdi/threshold", THRESHOLD_RANGE, "qbdi-threshold")):
        y = 170 if address == "/qbdi/bpm" else 240
        patch.text(label, x, y)
        _format(patch, patch.floatatom(x, y + 25, low, high, receive), address, netsend,
                x + 80, y + 25)
    for x, label, address, receive in ((200, "sampling", "/qbdi/sampling", "qbdi-sampling"),
                                       (330, "live IR", "/qbdi/ir/enable", "qbdi-ir")):
        patch.text(label, x, 240)
        _format(patch, patch.toggle(x, 265, receive), address, netsend, x, 295)
    panic = patch.msg("bang", 470, 240)
    patch.text("panic", 510, 240)
    _format(patch, panic, "/qbdi/panic", netsend, 470, 265)
    patch.connect(patch.obj("r qbdi-panic", 470, 210), 0, panic)


# -- the feedback side: [netreceive] -> [oscparse] -> [route] -> displays ------------------

def _display(patch: Patch, source: int, outlet: int, label: str, y: int) -> None:
    """A message box showing the arguments it receives (``set ...``)."""
    patch.text(label, 20, y)
    prepend = patch.obj("list prepend set", 250, y)
    trim = patch.obj("list trim", 390, y)
    shown = patch.msg("", 480, y)
    patch.connect(source, outlet, prepend)
    patch.connect(prepend, 0, trim)
    patch.connect(trim, 0, shown)


def _routes(patch: Patch, parsed: int, y: int) -> dict[str, tuple[int, int]]:
    """[route] over the shown addresses' second words, and a [route] under it for those
    with a third (``ir in``): address -> (route object, outlet)."""
    addresses = ["/qbdi/bar", *SHOWN]
    words = [address.split("/")[2:] for address in addresses]
    firsts = list(dict.fromkeys(w[0] for w in words))
    top = patch.obj("route " + " ".join(firsts), 20, y)
    patch.connect(parsed, 0, top)
    outlets: dict[str, tuple[int, int]] = {}
    subs = 0
    for column, first in enumerate(firsts):
        seconds = [w[1] for w in words if w[0] == first and len(w) > 1]
        if not seconds:
            outlets[f"/qbdi/{first}"] = (top, column)
            continue
        sub = patch.obj("route " + " ".join(seconds), 300 + 150 * subs, y + 30)
        subs += 1
        patch.connect(top, column, sub)
        for index, second in enumerate(seconds):
            outlets[f"/qbdi/{first}/{second}"] = (sub, index)
    return outlets


def _feedback(patch: Patch) -> None:
    y0 = 380
    patch.text(f"feedback: qbdi serve --feedback 127.0.0.1:{FEEDBACK_PORT}", 20, y0)
    receive = patch.obj(f"netreceive -u -b {FEEDBACK_PORT}", 20, y0 + 25)
    listen = patch.msg("listen $1", 200, y0 + 25)
    patch.connect(patch.obj("r qbdi-feedback-port", 200, y0), 0, listen)
    patch.connect(listen, 0, receive)
    parse = patch.obj("oscparse", 20, y0 + 50)
    trim = patch.obj("list trim", 20, y0 + 75)
    patch.connect(receive, 0, parse)
    patch.connect(parse, 0, trim)
    patch.connect(trim, 0, patch.obj("print qbdi", 120, y0 + 75))  # also in Pd's console
    qbdi = patch.obj("route qbdi", 20, y0 + 100)
    patch.connect(trim, 0, qbdi)
    outlets = _routes(patch, qbdi, y0 + 125)
    unpack = patch.obj("unpack f f f f f", 20, y0 + 185)
    patch.connect(*outlets["/qbdi/bar"], unpack)
    for i, name in enumerate(BAR_FIELDS):
        patch.text(name, 20 + 110 * i, y0 + 210)
        patch.connect(unpack, i, patch.floatatom(20 + 110 * i, y0 + 235, 0, 0, width=8))
    for row, (address, label) in enumerate(SHOWN.items()):
        _display(patch, *outlets[address], label, y0 + 270 + 28 * row)


def render() -> str:
    """The patch's text."""
    patch = Patch()
    patch.text("qbdi: query-based deep improvisation - OSC control (Pd vanilla)", 20, 15)
    netsend = _sender(patch)
    _controls(patch, netsend)
    _feedback(patch)
    return patch.render()


def main() -> None:
    PATCH_PATH.parent.mkdir(parents=True, exist_ok=True)
    PATCH_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {PATCH_PATH}")


if __name__ == "__main__":
    main()
