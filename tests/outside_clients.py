"""Programs nobody here wrote, driving the real ``qbdi serve`` (not collected).

On a JACK server of the test's own (:mod:`jack_session`), as a musician's set-up would:

* ``qbdi serve --backend jack`` with OSC on a free port and ``--feedback`` to ``oscdump``;
* liblo's ``oscsend`` (the controller) and ``oscdump`` (the feedback display);
* jackd2's ``jack_midiseq`` (a looping one-bar clip at velocity 64, as a DAW clip plays it)
  and ``jack_midi_dump`` (the recorder on "qbdi out");
* ``jack_midi_clock`` with ``jack_transport`` (the DAW's MIDI clock: Start, 24 ppqn, Stop);
* ``mido-play`` (a real MIDI file into "qbdi in").
"""

from __future__ import annotations

import itertools
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jack_session import RATE_HZ, Output, Session, free_udp_port, need

_PRESETS = itertools.count()


def bar_samples(tempo_bpm: float) -> int:
    """Samples in one 4/4 bar at ``tempo_bpm`` (the clip length for jack_midiseq)."""
    return round(4 * 60.0 / tempo_bpm * RATE_HZ)


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
    path = folder / f"clients-{next(_PRESETS)}.toml"
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
