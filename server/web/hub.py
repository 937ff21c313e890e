"""The loop's side of the browser surface: what the loop publishes for the pages, handed
to the web thread without ever waiting for it.

* :class:`WebFeedback` wraps the OSC feedback: every value, reply, bar report, heartbeat,
  live-IR message and error the server sends over OSC is also published for the pages. A
  reply addressed to a page (its sender is a :data:`WebSender`) goes to the pages, and to
  the OSC feedback target alone, never to a UDP address.
* :class:`WebListener` publishes each answered bar (copies of the input bar and the answer,
  for the piano roll).
* :class:`WebHub` is the hand-over: :meth:`WebHub.publish` appends to a bounded deque and,
  when no drain is pending yet, schedules one on the web thread's event loop
  (``call_soon_threadsafe`` writes one byte to a non-blocking socket). When the web thread
  falls behind by ``max_pending`` events the oldest are dropped and counted: the loop
  thread never waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qbdi.server.control import Address, Feedback
from qbdi.server.events import AnsweredBar, LoopListener

WEB = "web"  # the host part of a page's sender address: ("web", client id)
WebSender = tuple[str, int]
Event = tuple[Any, ...]  # ("osc", address, args, to) or ("bar", index, query, answer)
MAX_PENDING_EVENTS = 1024


def is_web_sender(to: Address | None) -> bool:
    return to is not None and to[0] == WEB


class WebHub:
    """Events from any thread to the web thread, in order, bounded."""

    def __init__(self, max_pending: int = MAX_PENDING_EVENTS) -> None:
        self._pending: deque[Event] = deque(maxlen=max_pending)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_events: Callable[[list[Event]], None] = lambda events: None
        self._drain_scheduled = False
        self.dropped = 0  # events the web thread never saw (it fell behind)
        self.published = 0

    def attach(self, loop: asyncio.AbstractEventLoop,
               on_events: Callable[[list[Event]], None]) -> None:
        """Deliver events to ``on_events`` on ``loop`` (the web thread) from now on."""
        self._on_events = on_events
        self._loop = loop

    def detach(self) -> None:
        self._loop = None

    def publish(self, event: Event) -> None:
        """Queue ``event`` for the pages (any thread; never blocks)."""
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(event)
        self.published += 1
        loop = self._loop
        if loop is None or self._drain_scheduled:
            return
        self._drain_scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the web thread's loop has closed: nobody to tell
            self._loop = None

    def _drain(self) -> None:
        # Cleared before popping: an event published meanwhile schedules another drain.
        self._drain_scheduled = False
        events = []
        while self._pending:
            events.append(self._pending.popleft())
        if events:
            self._on_events(events)


class WebFeedback:
    """The OSC feedback, and the same messages for the pages."""

    def __init__(self, osc: Feedback, hub: WebHub) -> None:
        self.osc = osc
        self.hub = hub

    def send(self, address: str, args: Sequence[Any], to: Address | None = None) -> None:
        page = to if is_web_sender(to) else None
        self.osc.send(address, args, None if page is not None else to)
        self.hub.publish(("osc", address, list(args), page))


class WebListener(LoopListener):
    """Publishes answered bars for the piano roll."""

    def __init__(self, hub: WebHub) -> None:
        self.hub = hub

    def answered(self, bar: AnsweredBar) -> None:
        # Copies (2496 bools each, about a microsecond): the pages read them later.
        answer = None if bar.answer is None else np.array(bar.answer, dtype=bool)
        self.hub.publish(("bar", bar.report.bar, np.array(bar.query, dtype=bool), answer))
