"""OSC over UDP: a socket thread that parses datagrams and enqueues messages, and feedback.

The receiving thread only parses and enqueues (``on_message(address, args, sender)``); the
loop thread handles them. At this edge every refusal is counted, and logged in bounded
amounts (:class:`~qbdi.server.bounded_log.BoundedLog`: the first few of each kind, then a
summary line every 10 s):

* a datagram that does not parse is counted in ``malformed``;
* senders outside the allowlist are dropped and counted in ``refused_sender`` (binding
  beyond loopback needs an allowlist: see :func:`check_bind`);
* more than ``rate_per_s`` messages a second (a token bucket of one second's worth) are
  dropped and counted in ``rate_limited``.

Feedback goes out of the same socket, so a client that sent from a port hears replies
there. The socket is non-blocking: a reply that cannot be sent at once (the send buffer is
full: ``EAGAIN``/``ENOBUFS``) is dropped and counted (``feedback_dropped``), so sending
never makes the loop thread wait.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from qbdi.server.bounded_log import BoundedLog
from qbdi.server.errors import OscSetupError

log = logging.getLogger(__name__)

Address = tuple[str, int]
OnOsc = Callable[[str, list[Any], Address], None]
MAX_DATAGRAM_BYTES = 65_535
MAX_BUNDLE_DEPTH = 8  # bundles inside bundles; deeper ones are refused as malformed
BUNDLE_PREFIX = b"#bundle\x00"
SELECT_S = 0.1  # the receiving thread notices close() within this


def check_bundle(data: bytes, depth: int = 0) -> None:
    """Refuse (``ParseError``) a bundle python-osc would mis-parse: an element size that is
    negative (python-osc then loops forever on that one datagram), zero, past the end, or
    an element that is neither a message nor a bundle (python-osc logs each one), and
    nesting deeper than ``MAX_BUNDLE_DEPTH``. Messages are left to python-osc."""
    if not data.startswith(BUNDLE_PREFIX):
        return
    if depth >= MAX_BUNDLE_DEPTH:
        raise ParseError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    index = len(BUNDLE_PREFIX) + 8  # the prefix, then the 8-byte timetag
    if len(data) < index:
        raise ParseError("bundle shorter than its timetag")
    while index < len(data):
        if index + 4 > len(data):
            raise ParseError("bundle element size cut short")
        size = int.from_bytes(data[index : index + 4], "big", signed=True)
        index += 4
        if size <= 0 or index + size > len(data):
            raise ParseError(f"bundle element size {size} outside the datagram")
        element = data[index : index + size]
        if not element.startswith((b"/", BUNDLE_PREFIX)):
            raise ParseError("bundle element is neither a message nor a bundle")
        check_bundle(element, depth + 1)
        index += size


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_bind(host: str, allow: Iterable[str]) -> frozenset[str]:
    """The allowlist to use for binding ``host``; refuses an open bind without one.

    Loopback binds accept loopback senders only (all a loopback socket can hear).
    """
    allowed = frozenset(allow)
    if not is_loopback(host) and not allowed:
        raise OscSetupError(f"--osc-host {host} accepts packets from the network: name the "
                            "clients allowed to control the server with --osc-allow IP[,IP]")
    for entry in allowed:
        try:
            ipaddress.ip_address(entry)
        except ValueError as err:
            raise OscSetupError(f"--osc-allow: {entry!r} is not an IP address") from err
    return allowed


def parse_target(text: str) -> Address:
    """``HOST:PORT`` -> ``(host, port)``; raises :class:`OscSetupError`."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65_536:
        raise OscSetupError(f"--feedback expects HOST:PORT, got {text!r}")
    return host, int(port)


