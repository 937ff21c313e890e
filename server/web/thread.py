"""The web thread: one asyncio event loop, on a thread of its own, serving the control
surface and the OSCQuery namespace, and advertising over mDNS.

Start-up binds every socket before :meth:`WebThread.start` returns, so ``qbdi serve``
fails at once (:class:`~qbdi.server.errors.WebSetupError`) when a port is taken, and prints
its ready line only when the pages can load. Nothing here runs on the loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from qbdi.server.errors import WebSetupError
from qbdi.server.web.messages import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)
START_TIMEOUT_S = 10.0
WS_LOG = logging.getLogger("qbdi.server.web.websockets")
WS_LOG.setLevel(logging.WARNING)  # not a line per connection opened and closed


class Site(Protocol):
    def process_request(self, connection: ServerConnection, request: Request
                        ) -> Response | None: ...

    async def handle(self, ws: ServerConnection) -> None: ...


Bound = tuple[str, int]
OnStarted = Callable[[asyncio.AbstractEventLoop, list[Bound]], Awaitable[None]]


class WebThread:
    """Serves ``sites`` (each with the host and port to bind) until :meth:`close`."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._on_stop: list[Callable[[], Awaitable[None]]] = []

    def start(self, sites: Sequence[tuple[Site, str, int]],
              on_started: OnStarted | None = None) -> list[Bound]:
        """Bind every site and start serving; the bound ``(host, port)`` of each."""
        bound: concurrent.futures.Future[list[Bound]] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(sites, on_started, bound),
                                        name="qbdi-web", daemon=True)
        self._thread.start()
        try:
            return bound.result(START_TIMEOUT_S)
        except concurrent.futures.TimeoutError as err:
            raise WebSetupError("the web server did not start in time") from err

    def on_stop(self, stop: Callable[[], Awaitable[None]]) -> None:
        """Run ``stop`` on the web thread when it closes (an mDNS goodbye)."""
        self._on_stop.append(stop)

    def close(self, timeout_s: float = 3.0) -> None:
        """Stop serving and join the thread. Idempotent."""
        loop, stop = self.loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # already closed
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self, sites: Sequence[tuple[Site, str, int]], on_started: OnStarted | None,
             bound: concurrent.futures.Future[list[Bound]]) -> None:
        try:
            asyncio.run(self._main(sites, on_started, bound))
        except Exception as err:  # before binding: start() raises it; after: log it
            if not bound.done():
                bound.set_exception(err)
            else:
                log.exception("web thread failed")

    async def _main(self, sites: Sequence[tuple[Site, str, int]], on_started: OnStarted | None,
                    bound: concurrent.futures.Future[list[Bound]]) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        servers: list[Server] = []
        try:
            for site, host, port in sites:
                servers.append(await _bind(site, host, port))
            addresses = [s.sockets[0].getsockname()[:2] for s in servers]
            if on_started is not None:
                await on_started(self.loop, addresses)
            bound.set_result(addresses)
            await self._stop.wait()
        finally:
            for stop in self._on_stop:
                await _quietly(stop())
            for server in servers:
                server.close()
                await _quietly(server.wait_closed())


async def _bind(site: Site, host: str, port: int) -> Server:
    try:
        return await serve(site.handle, host, port, process_request=site.process_request,
                           max_size=MAX_MESSAGE_BYTES, max_queue=8, server_header=None,
                           logger=WS_LOG)
    except (OSError, OverflowError) as err:
        raise WebSetupError(f"cannot listen for HTTP on {host}:{port}: {err}") from err


async def _quietly(awaitable: Awaitable[object]) -> None:
    try:
        await asyncio.wait_for(awaitable, 2.0)
    except Exception:
        log.exception("web: error while stopping")
