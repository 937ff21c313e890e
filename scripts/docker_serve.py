"""The serve check of scripts/docker_checks.py: ``qbdi serve`` in a container, driven from the
host over OSC, heard by a JACK client inside, then stopped with ``docker stop``.

It passes when serve prints its ready line, answers /qbdi/status over UDP from the host,
plays notes to the listener, and on ``docker stop`` exits 0 within ``STOP_LIMIT_S`` with
nothing left sounding and its take saved.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

import mido
from docker_rig import IMAGE_UID, CheckFailed, Docker, ok, require
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

READY = "qbdi serve: ready:"
STOP_LIMIT_S = 2.0

# Inside the container: a JACK MIDI client on "qbdi out" writing every message it hears to a
# file (one line of bytes each, flushed), as a DAW's track would hear them. It polls rtmidi's
# queue instead of setting a callback, as serve and the tests' listener do
# (tests/jack_listener.py): a Python callback runs on JACK's thread, and one still waiting
# for the interpreter when its cycle ends reads a reused buffer, so an event (a note-off just
# before the stop) can be lost or replaced by a copy of the one before.
LISTENER = r"""
import sys, time, rtmidi
out = open(sys.argv[1], "w", buffering=1)
midi_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="listener", queue_size_limit=8192)
deadline = time.monotonic() + 20
while True:
    names = midi_in.get_ports()
    hits = [i for i, name in enumerate(names) if name.endswith("qbdi out")]
    if hits or time.monotonic() > deadline:
        break
    time.sleep(0.05)
if not hits:
    sys.exit(f"no 'qbdi out' port among {names}")
midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
midi_in.open_port(hits[0], "hears qbdi out")
print("listening to", names[hits[0]], flush=True)
while True:
    event = midi_in.get_message()
    if event is None:
        time.sleep(0.0005)
    else:
        out.write(" ".join(map(str, event[0])) + "\n")
"""


def osc_packet(address: str, args: list[object]) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def ask_status(port: int, timeout_s: float = 10.0) -> dict[str, object]:
    """Send /qbdi/status to 127.0.0.1:PORT from a host socket; the replies by address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(timeout_s)
        client.sendto(osc_packet("/qbdi/status", []), ("127.0.0.1", port))
        replies: dict[str, object] = {}
        while "/qbdi/status" not in replies:
            message = OscMessage(client.recvfrom(65_535)[0])
            replies[message.address] = list(message.params)
    flat = replies["/qbdi/status"]
    replies["/qbdi/status"] = dict(zip(flat[::2], flat[1::2], strict=True))
    return replies