def encode(address: str, args: Sequence[Any]) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class TokenBucket:
    """``rate_per_s`` events a second on average, bursts of up to one second's worth."""

    def __init__(self, rate_per_s: float, now_s: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self._now_s = now_s
        self._tokens = rate_per_s
        self._last_s = now_s()

    def take(self) -> bool:
        now_s = self._now_s()
        self._tokens = min(self.rate_per_s, self._tokens + (now_s - self._last_s) * self.rate_per_s)
        self._last_s = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class OscCounters:
    received: int = 0
    malformed: int = 0
    rate_limited: int = 0
    refused_sender: int = 0


class OscTransport:
    """A UDP socket bound to ``host:port`` (port 0 = any free port, see ``port``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9000,
                 allow: Iterable[str] = (), feedback: Address | None = None,
                 rate_per_s: float = 200.0) -> None:
        self._allow = check_bind(host, allow)
        self._loopback_only = is_loopback(host)
        self.on_message: OnOsc = lambda address, args, sender: None  # set by start()
        self.feedback = feedback
        self.counters = OscCounters()
        self._bucket = TokenBucket(rate_per_s)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except (OSError, OverflowError) as err:  # OverflowError: a port outside 0-65535
            self._sock.close()
            raise OscSetupError(f"cannot listen for OSC on {host}:{port}: {err}") from err
        # Non-blocking: sends from the loop thread never wait; the receiving thread waits in
        # select with a timeout, so it notices close() promptly.
        self._sock.setblocking(False)
        self.input_log = BoundedLog(log, "OSC input")
        self.feedback_log = BoundedLog(log, "OSC feedback")
        self.host, self.port = self._sock.getsockname()[:2]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive_loop, name="qbdi-osc", daemon=True)

    def start(self, on_message: OnOsc) -> None:
        """Hand every accepted message to ``on_message`` (on this transport's thread)."""
        self.on_message = on_message
        self._thread.start()

    def status_counts(self) -> list[Any]:
        """The transport's counters as ``/qbdi/status`` name, value pairs."""
        c = self.counters
        return ["osc_malformed", c.malformed, "osc_rate_limited", c.rate_limited,
                "osc_refused_sender", c.refused_sender,
                "feedback_dropped", self.feedback_log.count("dropped")]

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
        self._sock.close()
        self.input_log.flush()
        self.feedback_log.flush()

    def _receive_loop(self) -> None:
        while not self._closed.is_set():
            readable, _, _ = select.select([self._sock], [], [], SELECT_S)
            self.input_log.tick()
            self.feedback_log.tick()
            while readable and not self._closed.is_set():
                try:
                    data, sender = self._sock.recvfrom(MAX_DATAGRAM_BYTES)
                except (BlockingIOError, InterruptedError):
                    break  # read everything that was waiting
                except OSError as err:  # e.g. ECONNREFUSED left by an ICMP error: go on
                    self.input_log.event("socket errors", "OSC socket error: %s", err)
                    break
                self.receive(data, (sender[0], sender[1]))

    def _sender_allowed(self, sender: Address) -> bool:
        return is_loopback(sender[0]) or (not self._loopback_only and sender[0] in self._allow)

    def receive(self, data: bytes, sender: Address) -> None:
        """Handle one datagram: check sender, parse, rate-limit, enqueue each message."""
        if not self._sender_allowed(sender):
            self.counters.refused_sender += 1
            self.input_log.event("refused senders", "OSC packet from %s refused: not in "
                                 "--osc-allow", sender[0])
            return
        try:
            check_bundle(data)
            messages = [timed.message for timed in OscPacket(data).messages]
        except ParseError as err:
            self._malformed(sender, data, err)
            return
        except Exception as err:
            self._malformed(sender, data, err)
            return
        for message in messages:
            if not self._bucket.take():
                self.counters.rate_limited += 1
                self.input_log.event("rate-limited", "OSC message %s from %s dropped: more "
                                     "than --osc-rate %g messages a second",
                                     message.address[:64], sender[0], self._bucket.rate_per_s)
                continue
            self.counters.received += 1
            self.on_message(message.address, list(message.params), sender)

    def _malformed(self, sender: Address, data: bytes, err: Exception) -> None:
        self.counters.malformed += 1
        self.input_log.event("malformed", "malformed OSC packet from %s:%d (%d bytes): %s",
                             sender[0], sender[1], len(data), str(err)[:200])

    def send(self, address: str, args: Sequence[Any], to: Address | None = None) -> None:
        """Send one message to ``to`` and to the feedback target (once when they agree)."""
        try:
            dgram = encode(address, args)
        except Exception as err:  # a value OSC cannot carry: log it, never stop the loop
            self.feedback_log.event("unencodable", "OSC feedback %s %r cannot be encoded: %s",
                                    address, list(args)[:8], err, level=logging.ERROR)
            return
        targets = {t for t in (to, self.feedback) if t is not None}
        for target in targets:
            try:
                self._sock.sendto(dgram, target)
            except (BlockingIOError, InterruptedError):
                self.feedback_log.event("dropped", "OSC feedback to %s:%d dropped: the send "
                                        "buffer is full", target[0], target[1])
            except OSError as err:  # ENOBUFS, an unreachable peer: drop, count, go on
                self.feedback_log.event("dropped", "OSC feedback to %s:%d dropped: %s",
                                        target[0], target[1], err)
