"""The OSC address table: every address the server answers, in one place.

Each handler's docstring is its documentation: ``qbdi osc-help`` prints it and
:func:`~qbdi.server.osc_docs.markdown_table` writes the README table from it; each row's
:class:`~qbdi.server.osc_values.Arg` generates the OSCQuery namespace. Handlers run on the
loop thread (the socket thread only enqueues), take the server's :class:`Controls` and the
message's arguments, and either apply a new validated state or raise ``ValueError`` with the
reason; the server then replies ``/qbdi/error <reason>`` and keeps the previous value.

This module knows nothing of sockets; :mod:`qbdi.server.osc_transport` carries datagrams and
:mod:`~qbdi.server.osc_routing` finds the rows an incoming address (or pattern) names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from qbdi.server import osc_values as values
from qbdi.server.osc_values import Arg
from qbdi.settings import (
    ECHO_GUARDS,
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


class Controls(Protocol):
    """What a handler may do to the server."""

    @property
    def state(self) -> Preset: ...

    def change(self, **updates: Any) -> None:
        """Apply a validated change of the state, or raise ``ValueError``."""

    def set_tempo(self, tempo_bpm: float) -> None: ...

    def load_preset(self, name: str) -> None: ...

    def set_model(self, name: str) -> None: ...

    def panic(self) -> None: ...

    def send_status(self) -> None: ...


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


# -- the handlers: docstrings are the protocol documentation ----------------------------

def bits(ctl: Controls, args: Sequence[Any]) -> None:
    """Bits per bar through the latent channel: a whole number >= 0, or "full" to bypass
    the channel. 0 drifts to the corpus mean (the tonic); more bits follow the player
    more closely. Replies /qbdi/bits with the value now in use."""
    value = values.one(args)
    budget: int | str = "full" if value == "full" else values.integer(value)
    if isinstance(budget, int) and not 0 <= budget <= MAX_BUDGET_BITS:
        raise ValueError(f"expects bits in 0..{MAX_BUDGET_BITS} or 'full', got {budget}")
    ctl.change(improviser={"budget_bits": budget})


def mode(ctl: Controls, args: Sequence[Any]) -> None:
    """What answers: query (the player through the channel), free (from the prior, plays
    without input), echo (the input unchanged, for routing checks) or mute. Ends every
    sounding note. Replies /qbdi/mode."""
    ctl.change(improviser={"mode": values.choice(values.one(args), MODES)})


def bpm(ctl: Controls, args: Sequence[Any]) -> None:
    """Tempo of the internal clock in beats per minute (20-960); the position in the bar
    does not jump. With Link, proposes the tempo to every peer. Refused while following MIDI
    clock. Replies /qbdi/bpm; when the DAW's clock or a Link peer changes the tempo, the new
    one is sent as /qbdi/bpm at the next bar."""
    ctl.set_tempo(values.number(values.one(args)))


def threshold(ctl: Controls, args: Sequence[Any]) -> None:
    """Note probability above which the decoder plays a feature, strictly between 0 and 1
    (default 0.35): lower plays more notes. Replies /qbdi/threshold."""
    ctl.change(improviser={"threshold": values.number(values.one(args))})


def sampling(ctl: Controls, args: Sequence[Any]) -> None:
    """1/true/on: draw notes by Bernoulli sampling instead of the threshold; 0/false/off:
    threshold. Replies /qbdi/sampling 0|1."""
    ctl.change(improviser={"sampling": values.switch(values.one(args))})


def stats(ctl: Controls, args: Sequence[Any]) -> None:
    """Where the channel's per-dimension mean and variance come from: window (recent bars,
    seeded by the corpus), query (every bar since the last change, seeded by the corpus),
    corpus or prior. Replies /qbdi/stats."""
    ctl.change(improviser={"stats": values.choice(values.one(args), STATS_SOURCES)})


def seed(ctl: Controls, args: Sequence[Any]) -> None:
    """Random seed (whole number >= 0): restarts the random stream and the statistics
    window, so the same input gives the same answers again. Replies /qbdi/seed."""
    value = values.integer(values.one(args))
    if value < 0:
        raise ValueError(f"expects a seed >= 0, got {value}")
    ctl.change(improviser={"seed": value})


def silence(ctl: Controls, args: Sequence[Any]) -> None:
    """Query mode with no input in a bar: silent (answer nothing) or repeat (answer the
    last non-empty bar again, keeping the texture). Replies /qbdi/silence."""
    ctl.change(playing={"silence": values.choice(values.one(args), SILENCE_POLICIES)})


def velocity(ctl: Controls, args: Sequence[Any]) -> None:
    """follow: answers take the mean velocity the player struck in the bar they answer;
    a number 1-127: every answer note at that fixed velocity. Replies /qbdi/velocity."""
    value = values.one(args)
    if value == "follow":
        ctl.change(playing={"velocity": "follow"})
    else:
        ctl.change(playing={"velocity": "fixed", "fixed_velocity": values.integer(value)})


def model(ctl: Controls, args: Sequence[Any]) -> None:
    """Answer with another model by name (see `qbdi models`; each was loaded at start-up, so
    nothing is read from disk while playing). Ends every sounding note; the new model
    answers from the next barline. An unknown name is refused and the model in use stays.
    Replies /qbdi/model."""
    name = values.one(args)
    if not isinstance(name, str) or not name:
        raise ValueError(f"expects a model name, got {name!r}")
    ctl.set_model(name)


def preset(ctl: Controls, args: Sequence[Any]) -> None:
    """Load a preset by name: NAME.toml from the serve --preset-dir folder (by default the
    folder of a --preset file), else a shipped preset (see `qbdi presets`). Paths are refused,
    so a peer cannot make the server read other files. Ends every sounding note; a bad preset
    is refused and the current state stays. Replies with every value of the new state."""
    name = values.one(args)
    if not isinstance(name, str) or not name:
        raise ValueError(f"expects a preset name, got {name!r}")
    ctl.load_preset(name)


def panic(ctl: Controls, args: Sequence[Any]) -> None:
    """No arguments. Ends every sounding note now (note-offs, then CC 123) and drops the
    answer being played; the next bar plays normally."""
    values.none(args)
    ctl.panic()


def status(ctl: Controls, args: Sequence[Any]) -> None:
    """No arguments. Replies with every current value (/qbdi/bits, /qbdi/mode, ...) and
    /qbdi/status with the bar counter, overruns, notes in/out and malformed packets as
    name, value pairs."""
    values.none(args)
    ctl.send_status()


def ir_enable(ctl: Controls, args: Sequence[Any]) -> None:
    """1/true/on: send the live information rate of every bar of the input (/qbdi/ir/in)
    and of the answers (/qbdi/ir/out), and the motifs they complete (/qbdi/motif), from
    fresh oracles; computed on its own thread after each answer is scheduled, so it never
    delays one. 0/false/off: stop. Replies /qbdi/ir/enable 0|1."""
    ctl.change(live_ir={"enabled": values.switch(values.one(args))})


def ir_threshold(ctl: Controls, args: Sequence[Any]) -> None:
    """Tonnetz distance, above 0 and at most 3, below which two chroma frames of the live
    feed count as the same (default 0.68): lower finds fewer repeats. Restarts the feed's
    oracles. Replies /qbdi/ir/threshold."""
    ctl.change(live_ir={"threshold": values.number(values.one(args))})


def echo_guard(ctl: Controls, args: Sequence[Any]) -> None:
    """Our own notes routed back into qbdi in. auto: drop them while the notes show such a
    loop (nearly every note we send comes back, on and off, after the same few ms; said by
    /qbdi/echo/loop); on: always drop an input note-on equal to one sent in the last 50 ms,
    and its note-off; off: never. Replies /qbdi/echo/guard."""
    ctl.change(playing={"echo_guard": values.choice(values.one(args), ECHO_GUARDS)})


def _velocity_report(state: Preset) -> list[Any]:
    play = state.playing
    return ["follow"] if play.velocity == "follow" else [play.fixed_velocity]


SWITCH = Arg("i", vals=(0, 1))
TABLE: tuple[OscAddress, ...] = (
    OscAddress("/qbdi/bits", 'int >= 0 | "full"', bits, lambda s: [s.improviser.budget_bits],
               Arg("i", 0, MAX_BUDGET_BITS, also=("full",))),
    OscAddress("/qbdi/mode", "|".join(MODES), mode, lambda s: [s.improviser.mode],
               Arg("s", vals=MODES)),
    OscAddress(BPM, "float 20-960", bpm, lambda s: [s.tempo_bpm],
               Arg("f", MIN_TEMPO_BPM, MAX_TEMPO_BPM)),
    OscAddress("/qbdi/threshold", "float in (0, 1)", threshold,
               lambda s: [s.improviser.threshold], Arg("f", 0, 1, low_open=True, high_open=True)),
    OscAddress("/qbdi/sampling", "0|1", sampling, lambda s: [int(s.improviser.sampling)],
               SWITCH),
    OscAddress("/qbdi/stats", "|".join(STATS_SOURCES), stats,
               lambda s: [s.improviser.stats], Arg("s", vals=STATS_SOURCES)),
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
    OscAddress("/qbdi/panic", "", panic),
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
    (PORT, "in|out name lost|back",
     "a port named with --in/--out closed (the server serves on) or is back and reconnected"),
    ("/qbdi/<setting>", "value", "the value in use after a change (bits, mode, bpm, ...)"),
)
