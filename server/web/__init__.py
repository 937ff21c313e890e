"""The browser control surface (``qbdi serve --web``) and the OSCQuery namespace.

One asyncio event loop on its own thread (:mod:`.thread`) serves both; the loop thread
only publishes into :class:`.hub.WebHub` and reads nothing from here. Pages drive the
server through the same validated path as OSC (:mod:`.surface`), and every request passes
the checks in :mod:`.gate` (allowlist, rate, Host, token, Origin).

HTTP and WebSocket come from ``websockets`` (BSD, no dependencies of its own, maintained
since 2013, RFC 6455 and its own HTTP/1.1 request parser with bounded lines and headers,
no request bodies). Its handshake hook (``process_request``) answers plain GETs, which is
all the page and OSCQuery need, so no web framework is involved; a hand-written RFC 6455
implementation would be ours to keep safe against malformed frames, and aiohttp brings
six dependencies for features we do not use. The page is plain HTML, CSS and JavaScript
shipped in ``static/``: no build step, and nothing fetched from the internet.
"""
