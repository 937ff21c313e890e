"""The server's whole live state as types: what shapes an answer, how it is played, the live
information-rate feed, and the preset that holds them all.

Pure pydantic, no I/O and nothing of the pipeline: :mod:`qbdi.presets` reads these from files,
the server validates every live change through :func:`changed`, and the improviser reads
:class:`ImproviserSettings`. Every model is strict and immutable (extra fields forbidden,
bounds, units in names), so a refused value never replaces the last good state.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from qbdi.defaults import DEFAULT_THRESHOLD

Mode = Literal["query", "free", "echo", "mute"]
StatsSource = Literal["window", "query", "corpus", "prior"]
Silence = Literal["silent", "repeat"]
Channel = Literal["paper", "perception"]
Spread = Literal["stats", "corpus"]
EchoGuardMode = Literal["auto", "on", "off"]
MODES: Final = get_args(Mode)
CHANNELS: Final = get_args(Channel)
SPREADS: Final = get_args(Spread)
STATS_SOURCES: Final = get_args(StatsSource)
SILENCE_POLICIES: Final = get_args(Silence)
ECHO_GUARDS: Final = get_args(EchoGuardMode)

FULL_RATE: Final = "full"
"""The budget that bypasses the channel: the decoder gets ``z_e`` itself."""
MAX_BUDGET_BITS: Final = 2**31 - 1
"""The largest budget accepted; far above any use (the paper's figures use 256 and 512)."""
Budget = Annotated[int, Field(ge=0, le=MAX_BUDGET_BITS)] | Literal["full"]

PRESET_NAME_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
"""A preset's bare name (never a path): what ``/qbdi/preset`` and ``controls.programs`` take."""
PresetName = Annotated[str, Field(pattern=f"^{PRESET_NAME_PATTERN}$")]

MIN_TEMPO_BPM: Final = 20.0
MAX_TEMPO_BPM: Final = 960.0


class ImproviserSettings(BaseModel):
    """What shapes an answer. Immutable: a change builds a new, validated settings object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "query"
    budget_bits: Budget = Field(
        256, description="bits per bar through the channel, or 'full' to bypass it")
    stats: StatsSource = Field(
        "window", description="where mu_e and sigma2_e come from: a window of recent bars "
        "seeded by the corpus, the query (offline the whole query; live every bar so far), "
        "the corpus, or the prior N(0, 1)")
    window_bars: int = Field(16, ge=1, le=4096)
    channel: Channel = Field(
        "paper", description="the test channel: paper (eq. 6-8: at 0 bits the decoder gets "
        "mu_e itself) or perception (rate-distortion-perception at perfect realism: z_d keeps "
        "the statistics' variance at every rate, so 0 bits improvise freely from them)")
    spread: Spread = Field(
        "stats", description="where sigma2_e comes from: the same statistics as mu_e, or the "
        "corpus (with window or query statistics: the player's mean, the corpus's spread)")
    allocation: Literal["source", "posterior"] = "source"
    reallocate_per_bar: bool = Field(
        False, description="allocate each bar's bits by how far that bar's z_e is from mu_e")
    # mu alone by default: the channel's own noise is then the only randomness, so the knob
    # is smoother and full rate keeps the query's harmony (README, "Choices").
    encoding: Literal["sample", "mean"] = Field(
        "mean", description="z_e = mu alone, or mu + exp(logvar/2) eps (the paper)")
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0.0, lt=1.0)
    sampling: bool = Field(False, description="Bernoulli draws instead of the threshold")
    seed: int = Field(0, ge=0, le=2**63 - 1)

    @property
    def full_rate(self) -> bool:
        return self.budget_bits == FULL_RATE

    @property
    def needs_logvar(self) -> bool:
        """Whether an answer needs the encoder's ``logvar``: to sample ``z_e``, or to
        allocate bits by the posterior variance of the bars heard."""
        return self.encoding == "sample" or (
            self.allocation == "posterior" and self.stats in ("window", "query"))


class PlaySettings(BaseModel):
    """What the server listens to and how it plays answers: input channel, velocity, silence
    policy, output channel."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    velocity: Literal["follow", "fixed"] = Field(
        "follow", description="follow: each answer takes the mean velocity of the notes the "
        "player struck in the bar it answers; fixed: always fixed_velocity")
    fixed_velocity: int = Field(80, ge=1, le=127)
    silence: Silence = Field(
        "silent", description="query mode, a bar with no input: stay silent, or keep the "
        "texture by answering the last non-empty bar again")
    midi_channel: int = Field(1, ge=1, le=16, description="output channel, 1-16")
    input_channel: Annotated[int, Field(ge=1, le=16)] | Literal["all"] = Field(
        "all", description="take notes from this input channel alone, 1-16 (say when a DAW "
        "sends other tracks or a drum part to qbdi in), or from all")
    echo_guard: EchoGuardMode = Field(
        "auto", description="our own notes coming back to qbdi in (a DAW loop): auto drops "
        "them only while the notes show such a loop, on always drops an input note that "
        "looks like one we just sent, off never drops")


