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
