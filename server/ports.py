"""MIDI ports behind one small interface: real ones (mido + python-rtmidi) and in-memory ones.

A :class:`Ports` object opens one input and one output. The input calls ``on_message`` on
the backend's thread for every message (the server only enqueues there); ``send`` sends
one message or raises :class:`~qbdi.server.errors.PortLost`.

Backends are chosen by setting (``alsa``, ``jack``, ``coremidi``, ``windows``, ``memory``) or
detected; detection never starts anything (``JACK_NO_START_SERVER`` is set) and when no
backend works it raises :class:`~qbdi.server.errors.BackendUnavailable` saying what to start.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

import mido

from qbdi.server.errors import BackendUnavailable, PortLost, PortNotFound

# Detection must not launch a JACK server behind the user's back.
os.environ.setdefault("JACK_NO_START_SERVER", "1")

DEFAULT_IN = "qbdi in"
DEFAULT_OUT = "qbdi out"
CLIENT_NAME = "qbdi"
RTMIDI_APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE",
               "windows": "WINDOWS_MM"}
BACKENDS = (*RTMIDI_APIS, "memory")
JACKD_LINE = "jackd --no-realtime -d dummy -r 48000 -p 128 &"
WHAT_TO_START = {
    "alsa": "no ALSA sequencer (/dev/snd/seq): load the snd-seq module or use a machine "
            "with sound devices",
    "jack": f"no JACK server is running: start one, e.g. `{JACKD_LINE}`",
    "coremidi": "CoreMIDI is only on macOS",
    "windows": "Windows MultiMedia MIDI is only on Windows",
}

OnMessage = Callable[[mido.Message], None]


class Ports(Protocol):
    """One input and one output port."""

    in_name: str
    out_name: str

    def open(self, on_message: OnMessage) -> None: ...

    def send(self, message: mido.Message) -> None: ...

    def close(self) -> None: ...


class MemoryPorts:
    """In-memory ports for tests and headless smoke runs.

    ``play(message)`` delivers input as a backend thread would; everything sent is kept in
    ``sent`` as ``(now(), message)``. ``lose()`` makes the output fail like an unplugged
    device; ``loopback=True`` feeds every sent message back to the input (a DAW loop).
    """

    def __init__(self, now: Callable[[], float] = time.perf_counter,
                 loopback: bool = False) -> None:
        self.in_name = "memory in"
        self.out_name = "memory out"
        self.now = now
        self.loopback = loopback
        self.sent: list[tuple[float, mido.Message]] = []
        self._on_message: OnMessage | None = None
        self._failures_left = 0
        self.closed = False

    def open(self, on_message: OnMessage) -> None:
        self._on_message = on_message

    def play(self, message: mido.Message) -> None:
        if self._on_message is not None:
            self._on_message(message)

    def lose(self, failures: int = 1) -> None:
        """Make the next ``failures`` sends raise :class:`PortLost`."""
        self._failures_left = failures

    def send(self, message: mido.Message) -> None:
        if self._failures_left > 0:
            self._failures_left -= 1
            raise PortLost(f"{self.out_name}: port lost")
        self.sent.append((self.now(), message.copy()))
        if self.loopback:
            self.play(message.copy())

    def close(self) -> None:
        self.closed = True


def _rtmidi_backend(backend: str) -> mido.Backend:
    return mido.Backend(f"mido.backends.rtmidi/{RTMIDI_APIS[backend]}", load=True)


def backend_works(backend: str) -> bool:
    """Whether the rtmidi API of ``backend`` can make a client here (nothing is started)."""
    import rtmidi

    api = getattr(rtmidi, f"API_{RTMIDI_APIS[backend]}")
    if api not in rtmidi.get_compiled_api():
        return False
    try:
        rtmidi.MidiIn(rtapi=api, name=f"{CLIENT_NAME}-probe").delete()
    except rtmidi.RtMidiError:
        return False
    return True


def detect_backend() -> str:
    """The first backend that works on this platform, or :class:`BackendUnavailable`."""
    candidates = {"linux": ("alsa", "jack"), "darwin": ("coremidi", "jack"),
                  "win32": ("windows",)}.get(sys.platform, ("alsa", "jack"))
    for backend in candidates:
        if backend_works(backend):
            return backend
    reasons = "; ".join(f"{b}: {WHAT_TO_START[b]}" for b in candidates)
    raise BackendUnavailable(f"no MIDI backend works here ({reasons}); or use --backend memory "
                             "for a smoke test without MIDI")


def check_backend(backend: str) -> None:
    """Raise :class:`BackendUnavailable` with what to start when ``backend`` cannot work."""
    if backend != "memory" and not backend_works(backend):
        raise BackendUnavailable(f"--backend {backend}: {WHAT_TO_START[backend]}")


def _plain(name: str) -> str:
    """A port name without ALSA's trailing client:port numbers ("x:y 128:0" -> "x:y")."""
    return re.sub(r"\s+\d+:\d+$", "", name)