class LiveIrSettings(BaseModel):
    """The live information-rate feed (:mod:`qbdi.server.live_ir`): off unless enabled."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    enabled: bool = Field(False, description="send /qbdi/ir/in, /qbdi/ir/out and /qbdi/motif")
    threshold: float = Field(
        0.68, gt=0.0, le=3.0, description="Tonnetz distance below which two chroma frames "
        "count as the same symbol (3 is the largest possible distance); default: the median "
        "best threshold of the shipped query files")
    frames_per_bar: Literal[1, 4] = Field(4, description="chroma frames per bar: 4 (beats) "
                                                         "or 1 (bars)")
    window_bars: int = Field(256, ge=8, le=4096, description="bars each oracle holds; "
                             "when full, one built over its last half takes over")


# CC 120-127 are channel mode messages (all notes off, reset...), never a knob; CC 123 is
# also what we send ourselves, so a DAW loop echoing it must not turn anything.
MAX_CONTROL_CC: Final = 119
ControlNumber = Annotated[int, Field(ge=0, le=MAX_CONTROL_CC)]
NoteNumber = Annotated[int, Field(ge=0, le=127)]
LEARNABLE: Final = ("bits", "threshold", "mode", "sampling", "silence", "panic")
"""The settings a CC can be bound to (``[controls.cc]`` and ``/qbdi/learn``)."""


class CcBindings(BaseModel):
    """Which controller number (CC 0-119) turns each live setting; unset: none does.
    Values 0-127 map as :mod:`qbdi.server.midi_values` documents (bits: a logarithmic scale
    from 0 to "full"; switches: on at 64 and above; panic: when pressed past 64)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    bits: ControlNumber | None = None
    threshold: ControlNumber | None = None
    mode: ControlNumber | None = None
    sampling: ControlNumber | None = None
    silence: ControlNumber | None = None
    panic: ControlNumber | None = None

    @model_validator(mode="after")
    def _one_setting_per_cc(self) -> CcBindings:
        _refuse_shared_numbers(self.bound(), "CC")
        return self

    def bound(self) -> dict[str, int]:
        """``{setting: cc}`` of the settings bound, in :data:`LEARNABLE` order."""
        return {name: cc for name in LEARNABLE if (cc := getattr(self, name)) is not None}


class NoteBindings(BaseModel):
    """Pads: which note (on ``controls.notes_channel``) presses each button. A press steps
    the mode to the next one, toggles sampling or the silence policy, or panics."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    mode: NoteNumber | None = None
    sampling: NoteNumber | None = None
    silence: NoteNumber | None = None
    panic: NoteNumber | None = None

    @model_validator(mode="after")
    def _one_setting_per_note(self) -> NoteBindings:
        _refuse_shared_numbers(self.bound(), "note")
        return self

    def bound(self) -> dict[str, int]:
        return {name: note for name in ("mode", "sampling", "silence", "panic")
                if (note := getattr(self, name)) is not None}


def _refuse_shared_numbers(bound: dict[str, int], kind: str) -> None:
    seen: dict[int, str] = {}
    for name, number in bound.items():
        if number in seen:
            raise ValueError(f"{kind} {number} is bound to both {seen[number]} and {name}")
        seen[number] = name


class ControlSettings(BaseModel):
    """MIDI control of the live settings: knobs (CCs), program changes and pads (notes),
    from the input port or the ``--controls-in`` port. Empty by default: nothing is bound
    until a preset's ``[controls]`` table or ``/qbdi/learn`` binds it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    channel: Annotated[int, Field(ge=1, le=16)] | Literal["all"] = Field(
        "all", description="the channel, 1-16, knobs and program changes are taken from, "
        "or all")
    cc: CcBindings = Field(default_factory=CcBindings)
    programs: list[PresetName] = Field(
        default_factory=list, max_length=128,
        description="program change N loads the N-th preset named here (N from 0)")
    notes_channel: Annotated[int, Field(ge=1, le=16)] | None = Field(
        None, description="notes on this channel, 1-16, are controls (pads), never played")
    notes: NoteBindings = Field(default_factory=NoteBindings)

    @model_validator(mode="after")
    def _pads_need_a_channel(self) -> ControlSettings:
        if self.notes.bound() and self.notes_channel is None:
            raise ValueError("notes are bound, so notes_channel must say which channel the "
                             "pads send on (1-16)")
        return self


MODEL_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class Preset(BaseModel):
    """The live state of the server; every field has bounds and units in its name."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    description: str = ""
    model: Annotated[str, Field(pattern=MODEL_NAME_PATTERN)] | None = Field(
        None, description="the model that answers, by name (see `qbdi models`); a preset "
        "without one keeps the model in use")
    tempo_bpm: float = Field(120.0, ge=MIN_TEMPO_BPM, le=MAX_TEMPO_BPM,
                             description="internal clock tempo (ignored when following "
                                         "MIDI clock)")
    improviser: ImproviserSettings = Field(
        default_factory=lambda: ImproviserSettings(stats="window"))
    playing: PlaySettings = Field(default_factory=PlaySettings)
    live_ir: LiveIrSettings = Field(default_factory=LiveIrSettings)
    controls: ControlSettings = Field(default_factory=ControlSettings)

    @field_validator("tempo_bpm", mode="before")
    @classmethod
    def _finite_tempo(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"tempo_bpm must be finite, got {value}")
        return value


def changed(preset: Preset, **updates: Any) -> Preset:
    """A new validated preset with ``updates`` applied; nested tables merge key by key.

    ``changed(p, tempo_bpm=90.0, improviser={"budget_bits": 64})`` keeps every other field.
    Raises ``ValueError`` (pydantic's ``ValidationError`` is one) and leaves ``preset``
    untouched when a value is refused.
    """
    data = preset.model_dump()
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Preset.model_validate(data)


def describe_error(err: ValidationError) -> str:
    """One line per refused field: ``improviser.budget_bits: Input should be ...``."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'preset'}: {e['msg']}"
                     for e in err.errors())


