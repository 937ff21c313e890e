"""The OSCQuery namespace over HTTP (read-only GETs; no token, since controllers that
browse OSCQuery cannot know one, and nothing here changes the server)."""

from __future__ import annotations

from urllib.parse import unquote

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from qbdi.server.oscquery import Namespace, respond
from qbdi.server.web.gate import Gate, host_name, is_ip_or_localhost
from qbdi.server.web.http import json_response, text


def mdns_or_ip(host_header: str | None) -> bool:
    """An IP address, ``localhost``, or a ``.local`` name (what mDNS browsers use)."""
    return bool(host_header) and (is_ip_or_localhost(host_header)
                                  or host_name(host_header).endswith(".local"))


class OscQuerySite:
    """``GET /PATH[?ATTRIBUTE|?HOST_INFO]`` -> JSON, per the OSCQuery proposal."""

    def __init__(self, gate: Gate, namespace: Namespace) -> None:
        self.gate = gate
        self.namespace = namespace

    def process_request(self, connection: ServerConnection, request: Request) -> Response:
        host = request.headers.get("Host")
        refusal = self.gate.sender(connection.remote_address[0]) or self.gate.rate()
        if not refusal and not mdns_or_ip(host):
            refusal = self.gate.refuse("refused_host", f"Host {host!r}")
        if refusal:
            return text(429 if refusal == "rate_limited" else 403, "forbidden")
        if request.method != "GET":
            return text(405, "GET only")
        if "Upgrade" in request.headers:
            return text(400, "LISTEN (WebSocket) is not supported; poll VALUE instead")
        path, _, query = request.path.partition("?")
        status, body = respond(self.namespace, unquote(path), query)
        return text(status, body) if isinstance(body, str) else json_response(status, body)

    async def handle(self, ws: ServerConnection) -> None:  # never opened: see above
        await ws.close()
