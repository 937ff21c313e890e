"""In-memory MIDI ports (:class:`~qbdi.server.ports.Ports`), for tests and headless runs."""

from __future__ import annotations

import time
from collections.abc import Callable

import mido

from qbdi.server.errors import PortLost

OnMessage = Callable[[mido.Message], None]
OnPortEvent = Callable[[str, str, str], None]  # (direction, name, "lost"|"back")


class MemoryPorts:
    """In-memory ports for tests and headless smoke runs.

    ``play(message)`` delivers input as a backend thread would; everything sent is kept in
    ``sent`` as ``(now(), message)``. ``lose()`` makes the output fail like an unplugged
    device (a virtual port whose backend died); ``disappear()``/``reappear()`` act out a
    named port closing and coming back (what :class:`MidoPorts` reports from its watcher):
    while the output is gone, sends are counted in ``dropped`` and not kept.
    ``loopback=True`` feeds every sent message back to the input (a DAW loop).
    ``controls=True`` adds a controls input (``--controls-in``), fed by ``play_control``.
    """

    def __init__(self, now: Callable[[], float] = time.perf_counter,
                 loopback: bool = False, controls: bool = False) -> None:
        self.in_name = "memory in"
        self.out_name = "memory out"
        self.controls_name: str | None = "memory controls" if controls else None
        self.now = now
        self.loopback = loopback
        self.sent: list[tuple[float, mido.Message]] = []
        self._on_message: OnMessage | None = None
        self._on_control: OnMessage | None = None
        self._failures_left = 0
        self._on_event: OnPortEvent | None = None
        self.gone: set[str] = set()  # directions ("in", "out", "controls") away
        self.dropped = 0
        self.closed = False

    def open(self, on_message: OnMessage, on_control: OnMessage | None = None) -> None:
        self._on_message = on_message
        self._on_control = on_control

    def watch(self, on_event: OnPortEvent) -> None:
        self._on_event = on_event

    def disappear(self, direction: str = "out") -> None:
        """The named ``direction`` port closes (the DAW quit): report it lost."""
        self.gone.add(direction)
        if self._on_event is not None:
            self._on_event(direction, self._name(direction), "lost")

    def reappear(self, direction: str = "out") -> None:
        """The port is back and reconnected: report it."""
        self.gone.discard(direction)
        if self._on_event is not None:
            self._on_event(direction, self._name(direction), "back")

    def _name(self, direction: str) -> str:
        names = {"in": self.in_name, "out": self.out_name, "controls": self.controls_name}
        return names[direction] or direction

    def play(self, message: mido.Message) -> None:
        if self._on_message is not None and "in" not in self.gone:
            self._on_message(message)

    def play_control(self, message: mido.Message) -> None:
        """A message on the controls input (there must be one: ``controls=True``)."""
        if self.controls_name is None:
            raise ValueError("these ports have no controls input (MemoryPorts(controls=True))")
        if self._on_control is not None and "controls" not in self.gone:
            self._on_control(message)

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
