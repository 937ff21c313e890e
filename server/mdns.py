"""Advertising the server over mDNS/DNS-SD, so controllers on the LAN find it by browsing:
``_oscjson._tcp`` (the OSCQuery namespace, HTTP) and ``_osc._udp`` (OSC itself).

Only when OSC listens beyond loopback (``qbdi serve --osc-host``) and the OSCQuery server
runs: announcing a loopback-only server to the network would invite clients it refuses.
Runs on the web thread's event loop (``zeroconf``'s asyncio API); registering probes the
network for a second or so in the background and never delays serving. On exit the
services are withdrawn (goodbye packets), so browsers forget the server at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence

log = logging.getLogger(__name__)

OSCQUERY_TYPE = "_oscjson._tcp.local."
OSC_TYPE = "_osc._udp.local."


def lan_addresses(host: str) -> list[str]:
    """The IPv4 addresses to announce for a server bound to ``host``: ``host`` itself, or
    every non-loopback IPv4 address of this machine for ``0.0.0.0``."""
    if host != "0.0.0.0":
        return [host]
    import ifaddr

    found = [ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips
             if isinstance(ip.ip, str) and not ip.ip.startswith("127.")]
    return sorted(set(found))


class MdnsAdvert:
    """Announces services on ``interfaces`` (addresses; all of them for ``0.0.0.0``)."""

    def __init__(self, host: str, name: str = "qbdi",
                 interfaces: Sequence[str] | None = None) -> None:
        self.host = host
        self.name = name
        self.addresses = lan_addresses(host)
        self.interfaces = list(interfaces) if interfaces is not None else (
            None if host == "0.0.0.0" else [host])
        self.registered: list[str] = []
        self._zeroconf = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, services: Sequence[tuple[str, int]]) -> None:
        """Announce ``(service type, port)`` pairs, in the background."""
        from zeroconf import InterfaceChoice, IPVersion
        from zeroconf.asyncio import AsyncZeroconf

        interfaces = InterfaceChoice.All if self.interfaces is None else self.interfaces
        self._zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        self._task = asyncio.create_task(self._register(services))

    async def _register(self, services: Sequence[tuple[str, int]]) -> None:
        await asyncio.gather(*(self._register_one(t, port) for t, port in services))

    async def _register_one(self, service_type: str, port: int) -> None:
        from zeroconf import ServiceInfo

        server = f"{socket.gethostname().split('.')[0]}.local."
        info = ServiceInfo(service_type, f"{self.name}.{service_type}", port=port,
                           addresses=[socket.inet_aton(a) for a in self.addresses],
                           server=server)
        try:
            await (await self._zeroconf.async_register_service(info, allow_name_change=True))
        except Exception as err:  # no multicast route, a name clash: serve on anyway
            log.warning("mDNS: cannot announce %s: %s", service_type, err)
            return
        self.registered.append(info.name)
        log.info("mDNS: announced %s on port %d (%s)", info.name, port,
                 ", ".join(self.addresses))

    async def announced(self) -> list[str]:
        """Wait for the announcements to finish; the names announced."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return list(self.registered)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._zeroconf is not None:
            await self._zeroconf.async_unregister_all_services()
            await self._zeroconf.async_close()
