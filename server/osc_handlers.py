"""The handlers of the OSC address table (:mod:`~qbdi.server.osc`): each checks its
arguments and calls the control surface (:class:`Controls`), or raises ``ValueError`` with the
reason the sender is told. Their docstrings are the protocol's documentation (``qbdi
osc-help`` and the README table print them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from qbdi.server import osc_values as values
from qbdi.settings import (
    CHANNELS,
    ECHO_GUARDS,
    LEARNABLE,
    MAX_BUDGET_BITS,
    MODES,
    SILENCE_POLICIES,
    STATS_SOURCES,
    Preset,
)


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

    def learn(self, setting: str) -> None: ...

    def send_status(self) -> None: ...


def bits(ctl: Controls, args: Sequence[Any]) -> None:
    """Bits per bar through the latent channel: a whole number >= 0, or "full" to bypass
    the channel. 0 improvises from the statistics alone (the perception channel; the
    paper's sends their mean); more bits follow the player's harmony more closely. Replies
    /qbdi/bits with the value now in use."""
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


def channel(ctl: Controls, args: Sequence[Any]) -> None:
    """The test channel the latents go through: perception (the default preset's: it keeps
    the statistics' spread at every budget, so 0 bits improvise from them) or paper (eq. 6-8:
    0 bits send their mean). Replies /qbdi/channel."""
    ctl.change(improviser={"channel": values.choice(values.one(args), CHANNELS)})


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
    is refused and the current state stays. The MIDI controls in use stay (the preset's own
    [controls] table counts only when serving starts). Replies with every value of the new
    state."""
    name = values.one(args)
    if not isinstance(name, str) or not name:
        raise ValueError(f"expects a preset name, got {name!r}")
    ctl.load_preset(name)


def panic(ctl: Controls, args: Sequence[Any]) -> None:
    """No arguments. Ends every sounding note now (note-offs, then CC 123) and drops the
    answer being played; the next bar plays normally."""
    values.none(args)
    ctl.panic()


def learn(ctl: Controls, args: Sequence[Any]) -> None:
    """MIDI learn: the next control change (CC 0-119) on the controls channel, from the
    serve --controls-in port or else the input port, is bound to SETTING (bits, threshold,
    mode, sampling, silence or panic); that message itself changes nothing, the next ones
    turn the setting. A CC bound to another setting moves to this one. Replies /qbdi/learn
    SETTING waiting, then /qbdi/learn SETTING bound CC with /qbdi/controls, or /qbdi/learn
    SETTING timeout after 10 s without a CC. A new learn replaces a waiting one (which
    replies cancelled); "cancel" cancels. Bindings live in the session's state (see
    /qbdi/controls in /qbdi/status)."""
    ctl.learn(values.choice(values.one(args), (*LEARNABLE, "cancel")))


def status(ctl: Controls, args: Sequence[Any]) -> None:
    """No arguments. Replies with every current value (/qbdi/bits, /qbdi/mode, ...), the MIDI
    control bindings (/qbdi/controls), and /qbdi/status with the bar counter, overruns, notes
    in/out, panics, MIDI controls taken and what was refused or dropped (malformed,
    rate-limited and refused OSC, refused values, refused MIDI controls, malformed MIDI,
    feedback and log lines dropped) as name, value pairs."""
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
