"""The OSC address table: every address the server answers, in one place.

Each handler's docstring (:mod:`~qbdi.server.osc_handlers`) is its documentation: ``qbdi
osc-help`` prints it and :func:`~qbdi.server.osc_docs.markdown_table` writes the README table
from it; each row's :class:`~qbdi.server.osc_values.Arg` generates the OSCQuery namespace.
Handlers run on the loop thread (the socket thread only enqueues), take the server's
:class:`~qbdi.server.osc_handlers.Controls` and the message's arguments, and either apply a
new validated state or raise ``ValueError`` with the reason; the server then replies
``/qbdi/error <reason>`` and keeps the previous value. MIDI controls take the same path.

This module knows nothing of sockets; :mod:`qbdi.server.osc_transport` carries datagrams.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pythonosc.dispatcher import Dispatcher

from qbdi.server.osc_handlers import (
    Controls,
    bits,
    bpm,
    channel,
    echo_guard,
    ir_enable,
    ir_threshold,
    learn,
    mode,
    model,
    panic,
    preset,
    sampling,
    seed,
    silence,
    stats,
    status,
    threshold,
    velocity,
)
from qbdi.server.osc_values import Arg
from qbdi.settings import (
    CHANNELS,
    ECHO_GUARDS,
    LEARNABLE,
    MAX_BUDGET_BITS,
    MAX_TEMPO_BPM,
    MIN_TEMPO_BPM,
    MODES,
    SILENCE_POLICIES,
    STATS_SOURCES,
    Preset,
)

MAX_ADDRESS_CHARS = 64  # longer patterns are refused before any pattern matching

# Addresses the server sends besides the values of the table's rows (documented below).
BAR = "/qbdi/bar"
OVERRUN = "/qbdi/overrun"
ERROR = "/qbdi/error"
HEARTBEAT = "/qbdi/heartbeat"
IR_IN = "/qbdi/ir/in"
IR_OUT = "/qbdi/ir/out"
MOTIF = "/qbdi/motif"
PORT = "/qbdi/port"
STATUS = "/qbdi/status"
BPM = "/qbdi/bpm"
ECHO_LOOP = "/qbdi/echo/loop"
LEARN = "/qbdi/learn"
CONTROLS = "/qbdi/controls"
# Addresses of the table other code sends to the server (the terminal view's keys).
BITS = "/qbdi/bits"
MODE = "/qbdi/mode"
PANIC = "/qbdi/panic"

# The address each setting a MIDI control turns takes (:mod:`~qbdi.server.midi_control`).
CONTROL_ADDRESSES: dict[str, str] = {
    "bits": BITS, "threshold": "/qbdi/threshold", "mode": MODE,
    "sampling": "/qbdi/sampling", "silence": "/qbdi/silence", "panic": PANIC,
    "preset": "/qbdi/preset"}


Handler = Callable[[Controls, Sequence[Any]], None]
Report = Callable[[Preset], list[Any]]


@dataclass(frozen=True, slots=True)
class OscAddress:
    """One row of the table: the address, its arguments (as text, and as an :class:`Arg`
    for the OSCQuery namespace and the browser surface; None: no arguments), what to do and
    what to report."""

    address: str
    arguments: str
    handler: Handler
    report: Report | None = None  # the value sent back after a change
    value: Arg | None = None

    @property
    def doc(self) -> str:
        return " ".join((self.handler.__doc__ or "").split())


def controls_report(state: Preset) -> list[Any]:
    """``/qbdi/controls``: the controls channel, then each setting with the CC bound to it."""
    controls = state.controls
    pairs: list[Any] = ["channel", controls.channel]
    for name, cc in controls.cc.bound().items():
        pairs += [name, cc]
    return pairs


def _velocity_report(state: Preset) -> list[Any]:
    play = state.playing
    return ["follow"] if play.velocity == "follow" else [play.fixed_velocity]


SWITCH = Arg("i", vals=(0, 1))
TABLE: tuple[OscAddress, ...] = (
    OscAddress(BITS, 'int >= 0 | "full"', bits, lambda s: [s.improviser.budget_bits],
               Arg("i", 0, MAX_BUDGET_BITS, also=("full",))),
    OscAddress(MODE, "|".join(MODES), mode, lambda s: [s.improviser.mode],
               Arg("s", vals=MODES)),
    OscAddress(BPM, "float 20-960", bpm, lambda s: [s.tempo_bpm],
               Arg("f", MIN_TEMPO_BPM, MAX_TEMPO_BPM)),
    OscAddress("/qbdi/threshold", "float in (0, 1)", threshold,
               lambda s: [s.improviser.threshold], Arg("f", 0, 1, low_open=True, high_open=True)),
    OscAddress("/qbdi/sampling", "0|1", sampling, lambda s: [int(s.improviser.sampling)],
               SWITCH),
    OscAddress("/qbdi/stats", "|".join(STATS_SOURCES), stats,
               lambda s: [s.improviser.stats], Arg("s", vals=STATS_SOURCES)),
    OscAddress("/qbdi/channel", "|".join(CHANNELS), channel,
               lambda s: [s.improviser.channel], Arg("s", vals=CHANNELS)),
    OscAddress("/qbdi/seed", "int >= 0", seed, lambda s: [s.improviser.seed],
               Arg("i", 0, 2**31 - 1)),  # the largest OSC int32
    OscAddress("/qbdi/silence", "|".join(SILENCE_POLICIES), silence,
               lambda s: [s.playing.silence], Arg("s", vals=SILENCE_POLICIES)),
    OscAddress("/qbdi/velocity", 'int 1-127 | "follow"', velocity, _velocity_report,
               Arg("i", 1, 127, also=("follow",))),
    OscAddress("/qbdi/echo/guard", "|".join(ECHO_GUARDS), echo_guard,
               lambda s: [s.playing.echo_guard], Arg("s", vals=ECHO_GUARDS)),
    OscAddress("/qbdi/model", "name", model, lambda s: [s.model or ""],
               Arg("s", choices="models")),
    OscAddress("/qbdi/preset", "name", preset, value=Arg("s", choices="presets")),
    OscAddress(PANIC, "", panic),
    OscAddress(LEARN, "|".join((*LEARNABLE, "cancel")), learn,
               value=Arg("s", vals=(*LEARNABLE, "cancel"))),
    OscAddress(STATUS, "", status),
    OscAddress("/qbdi/ir/enable", "0|1", ir_enable, lambda s: [int(s.live_ir.enabled)], SWITCH),
    OscAddress("/qbdi/ir/threshold", "float in (0, 3]", ir_threshold,
               lambda s: [s.live_ir.threshold], Arg("f", 0, 3, low_open=True)),
)

BY_ADDRESS = {row.address: row for row in TABLE}

# Sent by the server, documented with the table.
FEEDBACK: tuple[tuple[str, str, str], ...] = (
    (BAR, "bar compute_ms dims_with_bits notes_in notes_out",
     "after every bar answered"),
    (OVERRUN, "bar compute_ms overruns",
     "a bar whose answer was not ready in time; its late notes are dropped"),
    (ERROR, "reason", "a refused message or value, or an error inside a bar"),
    (HEARTBEAT, "uptime_s bar", "once a second"),
    (IR_IN, "bar ir_bits ...",
     "with /qbdi/ir/enable 1, after every bar answered: the information rate in bits of each "
     "beat of input bar `bar` (4 values; 1 with live_ir.frames_per_bar = 1)"),
    (IR_OUT, "bar ir_bits ...",
     "the same for the answer, `bar` being the bar it sounds in"),
    (MOTIF, "side length_beats earlier_start_beat start_beat",
     "a repeat of at least a bar just ended in the input (side `in`) or the answers "
     "(`out`): it began at earlier_start_beat and again at start_beat (beats from bar 0)"),
    (ECHO_LOOP, "1|0 latency_ms", "1: qbdi out is routed back into qbdi in (our notes come "
     "back after latency_ms), said once when found; 0: it no longer is"),
    (PORT, "in|out|controls name lost|back",
     "a port named with --in/--out/--controls-in closed (the server serves on) or is back "
     "and reconnected"),
    (LEARN, "setting waiting|bound cc|timeout|cancelled",
     "how a /qbdi/learn goes: waiting for a CC, bound to CC `cc`, no CC within 10 s, or "
     "replaced by another learn or cancelled"),
    (CONTROLS, "channel ch setting cc ...",
     "with /qbdi/status and when a learn binds: the MIDI controls channel (1-16 or all) "
     "and each setting with the CC bound to it"),
    ("/qbdi/<setting>", "value", "the value in use after a change (bits, mode, bpm, ...), "
     "by OSC or by a MIDI knob, button or program change"),
)


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