def resolve_port(wanted: str, names: list[str], direction: str) -> str:
    """The one existing port called ``wanted``: exact name, then the name after its
    ``client:`` prefix, then a unique substring. Raises :class:`PortNotFound` listing ports."""
    for match in (lambda n: n == wanted, lambda n: _plain(n) == wanted,
                  lambda n: _plain(n).split(":", 1)[-1] == wanted):
        found = [name for name in names if match(name)]
        if len(found) == 1:
            return found[0]
    found = [name for name in names if wanted.lower() in name.lower()]
    if len(found) == 1:
        return found[0]
    listing = ", ".join(repr(n) for n in names) or "none"
    problem = "is ambiguous" if found else "does not exist"
    raise PortNotFound(f"{direction} port {wanted!r} {problem}; {direction} ports: {listing}")


def list_ports(backend: str) -> tuple[list[str], list[str]]:
    """``(inputs, outputs)`` that ``backend`` can see right now."""
    check_backend(backend)
    if backend == "memory":
        return [], []
    rt = _rtmidi_backend(backend)
    return rt.get_input_names(), rt.get_output_names()


class MidoPorts:
    """Real ports through mido and python-rtmidi.

    With no name the ports are virtual ("qbdi in"/"qbdi out", client "qbdi"); a name opens
    the existing port instead (Windows and loopMIDI have no virtual ports).
    """

    def __init__(self, backend: str, in_port: str | None = None,
                 out_port: str | None = None) -> None:
        check_backend(backend)
        self.backend = backend
        self._rt = _rtmidi_backend(backend)
        self._in_port = in_port
        self._out_port = out_port
        self.in_name = in_port or DEFAULT_IN
        self.out_name = out_port or DEFAULT_OUT
        self._input: mido.ports.BaseInput | None = None
        self._output: mido.ports.BaseOutput | None = None
        self._send_lock = threading.Lock()

    def open(self, on_message: OnMessage) -> None:
        if (self._in_port is None or self._out_port is None) and self.backend == "windows":
            raise BackendUnavailable("Windows has no virtual MIDI ports: create two loopMIDI "
                                     "ports and pass them with --in NAME --out NAME")
        try:
            # Input first: under JACK the first client is "qbdi", so "qbdi:qbdi in".
            self._input = self._open_input(on_message)
            self._output = self._open_output()
        except OSError as err:
            self.close()
            raise PortNotFound(f"{self.backend}: cannot open MIDI ports: {err}") from err
        self.in_name, self.out_name = self._input.name, self._output.name

    def _open_input(self, on_message: OnMessage) -> mido.ports.BaseInput:
        if self._in_port is None:
            return self._rt.open_input(DEFAULT_IN, virtual=True, client_name=CLIENT_NAME,
                                       callback=on_message)
        name = resolve_port(self._in_port, self._rt.get_input_names(), "input")
        return self._rt.open_input(name, callback=on_message)

    def _open_output(self) -> mido.ports.BaseOutput:
        if self._out_port is None:
            return self._rt.open_output(DEFAULT_OUT, virtual=True, client_name=CLIENT_NAME)
        name = resolve_port(self._out_port, self._rt.get_output_names(), "output")
        return self._rt.open_output(name)

    def send(self, message: mido.Message) -> None:
        if self._output is None:
            raise PortLost(f"{self.out_name}: not open")
        try:
            with self._send_lock:
                self._output.send(message)
        except Exception as err:
            raise PortLost(f"{self.out_name}: {err}") from err

    def close(self) -> None:
        for port in (self._input, self._output):
            if port is not None and not port.closed:
                port.close()
