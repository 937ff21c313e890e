"""Errors of the live server; each is a :class:`~qbdi.errors.QbdiError`, so the CLI prints
its message and exits 2."""

from __future__ import annotations

from qbdi.errors import QbdiError


class BackendUnavailable(QbdiError):
    """No MIDI backend can open ports here; the message says what to start or install."""


class PortNotFound(QbdiError):
    """An existing port asked for by name (``--in``/``--out``) is not there."""


class PortNameTaken(QbdiError):
    """Ports of the names this server would create exist already (another server of the
    same ``--name``)."""


class PortLost(QbdiError):
    """A MIDI port stopped working while serving (device unplugged, JACK server gone)."""


class OscSetupError(QbdiError):
    """The OSC socket cannot be opened, or its options are unsafe (open bind, no allowlist)."""


class WebSetupError(QbdiError):
    """The web surface or the OSCQuery server cannot listen, or their options are unsafe."""
