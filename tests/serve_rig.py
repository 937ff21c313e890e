"""``qbdi serve`` as a process the test drives from outside (not collected): on a pipe the
test never reads, or under a pseudo-terminal whose screen the test reads (or stops).

* :func:`blocked_pipe`: a pipe already full, so the server's first write to it blocks;
* :class:`PtyServe`: the server under a pty (40 x 120), its screen as plain text, keys
  typed in, and the terminal stoppable as with Ctrl-S (``tcflow(TCOOFF)``);
* :func:`wait_until_answering`: polls ``/qbdi/status`` until the server answers (the
  ready line may be on a stream the test does not read);
* :func:`free_udp_port`, :func:`serve_command`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from typing import Any

from stress_rig import OscClient

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Z0-9]|\x1b[=>78]|\x1b\][^\x07]*\x07")
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "qbdi.cli", "serve", *args]


def serve_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def blocked_pipe() -> tuple[int, int]:
    """``(read_fd, write_fd)`` of a pipe that is full: whoever writes to it next blocks
    (the test holds the read end and never reads)."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, F_SETPIPE_SZ, 4096)
    size = fcntl.fcntl(write_fd, F_GETPIPE_SZ)
    os.write(write_fd, b"x" * size)  # exactly the capacity: fills it without blocking
    return read_fd, write_fd


def wait_until_answering(client: OscClient, process: subprocess.Popen,
                         timeout_s: float = 30.0) -> dict[str, Any]:
    """The first ``/qbdi/status`` the server answers (it is ready then)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"qbdi serve exited with {process.returncode}"
        try:
            client.send("/qbdi/status")
            values = client.wait_for("/qbdi/status", timeout_s=0.5)
        except AssertionError:
            continue
        return dict(zip(values[::2], values[1::2], strict=True))
    raise AssertionError(f"qbdi serve did not answer /qbdi/status within {timeout_s} s")


class PtyServe:
    """``qbdi serve`` with stdin, stdout and stderr on the slave side of a new pty."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            serve_command(*args), stdin=self.slave, stdout=self.slave, stderr=self.slave,
            env={**(env or serve_env()), "TERM": "xterm-256color"}, close_fds=True)
        self.raw = bytearray()

    def read(self, timeout_s: float = 0.1) -> None:
        """Take what the server has written so far into :attr:`raw`."""
        end = time.monotonic() + timeout_s
        while True:
            readable, _, _ = select.select([self.master], [], [], max(end - time.monotonic(),
                                                                      0))
            if not readable:
                return
            try:
                self.raw += os.read(self.master, 65_536)
            except OSError:
                return

    def screen(self, since: int = 0) -> str:
        """Everything written since byte ``since``, escape sequences removed."""
        return ANSI.sub(b"", bytes(self.raw[since:])).decode("utf-8", "replace")

    def wait_for(self, text: str, timeout_s: float = 30.0, since: int = 0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.read(0.1)
            if text in self.screen(since):
                return self.screen(since)
            assert self.process.poll() is None or text in self.screen(since), (
                f"qbdi serve exited ({self.process.returncode}):\n{self.screen()[-2000:]}")
        raise AssertionError(f"{text!r} not on the screen within {timeout_s} s:\n"
                             f"{self.screen(since)[-2000:]}")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def stop_terminal(self) -> None:
        """Suspend output as Ctrl-S does: the server's next write to the terminal blocks."""
        termios.tcflow(self.slave, termios.TCOOFF)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
