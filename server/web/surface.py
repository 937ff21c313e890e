"""The browser control surface's server side (runs on the web thread): the page's files,
its WebSocket, and the fan-out of what the loop publishes to every open page.

Every request passes the :class:`~qbdi.server.web.gate.Gate` first (sender, rate, Host,
token; Origin for the WebSocket). A page's commands are checked at the edge
(:func:`~qbdi.server.web.messages.parse_command`), rate-limited per page, and posted into
the loop's inbox as OSC messages from the page's sender address, so the loop's
:class:`~qbdi.server.control.Control` validates and answers them exactly as OSC; the reply
or the refusal comes back through :class:`~qbdi.server.web.hub.WebFeedback`.

Each page has a bounded queue of outgoing messages; a page that reads too slowly loses its
oldest messages (counted), never slows another page or the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from qbdi.server import osc
from qbdi.server.osc_transport import TokenBucket
from qbdi.server.web import messages
from qbdi.server.web.gate import Gate
from qbdi.server.web.http import response, text
from qbdi.server.web.hub import WEB, Event, WebSender

log = logging.getLogger(__name__)

Post = Callable[[str, list[Any], WebSender], None]
STATIC = {"": ("index.html", "text/html; charset=utf-8"),
          "app.js": ("app.js", "text/javascript; charset=utf-8"),
          "style.css": ("style.css", "text/css; charset=utf-8")}
MAX_PAGES = 8
PAGE_QUEUE = 512  # messages waiting for one page before its oldest are dropped
COMMANDS_PER_S = 40.0  # per page; the page itself sends a dragged knob at most 20 times/s
IR_HISTORY = 64  # live-IR messages replayed to a page that opens


def static_files() -> dict[str, bytes]:
    folder = resources.files("qbdi.server.web") / "static"
    return {name: (folder / file).read_bytes() for name, (file, _) in STATIC.items()}


@dataclass(slots=True)
class Page:
    sender: WebSender
    queue: deque[str]
    ready: asyncio.Event
    bucket: TokenBucket
    dropped: int = 0
    refused: int = 0


class Surface:
    """The control surface at ``/TOKEN/`` (page, ``app.js``, ``style.css``, ``ws``)."""

    def __init__(self, gate: Gate, token: str, post: Post,
                 choices: Mapping[str, Sequence[Any]]) -> None:
        self.gate = gate
        self.token = token
        self._post = post
        self._files = static_files()
        self._hello = messages.encode(messages.hello(choices))
        self.pages: dict[int, Page] = {}
        self._next_id = 0
        self._last_bar: str | None = None
        self._ir: deque[str] = deque(maxlen=IR_HISTORY)
        self.commands = 0
        self.dropped = 0

    # -- HTTP -----------------------------------------------------------------------------
    def process_request(self, connection: ServerConnection, request: Request
                        ) -> Response | None:
        """Answer a plain HTTP request, refuse a bad one, or let a WebSocket open (None)."""
        headers = request.headers
        refusal = (self.gate.sender(connection.remote_address[0]) or self.gate.rate()
                   or self.gate.host(headers.get("Host")))
        if refusal:
            return text(429 if refusal == "rate_limited" else 403, "forbidden")
        path = request.path.partition("?")[0]
        given, _, rest = path.lstrip("/").partition("/")
        if self.gate.token(given, self.token):
            return text(403, "forbidden: open the address qbdi serve printed, with its token")
        if rest == "ws":
            if self.gate.origin(headers.get("Origin"), headers.get("Host")):
                return text(403, "forbidden: WebSocket from another origin")
            if len(self.pages) >= MAX_PAGES:
                return text(503, f"at most {MAX_PAGES} pages at once")
            return None
        if request.method != "GET":
            return text(405, "GET only")
        if path == f"/{given}":  # relative links need the trailing slash
            return response(301, headers={"Location": f"/{given}/"})
        if rest not in STATIC:
            return text(404, "not found")
        return response(200, self._files[rest], STATIC[rest][1])

    # -- pages ----------------------------------------------------------------------------
    async def handle(self, ws: ServerConnection) -> None:
        """One open page: greet it, replay the last bar and IR, relay its commands."""
        self._next_id += 1
        page = Page((WEB, self._next_id), deque(maxlen=PAGE_QUEUE), asyncio.Event(),
                    TokenBucket(COMMANDS_PER_S))
        self.pages[self._next_id] = page
        log.info("web: page %d opened from %s", self._next_id, ws.remote_address[0])
        for message in (self._hello, self._last_bar, *self._ir):
            if message is not None:
                self._queue(page, message)
        pump = asyncio.create_task(self._pump(ws, page))
        try:
            async for message in ws:
                self._command(page, message)
        except ConnectionClosed:
            pass
        finally:
            pump.cancel()
            del self.pages[page.sender[1]]
            log.info("web: page %d closed", page.sender[1])

    def _command(self, page: Page, message: str | bytes) -> None:
        if not page.bucket.take():
            self._refuse(page, "rate_limited_commands", "too many commands a second")
            return
        try:
            address, args = messages.parse_command(message)
        except messages.Refused as err:
            self._refuse(page, "refused_command", str(err))
            return
        self.commands += 1
        self._post(address, args, page.sender)

    def _refuse(self, page: Page, kind: str, reason: str) -> None:
        self.gate.refusals.count(kind, f"page {page.sender[1]}: {reason}")
        page.refused += 1
        if page.refused <= 10 or page.refused % 100 == 0:  # bounded, like the log
            self._queue(page, messages.encode({"type": "refused", "reason": reason}))

    async def _pump(self, ws: ServerConnection, page: Page) -> None:
        try:
            while True:
                await page.ready.wait()
                page.ready.clear()
                while page.queue:
                    await ws.send(page.queue.popleft())
        except ConnectionClosed:
            pass

    def _queue(self, page: Page, message: str) -> None:
        if len(page.queue) == page.queue.maxlen:
            page.dropped += 1
            self.dropped += 1
        page.queue.append(message)
        page.ready.set()

    # -- what the loop published (web thread) ---------------------------------------------
    def on_events(self, events: list[Event]) -> None:
        for event in events:
            try:
                self._deliver(event)
            except (TypeError, ValueError) as err:  # a value JSON cannot carry: skip it
                self.gate.refusals.count("unencodable_event", f"{event[:2]}: {err}")

    def _deliver(self, event: Event) -> None:
        if event[0] == "bar":
            self._last_bar = messages.encode(messages.bar_message(*event[1:]))
            self._broadcast(self._last_bar)
            return
        _, address, args, to = event
        message = {"type": "osc", "address": address, "args": args}
        plain = messages.encode(message)
        if address in (osc.IR_IN, osc.IR_OUT):
            self._ir.append(plain)
        reply = messages.encode({**message, "reply": True}) if to is not None else plain
        for page in self.pages.values():
            self._queue(page, reply if page.sender == to else plain)

    def _broadcast(self, message: str) -> None:
        for page in self.pages.values():
            self._queue(page, message)
