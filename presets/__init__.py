"""Presets: the server's whole live state (:class:`qbdi.settings.Preset`) saved as TOML files.

A preset file in this folder (``presets/NAME.toml``) or anywhere (a path) holds::

    description = "what it is for"
    tempo_bpm = 120.0

    [improviser]      # qbdi.settings.ImproviserSettings
    mode = "query"
    budget_bits = 256

    [playing]         # how the server plays the answers
    velocity = "follow"

    [live_ir]         # the live information-rate feed over OSC (optional, off by default)
    enabled = true

    [controls]        # MIDI control (optional; read from the preset serving starts with)
    programs = ["default", "free"]   # program change 0, 1 loads these
    [controls.cc]     # which CC turns which setting
    bits = 1

Guarantees:

* Unknown fields, wrong types and values out of bounds are refused; the error names the
  file and the field (:class:`~qbdi.errors.PresetError`).
* A :class:`Preset` is immutable: a change (OSC, another preset) builds a new validated
  preset with :func:`changed`, so a bad value never replaces the last good state.
"""

from __future__ import annotations

import re
import sys
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from qbdi.errors import PresetError
from qbdi.settings import PRESET_NAME_PATTERN, CcBindings, Preset, describe_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport when installed
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None


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


PRESET_NAME = re.compile(PRESET_NAME_PATTERN)
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


def cc_table(cc: CcBindings) -> str:
    """The ``[controls.cc]`` table of a preset file that binds ``cc`` (learned bindings are
    kept by pasting it into a preset)."""
    return "\n".join(["[controls.cc]", *(f"{name} = {number}"
                                         for name, number in cc.bound().items())])
