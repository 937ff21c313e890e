"""Presets: the server's whole live state as one strict, validated model, saved as TOML.

A preset file in this folder (``presets/NAME.toml``) or anywhere (a path) holds::

    description = "what it is for"
    tempo_bpm = 120.0

    [improviser]      # qbdi.improviser.ImproviserSettings, unchanged
    mode = "query"
    budget_bits = 256

    [playing]         # how the server plays the answers
    velocity = "follow"

    [live_ir]         # the live information-rate feed over OSC (optional, off by default)
    enabled = true

Guarantees:

* Unknown fields, wrong types and values out of bounds are refused; the error names the
  file and the field (:class:`~qbdi.errors.PresetError`).
* A :class:`Preset` is immutable: a change (OSC, another preset) builds a new validated
  preset with :func:`changed`, so a bad value never replaces the last good state.
"""

from __future__ import annotations

import math
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qbdi.errors import PresetError
from qbdi.improviser import ImproviserSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport when installed
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

MIN_TEMPO_BPM = 20.0
MAX_TEMPO_BPM = 960.0


class PlaySettings(BaseModel):
    """What the server listens to and how it plays answers: input channel, velocity, silence
    policy, output channel."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    velocity: Literal["follow", "fixed"] = Field(
        "follow", description="follow: each answer takes the mean velocity of the notes the "
        "player struck in the bar it answers; fixed: always fixed_velocity")
    fixed_velocity: int = Field(80, ge=1, le=127)
    silence: Literal["silent", "repeat"] = Field(
        "silent", description="query mode, a bar with no input: stay silent, or keep the "
        "texture by answering the last non-empty bar again")
    midi_channel: int = Field(1, ge=1, le=16, description="output channel, 1-16")
    input_channel: Annotated[int, Field(ge=1, le=16)] | Literal["all"] = Field(
        "all", description="take notes from this input channel alone, 1-16 (say when a DAW "
        "sends other tracks or a drum part to qbdi in), or from all")


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


class Preset(BaseModel):
    """The live state of the server; every field has bounds and units in its name."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    description: str = ""
    tempo_bpm: float = Field(120.0, ge=MIN_TEMPO_BPM, le=MAX_TEMPO_BPM,
                             description="internal clock tempo (ignored when following "
                                         "MIDI clock)")
    improviser: ImproviserSettings = Field(
        default_factory=lambda: ImproviserSettings(stats="window"))
    playing: PlaySettings = Field(default_factory=PlaySettings)
    live_ir: LiveIrSettings = Field(default_factory=LiveIrSettings)

    @field_validator("tempo_bpm", mode="before")
    @classmethod
    def _finite_tempo(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"tempo_bpm must be finite, got {value}")
        return value

    @field_validator("improviser", mode="before")
    @classmethod
    def _check_budget(cls, value: Any) -> Any:
        # ImproviserSettings checks budget_bits >= 0 in its __init__, which nested validation
        # bypasses; check it here so a preset cannot carry a negative budget.
        if isinstance(value, dict):
            bits = value.get("budget_bits")
            if isinstance(bits, int) and not isinstance(bits, bool) and bits < 0:
                raise ValueError(f"budget_bits must be >= 0 or 'full', got {bits}")
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


def preset_dir() -> Path:
    """The folder of the presets shipped with qbdi."""
    return Path(str(resources.files("qbdi.presets")))


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(path.stem for path in preset_dir().glob("*.toml"))


def preset_path(name_or_path: str | Path) -> Path:
    """A shipped preset's file for a bare name, else the path as given."""
    text = str(name_or_path)
    if "/" not in text and "\\" not in text and not text.endswith(".toml"):
        return preset_dir() / f"{text}.toml"
    return Path(text)


PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""What ``/qbdi/preset`` accepts: a bare name, never a path."""


def load_named_preset(name: str, user_dir: Path | None = None) -> Preset:
    """Load a preset by name only, as an OSC peer may: ``user_dir/NAME.toml`` when that
    folder is given and holds it, else the shipped preset ``NAME``.

    A path, or a name with anything but letters, digits, ``_`` and ``-`` (so no ``..``), is
    refused: a peer can choose among the performer's presets but cannot make the server read
    any other file. Raises :class:`PresetError` naming the file and, for a bad value, the
    field.
    """
    if not isinstance(name, str) or not PRESET_NAME.fullmatch(name):
        raise PresetError(repr(name) if isinstance(name, str) else name,
                          "a preset is loaded by name (letters, digits, '_' and '-'), not by "
                          "path; put your presets in the --preset-dir folder")
    if user_dir is not None and (Path(user_dir) / f"{name}.toml").is_file():
        return load_preset(Path(user_dir) / f"{name}.toml")
    if name not in list_presets():
        mine = f" or in {user_dir}" if user_dir is not None else ""
        raise PresetError(name, f"no such preset{mine} (shipped presets: "
                                f"{', '.join(list_presets())})")
    return load_preset(name)


def load_preset(name_or_path: str | Path) -> Preset:
    """Load and validate a preset by shipped name (``default``) or by path.

    Raises :class:`PresetError` naming the file and, for a bad value, the field.
    """
    path = preset_path(name_or_path)
    if not path.is_file():
        known = ", ".join(list_presets())
        raise PresetError(path, f"no such preset file (shipped presets: {known})")
    if tomllib is None:  # pragma: no cover - only on Python 3.10 without tomli
        raise PresetError(path, "reading TOML on Python 3.10 needs `pip install tomli`")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise PresetError(path, f"not a readable TOML file: {err}") from err
    try:
        return Preset.model_validate(data)
    except ValidationError as err:
        raise PresetError(path, describe_error(err)) from err
