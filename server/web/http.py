"""HTTP responses for the web ports (served through ``websockets``' handshake hook)."""

from __future__ import annotations

import http
import json
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Response

# No script, style, image or connection from anywhere but this server; never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:;"
                               " frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def response(status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
             headers: dict[str, str] | None = None) -> Response:
    """A complete response; the connection closes after it."""
    all_headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)),
                           "Connection": "close", **SECURITY_HEADERS, **(headers or {})})
    return Response(status, http.HTTPStatus(status).phrase, all_headers, body)


def text(status: int, message: str) -> Response:
    return response(status, (message + "\n").encode())


def json_response(status: int, data: Any) -> Response:
    if data is None:
        return response(status)
    return response(status, json.dumps(data).encode(), "application/json")
