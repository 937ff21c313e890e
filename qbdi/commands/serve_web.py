"""``qbdi serve`` options for the browser control surface (``--web``) and OSC discovery
(``--oscquery``, announced over mDNS when OSC listens on the LAN), and their assembly.

Both listen on 127.0.0.1 unless told otherwise; a non-loopback address needs an allowlist,
as OSC does. All of it runs on one web thread (:mod:`qbdi.server.web`); the loop only
publishes into a :class:`~qbdi.server.web.hub.WebHub`.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qbdi.commands import arg_types
from qbdi.presets import list_presets
from qbdi.server.control import Feedback
from qbdi.server.errors import WebSetupError
from qbdi.server.events import LoopListener
from qbdi.server.osc_transport import is_loopback
from qbdi.settings import Preset

DEFAULT_WEB_PORT = 8800
SAME_AS_OSC = -1  # --oscquery without a port: the OSC port's number, over TCP
WEB_REQUESTS_PER_S = 50.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web", type=arg_types.port, nargs="?", const=DEFAULT_WEB_PORT,
                        default=None, metavar="PORT",
                        help="serve the browser control surface on this TCP port (default "
                             f"{DEFAULT_WEB_PORT}; 0 = any free port); its address, with a "
                             "secret token, is printed after the ready line")
    parser.add_argument("--web-host", default="127.0.0.1",
                        help="address the browser surface listens on (default 127.0.0.1; "
                             "any other needs --web-allow or --osc-allow)")
    parser.add_argument("--web-allow", default=None,
                        help="comma-separated client IPs allowed to open the surface when "
                             "--web-host is not loopback (default: those of --osc-allow)")
    parser.add_argument("--oscquery", type=arg_types.port, nargs="?", const=SAME_AS_OSC,
                        default=None, metavar="PORT",
                        help="serve the OSC address table as an OSCQuery namespace over HTTP "
                             "on this TCP port (default: the OSC port's number), on the OSC "
                             "host with the OSC allowlist; announced over mDNS when "
                             "--osc-host is not loopback")
    parser.add_argument("--no-mdns", action="store_true",
                        help="do not announce the OSCQuery namespace and OSC over mDNS")


def split_ips(text: str | None) -> list[str]:
    return [entry.strip() for entry in (text or "").split(",") if entry.strip()]


def check_web_bind(host: str, allow: Sequence[str]) -> frozenset[str]:
    """The allowlist for the surface on ``host``; refuses an open bind without one."""
    if not is_loopback(host) and not allow:
        raise WebSetupError(f"--web-host {host} accepts connections from the network: name "
                            "the clients allowed with --web-allow IP[,IP] (or --osc-allow)")
    for entry in allow:
        try:
            ipaddress.ip_address(entry)
        except ValueError as err:
            raise WebSetupError(f"--web-allow: {entry!r} is not an IP address") from err
    return frozenset(allow)


def preset_names(user_dir: Path | None) -> list[str]:
    """What ``/qbdi/preset`` can load: the user's presets, then the shipped ones."""
    mine = sorted(p.stem for p in user_dir.glob("*.toml")) if user_dir is not None else []
    return mine + [name for name in list_presets() if name not in mine]


