"""The loop's inbox: what other threads hand the loop thread.

MIDI input (notes and controls), OSC messages and port events arrive on the backends' and
sockets' threads; their callbacks only append here (a deque's append is atomic) and wake the
loop, which drains the inbox on its own thread. A MIDI message is stamped with the clock's
time on arrival, so its position in the bar does not depend on when the loop gets to it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import mido

Item = tuple[Any, ...]


class Inbox:
    """Items in arrival order: ``("midi", t_s, message)`` (the input port),
    ``("controls", t_s, message)`` (the controls port), ``("osc", address, args, sender)``,
    ``("port", direction, name, kind)``."""

    def __init__(self, now_s: Callable[[], float]) -> None:
        self._now_s = now_s
        self._items: deque[Item] = deque()
        self._wake = threading.Event()

    def post_midi(self, message: mido.Message) -> None:
        """Input port callback (any thread)."""
        self._put(("midi", self._now_s(), message))

    def post_control(self, message: mido.Message) -> None:
        """Controls port callback (any thread): a message from ``--controls-in``."""
        self._put(("controls", self._now_s(), message))

    def post_osc(self, address: str, args: list[Any], sender: tuple[str, int] | None) -> None:
        """OSC socket callback (any thread)."""
        self._put(("osc", address, args, sender))

    def post_port_event(self, direction: str, name: str, kind: str) -> None:
        """Port watcher callback (any thread): a named port is ``lost`` or ``back``."""
        self._put(("port", direction, name, kind))

    def wake(self) -> None:
        """Wake the loop now (signal handlers call this)."""
        self._wake.set()

    def _put(self, item: Item) -> None:
        self._items.append(item)
        self._wake.set()

    def wait(self, timeout_s: float) -> None:
        """Sleep until something arrives or ``timeout_s`` passes (loop thread)."""
        self._wake.wait(timeout_s)

    def drain(self, handle: Callable[[Item], None]) -> None:
        """Hand every item to ``handle``, oldest first (loop thread)."""
        self._wake.clear()
        while self._items:
            handle(self._items.popleft())
