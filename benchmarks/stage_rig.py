"""``qbdi serve`` under the conditions of ``bench_stage.py``: quiet, a flood of bad OSC
with stdout and stderr blocked, and the live view on a pseudo-terminal."""

from __future__ import annotations

import contextlib
import os
import pty
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from qbdi.server.osc_transport import encode

FLOOD_PER_S = 1_000
BAD = (b"\x00not osc" * 4, encode("/qbdi/nowhere", [1]), encode("/qbdi/bits", ["lots"]),
       encode("/qbdi/mode", [3.5]))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _full_pipe() -> tuple[int, int]:
    import fcntl

    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, 1031, 4096)  # F_SETPIPE_SZ
    os.write(write_fd, b"x" * fcntl.fcntl(write_fd, 1032))  # F_GETPIPE_SZ: now full
    return read_fd, write_fd


def _flood(port: int, stop: threading.Event) -> None:
    """``FLOOD_PER_S`` bad datagrams a second, ten every 10 ms, until ``stop``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent, started_s = 0, time.perf_counter()
    while not stop.is_set():
        due = int((time.perf_counter() - started_s) * FLOOD_PER_S)
        while sent < due:
            sock.sendto(BAD[sent % len(BAD)], ("127.0.0.1", port))
            sent += 1
        time.sleep(0.01)
    sock.close()


def _drain(fd: int, stop: threading.Event) -> None:
    """Read a terminal as fast as it is written (a terminal that keeps up)."""
    import select

    while not stop.is_set():
        if select.select([fd], [], [], 0.1)[0]:
            try:
                os.read(fd, 65_536)
            except OSError:
                return


@contextlib.contextmanager
def serving(condition: str, model: Path, preset: Path, name: str, osc_port: int,
            feedback_port: int) -> Iterator[None]:
    """``qbdi serve`` under ``condition`` until the block ends (then SIGTERM)."""
    command = [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "jack", "--name", name,
               "--model", str(model), "--preset", str(preset), "--osc-port", str(osc_port),
               "--feedback", f"127.0.0.1:{feedback_port}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "xterm-256color"}
    stop = threading.Event()
    helpers: list[threading.Thread] = []
    fds: list[int] = []
    if condition == "view":
        master, slave = pty.openpty()
        process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env)
        fds += [master, slave]
        helpers.append(threading.Thread(target=_drain, args=(master, stop), daemon=True))
    else:
        out: int = subprocess.DEVNULL
        if condition == "flood":
            read_fd, out = _full_pipe()
            fds.append(read_fd)
            helpers.append(threading.Thread(target=_flood, args=(osc_port, stop), daemon=True))
        process = subprocess.Popen([*command, "--no-view"], stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=out, env=env)
        if out != subprocess.DEVNULL:
            os.close(out)  # the server holds it now
    try:
        _wait_ready(osc_port, process)
        for helper in helpers:
            helper.start()
        yield
    finally:
        stop.set()
        process.terminate()
        process.wait(timeout=10)
        for fd in fds:
            os.close(fd)


def _wait_ready(osc_port: int, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Until the server answers ``/qbdi/status`` (its output may be unreadable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"qbdi serve exited with {process.returncode}")
            sock.sendto(encode("/qbdi/status", []), ("127.0.0.1", osc_port))
            with contextlib.suppress(TimeoutError):
                while True:
                    data, _ = sock.recvfrom(65_535)
                    if b"/qbdi/status" in data:
                        return
    raise RuntimeError("qbdi serve did not answer /qbdi/status")
