"""The exception hierarchy of qbdi.

Every error a user can cause (a bad file, a bad value) is a :class:`QbdiError` whose
message names the thing at fault, so the CLI can print it and exit non-zero without a
traceback.
"""

from __future__ import annotations

from pathlib import Path


class QbdiError(Exception):
    """Base class of every error qbdi raises on purpose."""


class MidiFileError(QbdiError):
    """A MIDI file that cannot be read: missing, not MIDI, truncated or empty."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MetreError(QbdiError):
    """A piece whose metre the bar codec was told not to accept."""


class CheckpointError(QbdiError):
    """A checkpoint that is missing, corrupt, or does not match its config."""

    def __init__(self, path: str | Path, field: str, reason: str) -> None:
        self.path = str(path)
        self.field = field
        self.reason = reason
        super().__init__(f"{self.path}: {field}: {reason}")


class CorpusError(QbdiError):
    """A training corpus that cannot be found or holds no usable bars."""


class PresetError(QbdiError):
    """A preset file that is missing or fails validation."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def check_writable(path: Path, what: str) -> None:
    """Refuse, before any work is done, an output ``path`` that cannot be written: its folder
    is missing or not writable, or the path is a folder. Raises :class:`QbdiError` naming
    ``what`` (e.g. "--out") and the path."""
    import os

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise QbdiError(f"{what} {path}: is a folder, not a file")
    if not folder.is_dir():
        raise QbdiError(f"{what} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise QbdiError(f"{what} {path}: not writable")