class WebParts:
    """The surface, the OSCQuery server and the mDNS announcement of one ``qbdi serve``:
    built from the options before anything opens (so bad options fail first), started
    once the OSC socket is bound, closed on exit."""

    def __init__(self, args: argparse.Namespace, osc_allow: Sequence[str],
                 user_dir: Path | None) -> None:
        self.args = args
        self.web_allow = (check_web_bind(args.web_host, split_ips(args.web_allow)
                                         if args.web_allow is not None else osc_allow)
                          if args.web is not None else frozenset())
        self.osc_allow = frozenset(osc_allow)
        self.choices = {"presets": preset_names(user_dir)}
        self.token = secrets.token_urlsafe(16)
        self.hub: Any = None
        self.refusals: Any = None
        if self.enabled:  # imported only when asked for: serve's start-up stays as it was
            from qbdi.server.web.gate import BoundedLog
            from qbdi.server.web.hub import WebHub

            self.hub = WebHub() if args.web is not None else None
            self.refusals = BoundedLog()
        self.lines: list[str] = []  # printed after the ready line
        self.ready_note = ""  # appended to the ready line
        self.surface: Any = None
        self.mdns: Any = None
        self._thread: Any = None

    @property
    def enabled(self) -> bool:
        return self.args.web is not None or self.args.oscquery is not None

    def feedback(self, osc: Feedback) -> Feedback:
        if self.hub is None:
            return osc
        from qbdi.server.web.hub import WebFeedback

        return WebFeedback(osc, self.hub)

    def listeners(self) -> list[LoopListener]:
        if self.hub is None:
            return []
        from qbdi.server.web.hub import WebListener

        return [WebListener(self.hub)]

    def status_counts(self) -> list[Any]:
        """``/qbdi/status`` pairs: pages open, commands, events dropped, refusals by kind."""
        pairs: list[Any] = []
        if self.refusals is None:
            return pairs
        if self.surface is not None and self.hub is not None:
            pairs += ["web_pages", len(self.surface.pages), "web_commands",
                      self.surface.commands, "web_dropped",
                      self.surface.dropped + self.hub.dropped]
        # A copy first (atomic under the GIL): the web thread may add a kind meanwhile.
        for kind, count in sorted(self.refusals.counts.copy().items()):
            pairs += [f"web_{kind}", count]
        return pairs

    def start(self, post: Callable[[str, list[Any], Any], None], state: Callable[[], Preset],
              osc_host: str, osc_port: int) -> None:
        """Bind and serve (raises :class:`WebSetupError`); fills :attr:`lines` and
        :attr:`ready_note`."""
        from qbdi.server.web.thread import WebThread

        if not self.enabled:
            return
        sites = []
        if self.args.web is not None:
            sites.append(self._surface_site(post))
        if self.args.oscquery is not None:
            sites.append(self._oscquery_site(state, osc_host, osc_port))
        self._thread = WebThread()
        bound = self._thread.start(sites, self._started(osc_host, osc_port))
        if self.args.web is not None:
            self.lines.append("qbdi serve: web: " + " ".join(self.urls(bound[0][1])))
        if self.args.oscquery is not None:
            host, port = bound[-1]
            self.ready_note = f", oscquery {host}:{port}" + (
                " (mDNS)" if self.mdns is not None else "")

    def urls(self, port: int) -> list[str]:
        from qbdi.server.mdns import lan_addresses

        host = self.args.web_host
        hosts = [*lan_addresses(host), "127.0.0.1"] if host == "0.0.0.0" else [host]
        return [f"http://{h}:{port}/{self.token}/" for h in hosts]

    def _surface_site(self, post: Callable[[str, list[Any], Any], None]) -> tuple:
        from qbdi.server.web.gate import Gate
        from qbdi.server.web.surface import Surface

        gate = Gate(self.args.web_host, self.web_allow, WEB_REQUESTS_PER_S, self.refusals)
        self.surface = Surface(gate, self.token, post, self.choices)
        return self.surface, self.args.web_host, self.args.web

    def _oscquery_site(self, state: Callable[[], Preset], osc_host: str,
                       osc_port: int) -> tuple:
        from qbdi.server.oscquery import HostInfo, Namespace
        from qbdi.server.web.gate import Gate
        from qbdi.server.web.oscquery_site import OscQuerySite

        gate = Gate(osc_host, self.osc_allow, WEB_REQUESTS_PER_S, self.refusals)
        host_ip = None if osc_host == "0.0.0.0" else osc_host
        namespace = Namespace(HostInfo(osc_port, host_ip), state, self.choices)
        port = self.args.oscquery
        # The OSC port's number over TCP; "any" when OSC itself took any free port.
        port = (self.args.osc_port if port == SAME_AS_OSC else port)
        return OscQuerySite(gate, namespace), osc_host, port

    def _started(self, osc_host: str, osc_port: int) -> Callable[..., Any]:
        """Once bound (on the web thread): attach the hub, announce over mDNS."""
        async def started(loop: Any, bound: list[tuple[str, int]]) -> None:
            from qbdi.server.mdns import OSC_TYPE, OSCQUERY_TYPE, MdnsAdvert

            if self.hub is not None and self.surface is not None:
                self.hub.attach(loop, self.surface.on_events)
            if self.args.oscquery is None or self.args.no_mdns or is_loopback(osc_host):
                return
            self.mdns = MdnsAdvert(osc_host)
            await self.mdns.start([(OSCQUERY_TYPE, bound[-1][1]), (OSC_TYPE, osc_port)])
            self._thread.on_stop(self.mdns.stop)

        return started

    def close(self) -> None:
        if self.hub is not None:
            self.hub.detach()
        if self._thread is not None:
            self._thread.close()
