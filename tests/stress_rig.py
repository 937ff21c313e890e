"""Shared parts of the fuzz, soak, load, stuck-note and port-loss tests (not collected).

* :class:`RecordingPorts`: in-memory ports whose output feeds a
  :class:`~qbdi.server.recorder.NoteRecorder` (and keeps a bounded tail, so a two-hour soak
  does not grow the test's own memory);
* :class:`LiveServer`: a :class:`~qbdi.server.loop.Server` serving on its own thread, with
  OSC over real UDP on 127.0.0.1 and a client that syncs on ``/qbdi/status``;
* :func:`jack_server`: a JACK dummy-driver server of the test's own, under a name no
  running server has (or a skip);
* :func:`rss_kb`: this process's resident memory (``VmRSS``).
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mido
import pytest
from jack_names import reusable_name
from pythonosc.osc_message import OscMessage

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.server.clocks import InternalClock
from qbdi.server.osc_transport import OscTransport, encode
from qbdi.server.ports import MemoryPorts
from qbdi.server.recorder import NoteRecorder
from qbdi.server.session import Server
from qbdi.settings import Preset

JACKD = ["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "128"]
JACKD_START_S = 30.0
REPLY_TIMEOUT_S = 5.0


def rss_kb() -> int:
    """Resident set size of this process in kB, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class RecordingPorts(MemoryPorts):
    """Memory ports that follow the output with a recorder and keep only a tail."""

    def __init__(self, now: Callable[[], float] = time.perf_counter, keep: int = 4096) -> None:
        super().__init__(now)
        self.recorder = NoteRecorder()
        self.sent = deque(maxlen=keep)  # type: ignore[assignment]
        self.messages = 0
        self._lock = threading.Lock()

    def send(self, message: mido.Message) -> None:
        super().send(message)
        if "out" not in self.gone:
            with self._lock:
                self.messages += 1
                self.recorder.feed(message)

    @property
    def sounding(self) -> set[tuple[int, int]]:
        with self._lock:
            return set(self.recorder.sounding)


