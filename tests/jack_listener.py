"""The tests' MIDI input through JACK: read as ``qbdi serve`` reads its own
(``server/midi_input.py``), by polling rtmidi's queue from a thread, never through a callback.

mido's rtmidi input always installs a callback, so JACK's process thread runs Python and
first waits for the interpreter. A callback that is still waiting when its cycle ends reads
the rest of the cycle's events from a port buffer JACK has already reused: RtMidi's JACK
reader (``jackProcessIn``) does not check what ``jack_midi_event_get`` returns, so when the
reused buffer holds fewer events the call fails and the event before is delivered again.
Seen here under load (``test_server_jack_controls.py``): a chord of four note-ons arrived as
four copies of its first, and two note-offs as two copies of the first, so a note never
ended. Without a callback, JACK's thread only copies each event into rtmidi's queue. The
same waiting thread is what made closing such a port hang (``tests/test_midi_input.py``).

Arrival times: rtmidi stamps each message in JACK's thread with the time since the one
before. :attr:`Listener.heard` anchors those stamps to ``time.perf_counter`` by the message
polled soonest after it came: a poll is never earlier than its message, so the times err
late, never early, by at most the shortest wait (under a millisecond while notes flow).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import mido
import rtmidi

POLL_S = 0.0005  # tighter than serve's 1 ms: the anchor of the times is one poll's wait
QUEUE_MESSAGES = 8192  # a test thread may keep the interpreter for a while


class Listener:
    """An input port of the test's JACK server: the existing port ``port`` (as rtmidi lists
    it), or with ``virtual=True`` a new port of that name under ``client_name``. Every
    message read is kept in arrival order (:attr:`heard`, :attr:`messages`) and handed to
    ``on_message`` on the reader thread. :meth:`close` stops the reader first, then closes."""

    def __init__(self, port: str, *, virtual: bool = False, client_name: str = "listener",
                 on_message: Callable[[mido.Message], None] | None = None) -> None:
        self._rt = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, client_name,
                                 queue_size_limit=QUEUE_MESSAGES)
        if virtual:
            self._rt.open_virtual_port(port)
        else:
            self._rt.open_port(self._rt.get_ports().index(port))
        self._rt.ignore_types(sysex=False, timing=False, active_sense=True)  # as mido
        self._on_message = on_message
        self._stamped: list[tuple[float, float, mido.Message]] = []  # (stamp, polled, msg)
        self._stamp_s = 0.0
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"listener {port}",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.wait(POLL_S):
            while (event := self._rt.get_message()) is not None:
                polled_s = time.perf_counter()
                packet, delta_s = event
                self._stamp_s += delta_s
                message = mido.Message.from_bytes(packet)
                self._stamped.append((self._stamp_s, polled_s, message))
                if self._on_message is not None:
                    self._on_message(message)

    @property
    def heard(self) -> list[tuple[float, mido.Message]]:
        """``(arrival time on time.perf_counter's clock, message)`` of every message so far."""
        stamped = list(self._stamped)
        if not stamped:
            return []
        offset_s = min(polled_s - stamp_s for stamp_s, polled_s, _ in stamped)
        return [(stamp_s + offset_s, message) for stamp_s, _, message in stamped]

    @property
    def messages(self) -> list[mido.Message]:
        return [message for _, _, message in list(self._stamped)]

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._reader.join()
        self._rt.close_port()
        self._rt.delete()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
