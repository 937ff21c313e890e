"""Programs nobody here wrote, driving the real ``qbdi serve`` (not collected).

Each session owns a JACK server of its own (``jackd -n UNIQUE`` on the dummy driver, with
``JACK_DEFAULT_SERVER`` set for every process it starts and ``JACK_NO_START_SERVER`` so
none starts another), and runs, as a musician's set-up would:

* ``qbdi serve --backend jack`` with OSC on a free port and ``--feedback`` to ``oscdump``;
* liblo's ``oscsend`` (the controller) and ``oscdump`` (the feedback display);
* jackd2's ``jack_midiseq`` (a looping one-bar clip at velocity 64, as a DAW clip plays it)
  and ``jack_midi_dump`` (the recorder on "qbdi out");
* ``jack_midi_clock`` with ``jack_transport`` (the DAW's MIDI clock: Start, 24 ppqn, Stop);
* ``mido-play`` (a real MIDI file into "qbdi in").

Everything started is stopped by its own process id when the session ends.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

RATE_HZ = 48_000
JACKD_ARGS = ["--no-realtime", "-d", "dummy", "-r", str(RATE_HZ), "-p", "128"]
_SESSIONS = itertools.count()


def need(*programs: str) -> None:
    """Skip, saying what to install, where a program is missing."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/setup.sh installs them)")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bar_samples(tempo_bpm: float) -> int:
    """Samples in one 4/4 bar at ``tempo_bpm`` (the clip length for jack_midiseq)."""
    return round(4 * 60.0 / tempo_bpm * RATE_HZ)


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

    def __init__(self, tag: str = "clients") -> None:
        self.name = f"qbdi-{tag}-{os.getpid()}-{next(_SESSIONS)}"
        self.env = {**os.environ, "JACK_DEFAULT_SERVER": self.name,
                    "JACK_NO_START_SERVER": "1", "PYTHONUNBUFFERED": "1"}
        self.processes: list[subprocess.Popen] = []
        self.jackd: subprocess.Popen | None = None

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
        with tempfile.TemporaryFile() as log:
            self.jackd = subprocess.Popen(["jackd", "-n", self.name, *JACKD_ARGS],
                                          env=self.env, stdout=log, stderr=log)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.jackd.poll() is None:
                if self._lsp_ok():
                    return ""
                time.sleep(0.1)
            log.seek(0)
            error = log.read().decode(errors="replace")[-400:] or "no answer within 15 s"
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
def session(tag: str = "clients") -> Iterator[Session]:
    """A session with its JACK server running; everything stops at the end."""
    jack = Session(tag)
    try:
        jack.start_jack()
        yield jack
    finally:
        jack.close()


# -- qbdi serve -------------------------------------------------------------------------

@dataclass
class Serve:
    """The real ``qbdi serve`` process and where its OSC listens."""

    process: subprocess.Popen
    output: Output
    osc_port: int
    in_port: str  # JACK port names ("qbdi:qbdi in"; rtmidi may number the second client)
    out_port: str

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout_s)


def preset_file(folder: Path, tempo_bpm: float, **sections: dict[str, Any]) -> Path:
    """A preset TOML at ``tempo_bpm`` with ``sections`` (``improviser={...}``, ...)."""
    lines = [f"tempo_bpm = {tempo_bpm}"]
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    path = folder / f"clients-{next(_SESSIONS)}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(
        value, bool) else str(value)


def start_serve(jack: Session, preset: Path, feedback_port: int | None, *args: str) -> Serve:
    """``qbdi serve --backend jack`` on the shipped model, OSC on a free port; returns once
    it printed its ready line (fails with its output if it never does)."""
    command = [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "jack", "--preset",
               str(preset), "--osc-port", "0", "--quiet", *args]
    if feedback_port is not None:
        command += ["--feedback", f"127.0.0.1:{feedback_port}"]
    process, output = jack.start(*command)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready = [line for _, line in output.lines if "ready" in line]
        if ready:
            port = int(re.search(r"osc [\d.]+:(\d+)", ready[0]).group(1))
            ports = jack.ports()
            in_port = next(p for p in ports if p.endswith(":qbdi in"))
            out_port = next(p for p in ports if p.endswith(":qbdi out"))
            return Serve(process, output, port, in_port, out_port)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"qbdi serve never became ready:\n{output.text()}")


# -- liblo's tools ----------------------------------------------------------------------

def oscsend(port: int, address: str, types: str = "", *values: Any) -> None:
    """liblo's ``oscsend`` to the server on 127.0.0.1."""
    need("oscsend")
    subprocess.run(["oscsend", "127.0.0.1", str(port), address, types,
                    *[str(v) for v in values]], check=True, timeout=10, capture_output=True)


@dataclass(frozen=True)
class Received:
    """One message as ``oscdump`` printed it."""

    t_s: float
    address: str
    args: tuple[Any, ...]


