"""A MIDI input port through python-rtmidi, as mido's but counting what it cannot read.

mido's rtmidi input drops a packet that is not a valid MIDI message without a word; here
each such packet (an undefined status byte, a data byte above 127, a truncated message, an
unterminated sysex) is counted and logged in bounded amounts
(:class:`~qbdi.server.bounded_log.BoundedLog`, kind ``malformed MIDI``), and the valid
ones become :class:`mido.Message` objects handed to ``on_message`` on the backend's thread,
exactly as mido makes them (``Message.from_bytes``).
"""

from __future__ import annotations

from collections.abc import Callable

import mido

from qbdi.server.bounded_log import BoundedLog

MALFORMED = "malformed MIDI packets"
SHOWN_BYTES = 12  # bytes of a malformed packet shown in the log


class _Hex:
    """The first bytes of a packet in hex, formatted only if the line is logged."""

    def __init__(self, packet: list[int]) -> None:
        self.packet = packet

    def __str__(self) -> str:
        shown = " ".join(f"{byte:02X}" for byte in self.packet[:SHOWN_BYTES])
        return shown + (" ..." if len(self.packet) > SHOWN_BYTES else "")


class MidiInput:
    """An open input port: virtual (``virtual=True``, created under ``client_name``) or the
    existing port called ``name`` exactly (as the backend lists it)."""

    def __init__(self, api: int, client_name: str, name: str, virtual: bool,
                 on_message: Callable[[mido.Message], None], log: BoundedLog) -> None:
        import rtmidi

        self.name = name
        self._on_message = on_message
        self._log = log
        self._rt = rtmidi.MidiIn(rtapi=api, name=client_name)
        try:
            if virtual:
                self._rt.open_virtual_port(name)
            else:
                ports = self._rt.get_ports()
                if name not in ports:
                    raise OSError(f"unknown port {name!r}")
                self._rt.open_port(ports.index(name))
        except (rtmidi.RtMidiError, RuntimeError) as err:
            self._rt.delete()
            raise OSError(str(err)) from err
        # Sysex and clock are read (clock drives --clock midi); active sensing is not.
        self._rt.ignore_types(sysex=False, timing=False, active_sense=True)
        self._rt.set_callback(self._receive)
        self.closed = False

    def _receive(self, event: tuple[list[int], float], _data: object = None) -> None:
        packet = event[0]
        try:
            message = mido.Message.from_bytes(packet)
        except (ValueError, TypeError, IndexError) as err:
            self._log.event(MALFORMED, "malformed MIDI packet on %r (%d bytes: %s): %s",
                            self.name, len(packet), _Hex(packet), err)
            return
        self._on_message(message)

    @property
    def malformed(self) -> int:
        return self._log.count(MALFORMED)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._rt.cancel_callback()
        self._rt.close_port()
        self._rt.delete()
