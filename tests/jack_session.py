"""A JACK server of a test's own, and the programs it starts on it (not collected).

:func:`session` starts ``jackd -n UNIQUE`` on the dummy driver, with ``JACK_DEFAULT_SERVER``
set for every process it starts and ``JACK_NO_START_SERVER`` so none starts another; at
the end it stops each program by its own process id (SIGINT first, so JACK's tools leave
the server cleanly), then the server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from jack_names import reusable_name

RATE_HZ = 48_000
PERIOD_FRAMES = 128  # 2.7 ms cycles; the soak asks for longer ones


def need(*programs: str) -> None:
    """Skip, saying what to install, where a program is missing."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/setup.sh installs them)")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Output:
    """A started program's output lines, read on a thread of their own, with the time."""

    lines: list[tuple[float, str]] = field(default_factory=list)

    def follow(self, stream) -> None:
        def read() -> None:
            for line in stream:
                self.lines.append((time.monotonic(), line.rstrip("\n")))

        threading.Thread(target=read, daemon=True).start()

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


class Session:
    """A JACK server of the session's own and the programs started on it."""

    def __init__(self, tag: str = "clients", period_frames: int = PERIOD_FRAMES) -> None:
        self.period_frames = period_frames
        self.name = reusable_name(f"qbdi-{tag}")
        self.env = {**os.environ, "JACK_DEFAULT_SERVER": self.name,
                    "JACK_NO_START_SERVER": "1", "PYTHONUNBUFFERED": "1"}
        self.processes: list[subprocess.Popen] = []
        self.jackd: subprocess.Popen | None = None
        self._log = None

    def server_log(self) -> str:
        """What the server printed so far (its xruns among it)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    # -- the JACK server ------------------------------------------------------------------
    def start_jack(self, attempts: int = 5) -> None:
        """Start the server, or skip saying why. JACK allows a few servers per machine:
        while others' take every slot ("Too many servers"), wait and try again."""
        need("jackd", "jack_lsp", "jack_connect")
        error = ""
        for _ in range(attempts):
            error = self._try_jack()
            if not error:
                return
            if "Too many servers" not in error:
                break
            time.sleep(3.0)
        pytest.skip(f"jackd -n {self.name} could not start a dummy-driver server: {error}")

    def _try_jack(self) -> str:
        """Start jackd; "" once it answers, else what it printed."""
        # Its messages go to a file: a pipe nobody reads fills up (xruns are reported on
        # every one) and would stall the server.
        log = tempfile.TemporaryFile()  # noqa: SIM115 (kept for server_log() while it runs)
        driver = ["-d", "dummy", "-r", str(RATE_HZ), "-p", str(self.period_frames)]
        self.jackd = subprocess.Popen(["jackd", "-n", self.name, "--no-realtime", *driver],
                                      env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.jackd.poll() is None:
            if self._lsp_ok():
                self._log = log
                return ""
            time.sleep(0.1)
        log.seek(0)
        error = log.read().decode(errors="replace")[-400:] or "no answer within 15 s"
        log.close()
        self._stop(self.jackd, signal.SIGTERM, timeout_s=20)
        self.jackd = None
        return error

    def _lsp_ok(self) -> bool:
        try:
            return subprocess.run(["jack_lsp"], env=self.env, capture_output=True,
                                  timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def ports(self) -> list[str]:
        out = subprocess.run(["jack_lsp"], env=self.env, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.splitlines()

    def wait_for_port(self, name: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if name in self.ports():
                return
            time.sleep(0.05)
        raise AssertionError(f"no JACK port {name!r}; there are {self.ports()}")

    def connect(self, source: str, destination: str) -> None:
        self.wait_for_port(source)
        self.wait_for_port(destination)
        subprocess.run(["jack_connect", source, destination], env=self.env, check=True,
                       timeout=10)

    def disconnect(self, source: str, destination: str) -> None:
        subprocess.run(["jack_disconnect", source, destination], env=self.env, check=True,
                       timeout=10)

    # -- programs -------------------------------------------------------------------------
    def start(self, *command: str, **env: str) -> tuple[subprocess.Popen, Output]:
        """Start a program on this session's JACK server (with ``env`` added to its
        environment); its output lines are collected."""
        process = subprocess.Popen(list(command), env={**self.env, **env},
                                   stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        self.processes.append(process)
        output = Output()
        output.follow(process.stdout)
        return process, output

    def transport(self, *commands: str) -> None:
        """jack_transport commands (``locate 0``, ``play``, ``stop``), as typed at its
        prompt."""
        need("jack_transport")
        subprocess.run(["jack_transport"], env=self.env, input="\n".join(commands) + "\n",
                       capture_output=True, text=True, timeout=10)

    def close(self) -> None:
        """Stop every program, then the server. SIGINT first: JACK's tools leave the
        server cleanly on it (on SIGTERM they die, and the server then waits 5 s for them
        at exit). A server that has to be killed leaves its entry in JACK's registry, which
        holds eight servers per machine."""
        for process in reversed(self.processes):
            self._stop(process, signal.SIGINT)
        if self.jackd is not None:
            self._stop(self.jackd, signal.SIGTERM, timeout_s=20)
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM,
              timeout_s: float = 5.0) -> None:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextmanager
def session(tag: str = "clients", period_frames: int = PERIOD_FRAMES) -> Iterator[Session]:
    """A session with its JACK server running, a cycle every ``period_frames`` frames at
    48 kHz; everything stops at the end."""
    jack = Session(tag, period_frames)
    try:
        jack.start_jack()
        yield jack
    finally:
        jack.close()