def parse_oscdump(line: str) -> tuple[str, tuple[Any, ...]] | None:
    """``[timetag] /qbdi/bar ifiii 3 0.5 ...`` (oscdump's format; strings in double
    quotes)."""
    if not line.startswith("/"):
        line = line.split(" ", 1)[-1]  # oscdump prints the message's timetag first
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("/"):
        return None
    address, types = parts[0], parts[1]
    words = re.findall(r'"[^"]*"|\S+', parts[2]) if len(parts) > 2 else []
    args: list[Any] = []
    for kind, word in zip(types, words, strict=False):
        if kind in "ih":
            args.append(int(word))
        elif kind in "fd":
            args.append(float(word))
        else:
            args.append(word.strip('"'))
    return address, tuple(args)


class OscDump:
    """liblo's ``oscdump`` as the feedback display, on a free UDP port."""

    def __init__(self, jack: Session) -> None:
        need("oscdump")
        self.port = free_udp_port()
        self.process, self.output = jack.start("oscdump", "-L", str(self.port))
        time.sleep(0.2)  # listening before the server's first heartbeat

    def messages(self, address: str | None = None) -> list[Received]:
        out = []
        for t_s, line in list(self.output.lines):
            parsed = parse_oscdump(line)
            if parsed is not None and (address is None or parsed[0] == address):
                out.append(Received(t_s, *parsed))
        return out

    def wait_for(self, address: str, predicate=lambda args: True, after_s: float = 0.0,
                 timeout_s: float = 10.0) -> Received:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self.messages(address):
                if message.t_s >= after_s and predicate(message.args):
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no {address} within {timeout_s} s; oscdump printed:\n"
                             + "\n".join(line for _, line in self.output.lines[-30:]))

    def status(self, server_port: int) -> dict[str, Any]:
        """``/qbdi/status`` asked with oscsend, read from oscdump (the feedback target)."""
        asked_s = time.monotonic()
        oscsend(server_port, "/qbdi/status")
        args = self.wait_for("/qbdi/status", after_s=asked_s).args
        return dict(zip(args[::2], args[1::2], strict=True))


# -- jackd2's MIDI tools ----------------------------------------------------------------

def start_clip(jack: Session, name: str, tempo_bpm: float,
               notes: list[tuple[float, int, float]]) -> None:
    """``jack_midiseq NAME`` looping one bar of ``notes`` (start, pitch, length in sixteenth
    steps) at velocity 64, channel 1, as a DAW's looped clip plays it."""
    need("jack_midiseq")
    step = bar_samples(tempo_bpm) / 16
    spec = [str(v) for start, pitch, length in notes
            for v in (round(start * step), pitch, round(length * step))]
    jack.start("jack_midiseq", name, str(bar_samples(tempo_bpm)), *spec)
    jack.wait_for_port(f"{name}:out")


@dataclass(frozen=True)
class Event:
    frame: int  # absolute, from jack_midi_dump -a
    data: tuple[int, ...]


class MidiDump:
    """``jack_midi_dump -a NAME``: every message arriving at its input, with its frame."""

    def __init__(self, jack: Session, name: str) -> None:
        need("jack_midi_dump")
        self.name = name
        # Line-buffered (stdbuf), so what it printed can be read while it runs.
        line_buffered = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
        self.process, self.output = jack.start(*line_buffered, "jack_midi_dump", "-a", name)
        jack.wait_for_port(f"{name}:input")

    def stop(self) -> list[Event]:
        """Stop it (SIGINT: it leaves JACK cleanly, having printed everything) and return
        every event it heard."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=10)
        time.sleep(0.1)  # the reader thread takes the last lines
        return self.events()

    def events(self) -> list[Event]:
        out = []
        for _, line in list(self.output.lines):
            match = re.match(r"\s*(\d+):((?: [0-9a-f]{2})+)", line)
            if match:
                out.append(Event(int(match.group(1)),
                                 tuple(int(b, 16) for b in match.group(2).split())))
        return out


def sounding_after(events: list[Event]) -> set[tuple[int, int]]:
    """(channel, pitch) still sounding after the events (CC 123 ends a channel's notes)."""
    sounding: set[tuple[int, int]] = set()
    for event in events:
        status = event.data[0]
        kind, channel = status & 0xF0, status & 0x0F
        if kind == 0x90 and len(event.data) == 3 and event.data[2] > 0:
            sounding.add((channel, event.data[1]))
        elif kind in (0x80, 0x90) and len(event.data) == 3:
            sounding.discard((channel, event.data[1]))
        elif kind == 0xB0 and event.data[1] == 123:
            sounding = {key for key in sounding if key[0] != channel}
    return sounding


def note_ons(events: list[Event]) -> list[Event]:
    return [e for e in events if e.data[0] & 0xF0 == 0x90 and len(e.data) == 3
            and e.data[2] > 0]
