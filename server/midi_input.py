"""A MIDI input port through python-rtmidi, as mido's but counting what it cannot read.

mido's rtmidi input drops a packet that is not a valid MIDI message without a word; here
each such packet (an undefined status byte, a data byte above 127, a truncated message, an
unterminated sysex) is counted and logged in bounded amounts
(:class:`~qbdi.server.bounded_log.BoundedLog`, kind ``malformed MIDI``), and the valid
ones become :class:`mido.Message` objects handed to ``on_message`` on the port's reader
thread, exactly as mido makes them (``Message.from_bytes``).

The reader polls rtmidi's queue every ``POLL_S`` rather than taking its callback: a callback
runs Python on JACK's process thread, which must first take the GIL. A port closing (at stop
or reconnection) while that thread waits for it cancels the waiting thread, which leaves
the GIL's own mutex locked: every Python thread then waits for ever (reproduced: with the
GIL held 30 ms while notes arrived, every close hung, as ``tests/test_midi_input.py``
checks; at 8,000 messages/s, after 52 and after about 80 closes). And a callback still
waiting when its JACK cycle ends reads the rest of the cycle from a buffer JACK has reused,
which repeats one event and loses the others (seen in the tests' own listeners under load:
``tests/jack_listener.py``). Polled, JACK's thread
only fills rtmidi's own queue, and a message waits at most ``POLL_S`` more while messages
flow, ``IDLE_POLL_S`` for the first after a pause (a JACK period is 2.7 ms; a sixteenth at
480 BPM 31 ms).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import mido

from qbdi.server.bounded_log import BoundedLog

MALFORMED = "malformed MIDI packets"
SHOWN_BYTES = 12  # bytes of a malformed packet shown in the log
POLL_S = 0.001  # how often the reader empties rtmidi's queue (1,024 messages deep) while
# messages arrive; after a poll that found none, the wait doubles up to IDLE_POLL_S, so an
# idle port wakes a quarter as often
IDLE_POLL_S = 0.004


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
        self.closed = False
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"MIDI in {name}",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        wait_s = POLL_S
        while not self._stop.wait(wait_s):
            wait_s = min(2 * wait_s, IDLE_POLL_S)
            while (event := self._rt.get_message()) is not None:
                self._receive(event)
                wait_s = POLL_S

    def _receive(self, event: tuple[list[int], float]) -> None:
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
        """Stop the reader (what is still queued is dropped), then close the port."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        if self._reader is not threading.current_thread():
            self._reader.join()
        self._rt.close_port()
        self._rt.delete()
