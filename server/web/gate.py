"""The checks every HTTP request to the web ports passes before anything is served, and
the counters and bounded logs of what they refuse.

* **Sender**: loopback always; another address only when the server listens beyond
  loopback and the address is in the allowlist (as for OSC).
* **Rate**: at most ``rate_per_s`` requests a second over the whole server (a token bucket
  of one second's worth); more are answered 429.
* **Host**: the ``Host`` header must name an IP address or ``localhost``, so a web page
  whose domain is re-pointed at this machine (DNS rebinding) is refused even before the
  token is checked.
* **Token** (the control surface only): the path starts with the secret printed at
  start-up, compared in constant time.
* **Origin** (WebSocket handshakes only): the page that opens it must come from this very
  server (``Origin`` equals ``http://`` + ``Host``), so another site the browser has open
  cannot drive the surface even if it learnt the address.

Refusals are counted per kind; each kind is logged the first 10 times, then every 100th.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections import Counter
from collections.abc import Iterable

from qbdi.server.osc_transport import TokenBucket, is_loopback

log = logging.getLogger(__name__)
LOG_FIRST, LOG_EVERY = 10, 100


class BoundedLog:
    """Counts events by kind; logs the first ``LOG_FIRST`` of each, then every
    ``LOG_EVERY``-th, so a flood cannot fill the log."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.counts: Counter[str] = Counter()
        self._log = logger

    def count(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        n = self.counts[kind]
        if n <= LOG_FIRST or n % LOG_EVERY == 0:
            self._log.warning("web: %s (#%d): %s", kind, n, detail[:200])


def host_name(host_header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8800`` -> ``::1``)."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


def is_ip_or_localhost(host_header: str) -> bool:
    name = host_name(host_header)
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Gate:
    """The request checks of one listening socket."""

    def __init__(self, host: str, allow: Iterable[str], rate_per_s: float,
                 refusals: BoundedLog) -> None:
        self.loopback_only = is_loopback(host)
        self.allow = frozenset(allow)
        self.refusals = refusals
        self._bucket = TokenBucket(rate_per_s)

    def refuse(self, kind: str, detail: str) -> str:
        self.refusals.count(kind, detail)
        return kind

    def sender(self, peer: str) -> str | None:
        """None when ``peer`` may send requests, else the refusal's kind."""
        if is_loopback(peer) or (not self.loopback_only and peer in self.allow):
            return None
        return self.refuse("refused_sender", f"{peer} is not in the allowlist")

    def rate(self) -> str | None:
        return None if self._bucket.take() else self.refuse("rate_limited", "requests")

    def host(self, host_header: str | None) -> str | None:
        if host_header and is_ip_or_localhost(host_header):
            return None
        return self.refuse("refused_host", f"Host {host_header!r}")

    def token(self, given: str, expected: str) -> str | None:
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return self.refuse("refused_token", "a request without the right token")

    def origin(self, origin: str | None, host_header: str | None) -> str | None:
        if origin is not None and host_header and origin == f"http://{host_header}":
            return None
        return self.refuse("refused_origin", f"WebSocket from Origin {origin!r}")
