"""MIDI ports behind one small interface: real ones (mido + python-rtmidi,
:mod:`~qbdi.server.mido_ports`) and in-memory ones (here).

A :class:`Ports` object opens one input and one output. The input calls ``on_message`` on
the backend's thread for every message (the server only enqueues there); ``send`` sends
one message or raises :class:`~qbdi.server.errors.PortLost`.

Port loss. A port we create (virtual, the default) belongs to our own client: it can only
go when the whole backend goes (the JACK server stops), and then ``send`` raises
:class:`~qbdi.server.errors.PortLost` and the server stops. A port named with ``--in/--out``
belongs to another program (the DAW, loopMIDI) and can close and come back while we serve:
``watch(on_event)`` starts a watcher that looks for it every ``WATCH_S`` seconds and calls
``on_event(direction, name, "lost" | "back")`` (``direction`` is ``"in"`` or ``"out"``). While
the output is gone, ``send`` drops messages (they have nowhere to go, note-offs included:
the DAW ends what was sounding on a port it closes); once it is back the watcher has
reconnected before ``"back"`` is reported.

Backends are chosen by setting (``alsa``, ``jack``, ``coremidi``, ``windows``, ``memory``) or
detected; detection never starts anything (``JACK_NO_START_SERVER`` is set) and when no
backend works it raises :class:`~qbdi.server.errors.BackendUnavailable` saying what to start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import mido

from qbdi.server.errors import PortLost

CLIENT_NAME = "qbdi"  # the default --name
DEFAULT_IN = f"{CLIENT_NAME} in"
DEFAULT_OUT = f"{CLIENT_NAME} out"
OnMessage = Callable[[mido.Message], None]
OnPortEvent = Callable[[str, str, str], None]  # (direction "in"|"out", name, "lost"|"back")


class Ports(Protocol):
    """One input and one output port."""

    in_name: str
    out_name: str

    def open(self, on_message: OnMessage) -> None:
        """Open both; ``on_message`` is called on the backend's thread for each input."""

    def watch(self, on_event: OnPortEvent) -> None:
        """Report a port named with --in/--out going (``lost``) and coming ``back``; ports
        we create ourselves cannot go that way, so nothing is reported for them."""

    def send(self, message: mido.Message) -> None:
        """Send one message; raises :class:`PortLost` when the backend has gone."""

    def close(self) -> None: ...


class MemoryPorts:
    """In-memory ports for tests and headless smoke runs.

    ``play(message)`` delivers input as a backend thread would; everything sent is kept in
    ``sent`` as ``(now(), message)``. ``lose()`` makes the output fail like an unplugged
    device (a virtual port whose backend died); ``disappear()``/``reappear()`` act out a
    named port closing and coming back (what :class:`MidoPorts` reports from its watcher):
    while the output is gone, sends are counted in ``dropped`` and not kept.
    ``loopback=True`` feeds every sent message back to the input (a DAW loop).
    """

    def __init__(self, now: Callable[[], float] = time.perf_counter,
                 loopback: bool = False) -> None:
        self.in_name = "memory in"
        self.out_name = "memory out"
        self.now = now
        self.loopback = loopback
        self.sent: list[tuple[float, mido.Message]] = []
        self._on_message: OnMessage | None = None
        self._failures_left = 0
        self._on_event: OnPortEvent | None = None
        self.gone: set[str] = set()  # directions ("in", "out") whose port is away
        self.dropped = 0
        self.closed = False

    def open(self, on_message: OnMessage) -> None:
        self._on_message = on_message

    def watch(self, on_event: OnPortEvent) -> None:
        self._on_event = on_event

    def disappear(self, direction: str = "out") -> None:
        """The named ``direction`` port closes (the DAW quit): report it lost."""
        self.gone.add(direction)
        if self._on_event is not None:
            self._on_event(direction, self.out_name if direction == "out" else self.in_name,
                           "lost")

    def reappear(self, direction: str = "out") -> None:
        """The port is back and reconnected: report it."""
        self.gone.discard(direction)
        if self._on_event is not None:
            self._on_event(direction, self.out_name if direction == "out" else self.in_name,
                           "back")

    def play(self, message: mido.Message) -> None:
        if self._on_message is not None and "in" not in self.gone:
            self._on_message(message)

    def lose(self, failures: int = 1) -> None:
        """Make the next ``failures`` sends raise :class:`PortLost`."""
        self._failures_left = failures

    def send(self, message: mido.Message) -> None:
        if self._failures_left > 0:
            self._failures_left -= 1
            raise PortLost(f"{self.out_name}: port lost")
        if "out" in self.gone:
            self.dropped += 1
            return
        self.sent.append((self.now(), message.copy()))
        if self.loopback:
            self.play(message.copy())

    def close(self) -> None:
        self.closed = True