def receive_matching(sock: socket.socket, accept: Callable[[OscMessage], bool],
                     timeout_s: float) -> OscMessage | None:
    """The first datagram on ``sock`` that ``accept`` takes (others are dropped), or None
    after ``timeout_s``. ``sock`` needs a short timeout of its own."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(65_535)
        except TimeoutError:
            continue
        message = OscMessage(data)
        if accept(message):
            return message
    return None


class OscClient:
    """A UDP client on an ephemeral port; :meth:`status` is the sync point."""

    def __init__(self, server_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.server = ("127.0.0.1", server_port)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def send(self, address: str, *args: Any) -> None:
        self.send_raw(encode(address, args))

    def drain(self) -> int:
        """Discard the replies waiting in the socket; how many there were.

        Every control message is answered, so a client that sends 1000 a second and reads
        nothing fills its receive buffer within seconds (a few thousand datagrams) and the
        kernel then drops what comes next, ``/qbdi/status`` included."""
        count = 0
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    self.sock.recvfrom(65_535)
                except BlockingIOError:
                    return count
                count += 1
        finally:
            self.sock.settimeout(0.05)

    def wait_for(self, address: str, timeout_s: float = REPLY_TIMEOUT_S) -> list[Any]:
        """Arguments of the next message at ``address``; earlier other replies are dropped."""
        message = receive_matching(self.sock, lambda m: m.address == address, timeout_s)
        if message is not None:
            return list(message.params)
        raise AssertionError(f"no {address} reply within {timeout_s} s: the server is not "
                             "answering")

    def status(self) -> dict[str, Any]:
        """Ask ``/qbdi/status``; every message sent before has been handled when it comes.

        The replies already waiting are discarded first (:meth:`wait_for` would skip them
        anyway), so a full receive buffer cannot drop the status reply."""
        self.drain()
        self.send("/qbdi/status")
        values = self.wait_for("/qbdi/status")
        return dict(zip(values[::2], values[1::2], strict=True))

    def close(self) -> None:
        self.sock.close()


class LiveServer:
    """A server on recording memory ports, serving on a thread; OSC on real UDP."""

    def __init__(self, checkpoint, state: Preset, *, clock=None,
                 rate_per_s: float = 1e9) -> None:
        # As `qbdi serve` does at start-up, and for the same reason: a full collection of
        # this process's heap (pytest's, half a million objects by the middle of the suite)
        # took up to 0.33 s, ten times a bar's 31 ms margin at 240 BPM. Not the server's.
        gc.collect()
        gc.freeze()
        self.state = state
        self.clock = clock or InternalClock(state.tempo_bpm)
        self.improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
        self.ports = RecordingPorts(self.clock.now_s)
        self.transport = OscTransport("127.0.0.1", 0, rate_per_s=rate_per_s)
        self.transport._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.server = Server(self.ports, self.clock, self.improviser, state,
                             feedback=self.transport,
                             status_counts=self.transport.status_counts)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.server.start()
        self.transport.start(self.server.post_osc)
        self.thread = threading.Thread(target=self._serve, name="qbdi-test-loop", daemon=True)
        self.thread.start()
        self.client = OscClient(self.transport.port)

    def _serve(self) -> None:
        try:
            self.server.serve(self.stop)
        except BaseException as err:  # reported by alive(): the loop must never die
            self.errors.append(err)

    def alive(self) -> bool:
        return self.thread.is_alive() and not self.errors

    def close(self) -> None:
        self.stop.set()
        self.server.wake()
        self.thread.join(timeout=5.0)
        self.transport.close()
        self.client.close()
        gc.unfreeze()


@contextmanager
def live_server(checkpoint, state: Preset, **kwargs: Any) -> Iterator[LiveServer]:
    rig = LiveServer(checkpoint, state, **kwargs)
    try:
        yield rig
    finally:
        rig.close()




def _jack_running(env: dict[str, str]) -> bool:
    return subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=10).returncode == 0


@contextmanager
def jack_server() -> Iterator[str]:
    """A dummy-driver JACK server of the block's own, under a name no running server has;
    yields the name (or skips the test where jackd cannot run). Later blocks reuse the name
    (:mod:`jack_names`: a killed server does not keep its place in JACK's registry).

    For the block, ``JACK_DEFAULT_SERVER`` names it in this process's environment: the
    processes a test starts inherit it, and libjack reads it at every client open, so the
    test's in-process rtmidi clients use it too. No test ever sees a user's JACK session,
    a ``qbdi serve`` running beside the suite, or another run's server, whose ports have
    the same names. ``JACK_NO_START_SERVER`` keeps a client from starting a server of its
    own if ours is gone."""
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        pytest.skip("jackd is not installed (apt-get install jackd2): cannot test real ports")
    name = reusable_name("qbdi-test")
    env = {"JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"}
    # Its log goes to a file: a pipe that nobody reads fills up with xrun reports under
    # load, and jackd then stops in the middle of a write.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(["jackd", "-n", name, *JACKD[1:]],
                                   env={**os.environ, **env}, stdout=log, stderr=log)
        # 0.6 s here; far longer while other JACK servers on the machine start or stop
        deadline = time.monotonic() + JACKD_START_S
        while not _jack_running({**os.environ, **env}):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                log.seek(0)
                pytest.skip(f"jackd could not start a dummy-driver server within "
                            f"{JACKD_START_S:.0f} s: {_jackd_said(log.read())}")
            time.sleep(0.1)
        try:
            with _environment(env):
                yield name
        finally:
            process.terminate()
            process.wait(timeout=10)
            # the semaphores of clients that were still open when it stopped (a failed test)
            for leftover in Path("/dev/shm").glob(f"jack_sem.*_{name}_*"):
                leftover.unlink(missing_ok=True)


def _jackd_said(log: bytes) -> str:
    """jackd's last few lines but its banner and xrun reports (e.g. "Too many servers
    already active": JACK runs at most 8 servers on a machine)."""
    banner = ("jackdmp", "Copyright", "WARRANTY", "free software", "conditions", "COPYING",
              "XRun", "message buffer overruns")
    lines = [line.strip() for line in log.decode(errors="replace").splitlines()
             if line.strip() and not any(word in line for word in banner)]
    return "; ".join(lines[-4:]) or "nothing"


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` for the block, as it was after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def echo_preset(folder, tempo_bpm: float = 480.0):
    """A preset file in ``folder`` that echoes the input at ``tempo_bpm`` (480: a bar is
    half a second, so a routing test hears its notes back quickly)."""
    preset = folder / "echo.toml"
    preset.write_text(f'tempo_bpm = {tempo_bpm}\n[improviser]\nmode = "echo"\n')
    return preset


def start_serve_jack(checkpoint, preset, *args: str) -> subprocess.Popen:
    """``qbdi serve --backend jack`` on ``checkpoint`` and ``preset`` with OSC on any free
    port, quiet, plus ``args``; stdout and stderr piped as unbuffered text."""
    return subprocess.Popen(
        [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "jack", "--model",
         str(checkpoint), "--preset", str(preset), "--osc-port", "0", "--quiet", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def jack_backend() -> mido.Backend:
    return mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
