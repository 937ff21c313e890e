"""Shared by the browser-surface and OSCQuery tests (not collected): ``qbdi serve`` with
``--web``/``--oscquery`` in a subprocess, and a real UDP OSC client for it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message import OscMessage

from qbdi.server.osc_transport import encode


@dataclass
class Served:
    process: subprocess.Popen
    osc_port: int
    web_url: str | None
    oscquery: tuple[str, int] | None
    ready_line: str

    @property
    def web_base(self) -> str:
        """``http://HOST:PORT`` of the surface, without the token."""
        assert self.web_url is not None
        return "/".join(self.web_url.split("/")[:3])

    @property
    def token(self) -> str:
        assert self.web_url is not None
        return self.web_url.rstrip("/").rsplit("/", 1)[1]


@contextmanager
def serve(*flags: str, timeout_s: float = 60.0) -> Iterator[Served]:
    """``qbdi serve --backend memory --osc-port 0 --quiet FLAGS``, stopped on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "memory", "--osc-port", "0",
         "--quiet", *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        ready = process.stdout.readline()
        if "ready" not in ready:
            process.kill()
            raise AssertionError(f"qbdi serve did not start: {process.stderr.read()[-2000:]}")
        osc_port = int(re.search(r"osc [\d.]+:(\d+)", ready).group(1))
        found = re.search(r"oscquery ([\d.]+):(\d+)", ready)
        oscquery = (found.group(1), int(found.group(2))) if found else None
        web_url = None
        if "--web" in flags:
            web_line = process.stdout.readline()
            web_url = re.search(r"web: (\S+)", web_line).group(1)
        yield Served(process, osc_port, web_url, oscquery, ready)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class OscClient:
    """A UDP OSC client on loopback: send, and read the replies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5.0)

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(encode(address, list(args)), ("127.0.0.1", self.port))

    def drain(self) -> None:
        """Forget replies not read yet (so the next answer is a fresh one)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recvfrom(65_535)
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(5.0)

    def value(self, address: str) -> list[Any]:
        """The server's value of ``address``, from a ``/qbdi/status`` query."""
        self.drain()
        self.send("/qbdi/status")
        while True:
            message = OscMessage(self.sock.recvfrom(65_535)[0])
            if message.address == address:
                return list(message.params)

    def status(self) -> dict[str, Any]:
        self.drain()
        self.send("/qbdi/status")
        while True:
            message = OscMessage(self.sock.recvfrom(65_535)[0])
            if message.address == "/qbdi/status":
                pairs = list(message.params)
                return dict(zip(pairs[::2], pairs[1::2], strict=True))

    def close(self) -> None:
        self.sock.close()


@contextmanager
def osc_client(port: int) -> Iterator[OscClient]:
    client = OscClient(port)
    try:
        yield client
    finally:
        client.close()