def send(port: int, address: str, args: list[object]) -> list[object]:
    """Send one OSC message and return the values of its reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(10)
        client.sendto(osc_packet(address, args), ("127.0.0.1", port))
        while True:
            message = OscMessage(client.recvfrom(65_535)[0])
            if message.address == address:
                return list(message.params)
            require(message.address != "/qbdi/error", f"{address} {args}: {message.params}")


def heard(path: Path) -> list[mido.Message]:
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[:-1]  # whole lines only: one may be half written
    return [mido.Message.from_bytes([int(b) for b in line.split()]) for line in lines if line]


def sounding(messages: list[mido.Message]) -> set[tuple[int, int]]:
    notes: set[tuple[int, int]] = set()
    for m in messages:
        if m.type == "note_on" and m.velocity > 0:
            notes.add((m.channel, m.note))
        elif m.type in ("note_on", "note_off"):
            notes.discard((m.channel, m.note))
        elif m.type == "control_change" and m.control == 123:
            notes = {n for n in notes if n[0] != m.channel}
    return notes


def readline(stream, timeout_s: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout_s)
    return stream.readline() if ready else ""


class Serving:
    """One ``qbdi serve`` container on ``network`` ("host" or "bridge"), its OSC port
    published on the host's ``host_port``, its takes and logs in ``folder``."""

    def __init__(self, docker: Docker, network: str, host_port: int, folder: Path) -> None:
        self.docker, self.folder = docker, folder
        self.name = f"qbdi-test-serve-{network}-{os.getpid()}"
        self.heard_path = folder / "heard.txt"
        # stderr to files: a pipe nobody reads could fill and stall the container's output.
        self.server_err = (folder.parent / f"serve-{network}.stderr").open("w+")
        self.listener_err = (folder.parent / f"listener-{network}.stderr").open("w+")
        self.server: subprocess.Popen[str] | None = None
        self.listener: subprocess.Popen[str] | None = None
        # docker run's network options, serve's own, and how the check's lines name them
        if network == "host":
            self.options = ("--network", "host", "-e", "QBDI_OSC_ALLOW=127.0.0.1")
            self.serve_args: tuple[str, ...] = ("--osc-port", str(host_port))
            self.how = f"--network host, OSC on 127.0.0.1:{host_port}"
        else:
            self.options, self.serve_args = ("-p", f"127.0.0.1:{host_port}:9000/udp"), ()
            self.how = f"default bridge, -p 127.0.0.1:{host_port}:9000/udp"

    def start(self) -> float:
        """``docker run`` serve and wait for its ready line; the seconds that took."""
        command = [self.docker.cli, "run", "--name", self.name, "--label", self.docker.label,
                   *self.options, "-v", f"{self.folder}:/work/takes", self.docker.image,
                   "serve", *self.serve_args, "--quiet", "--record", "takes"]
        started = time.monotonic()
        self.server = subprocess.Popen(command, stdout=subprocess.PIPE,
                                       stderr=self.server_err, text=True)
        line = ""
        while READY not in line:
            line = readline(self.server.stdout, max(0.0, started + 60 - time.monotonic()))
            if not line:
                raise CheckFailed(f"serve ({self.how}): no ready line within 60 s:\n"
                                  f"{tail(self.server_err)}")
        ready_s = time.monotonic() - started
        ok(f"serve ({self.how}): `{line.strip()}` {ready_s:.2f} s after `docker run`")
        return ready_s

    def listen(self) -> None:
        """Start the JACK listener inside the container, on "qbdi out"."""
        self.listener = subprocess.Popen(
            [self.docker.cli, "exec", self.name, "python3", "-c", LISTENER,
             "/work/takes/heard.txt"],
            stdout=subprocess.PIPE, stderr=self.listener_err, text=True)
        first = readline(self.listener.stdout, 30)
        if not first.startswith("listening"):
            raise CheckFailed(f"the JACK listener inside: {first}{tail(self.listener_err)}")

    def stop(self) -> float:
        """``docker stop``; the seconds it took. Raises CheckFailed unless serve exits 0."""
        assert self.server is not None
        stop_started = time.monotonic()
        self.docker.run("stop", "--time", "10", self.name, timeout=30)
        stop_s = time.monotonic() - stop_started
        status_code = self.server.wait(timeout=30)
        exit_code = self.docker.run("inspect", "--format", "{{.State.ExitCode}}",
                                    self.name).stdout
        if exit_code.strip() != "0" or status_code != 0:
            raise CheckFailed(f"serve exited {exit_code.strip()} (docker run: {status_code}) "
                              f"on docker stop:\n{tail(self.server_err)}")
        return stop_s

    def close(self) -> None:
        """Kill what is still running, remove the container, close the logs."""
        for process in (self.listener, self.server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        self.docker.run("rm", "--force", self.name, check=False)
        self.server_err.close()
        self.listener_err.close()


def check_serve(docker: Docker, network: str, host_port: int, folder: Path,
                figures: dict[str, object]) -> None:
    """``serve`` headless on NETWORK ("host" or "bridge"): ready line, /qbdi/status from the
    host over UDP, notes playing to a JACK listener inside, then ``docker stop``: exit 0
    within 2 s, nothing left sounding, the take saved."""
    folder.mkdir(parents=True)
    os.chown(folder, IMAGE_UID, IMAGE_UID)
    serving = Serving(docker, network, host_port, folder)
    try:
        figures[f"serve_ready_s_{network}"] = round(serving.start(), 2)
        check_status(host_port)
        serving.listen()
        require(send(host_port, "/qbdi/bpm", [480.0]) == [480.0], "/qbdi/bpm 480")
        require(send(host_port, "/qbdi/mode", ["free"]) == ["free"], "/qbdi/mode free")
        deadline = time.monotonic() + 30
        while not sounding(heard(serving.heard_path)):
            require(time.monotonic() < deadline, "the server played no note in 30 s")
            time.sleep(0.02)
        before = heard(serving.heard_path)
        stop_s = serving.stop()
        figures[f"serve_stop_s_{network}"] = round(stop_s, 2)
        require(stop_s <= STOP_LIMIT_S, f"docker stop took {stop_s:.2f} s (limit 2 s)")
        check_nothing_sounds(before, heard(serving.heard_path), stop_s, serving.server_err)
        check_take(folder)
    finally:
        serving.close()


def check_status(port: int) -> None:
    replies = ask_status(port)
    status = replies["/qbdi/status"]
    require({"/qbdi/bits", "/qbdi/mode"} <= set(replies) and "bar" in status,
            f"/qbdi/status replies: {replies}")
    ok(f"/qbdi/status answered over UDP from the host: mode {replies['/qbdi/mode']}, "
       f"bits {replies['/qbdi/bits']}, bar {status['bar']}, "
       f"osc_refused_sender {status.get('osc_refused_sender')}")


def check_nothing_sounds(before: list[mido.Message], after: list[mido.Message], stop_s: float,
                         server_err: IO[str]) -> None:
    """Every note heard ended: by its note-off or a CC 123 on its channel."""
    since = after[len(before):]
    left = sounding(after)
    require(not left, f"notes left sounding after docker stop: {sorted(left)}; heard "
                      f"after the stop began: {[m.hex() for m in since][-12:]}; serve's "
                      f"stderr:\n{tail(server_err)}")
    offs = sum(m.type == "note_off" or (m.type == "note_on" and m.velocity == 0)
               for m in since)
    cc123 = sum(m.type == "control_change" and m.control == 123 for m in since)
    ons = sum(m.type == "note_on" and m.velocity > 0 for m in after)
    ok(f"docker stop: exit 0 after {stop_s:.2f} s; a JACK client on 'qbdi out' heard "
       f"{ons} note-ons in all, {len(sounding(before))} notes sounding just before the "
       f"stop, then {offs} note-offs and {cc123} CC 123: nothing left sounding")


def check_take(folder: Path) -> None:
    takes = sorted(folder.glob("qbdi-take-*.mid"))
    require(len(takes) == 1, f"takes saved: {takes}")
    tracks = [t.name for t in mido.MidiFile(takes[0]).tracks]
    require({"player", "qbdi"} <= set(tracks), f"take tracks: {tracks}")
    ok(f"--record: take {takes[0].name} saved on docker stop, tracks {tracks}")


def tail(stream: IO[str]) -> str:
    stream.seek(0)
    return stream.read()[-3000:]
