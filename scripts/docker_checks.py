"""The checks scripts/docker-test.sh runs on the built image, from the host.

Each check prints one ``ok:`` line or stops with ``FAILED:`` and exit status 1. Figures
(start-up and stop times, sizes) go to ``--figures`` as JSON for the summary.

Needs on the host: mido and python-osc (the script installs them when missing), and a
``docker`` CLI talking to the daemon in ``DOCKER_HOST``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import mido
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

READY = "qbdi serve: ready:"
STOP_LIMIT_S = 2.0
IMAGE_UID = 10001

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


class CheckFailed(Exception):
    pass


def ok(message: str) -> None:
    print(f"ok: {message}", flush=True)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


class Docker:
    def __init__(self, cli: str, image: str, label: str) -> None:
        self.cli, self.image, self.label = cli, image, label

    def run(self, *args: str, timeout: float = 120, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.cli, *args], capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise CheckFailed(f"`docker {' '.join(args)}` exited {result.returncode}:\n"
                              f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result

    def run_image(self, *args: str, options: tuple[str, ...] = (), timeout: float = 300,
                  check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("run", "--rm", "--label", self.label, *options, self.image, *args,
                        timeout=timeout, check=check)


# -- one-shot commands ---------------------------------------------------------------------

def check_help(docker: Docker) -> None:
    for args in (["--help"], ["qbdi", "--help"]):
        result = docker.run_image(*args)
        require(result.stdout.startswith("usage: qbdi"), f"{args}: {result.stdout[:200]}")
        ok(f"docker run IMAGE {' '.join(args)}: qbdi's usage, exit 0")


def check_contents(docker: Docker, extra_ca: Path | None) -> None:
    probe = ("import importlib.util as u, os, sys; "
             "print(os.getuid(), sys.version.split()[0], "
             "[m for m in ('torch', 'pip', 'setuptools') if u.find_spec(m)])")
    out = docker.run_image("-c", probe, options=("--entrypoint", "python3")).stdout.split()
    require(out[0] == str(IMAGE_UID), f"runs as uid {out[0]}, not {IMAGE_UID}")
    require(out[2:] == ["[]"], f"in the image but should not be: {' '.join(out[2:])}")
    ok(f"runs as uid {IMAGE_UID}, Python {out[1]}, no torch, pip or setuptools")
    if extra_ca is not None:
        # A line from the middle of each certificate: base64 text that no other file has.
        lines = [line for line in extra_ca.read_text().splitlines()
                 if len(line) == 64 and "-" not in line]
        needles = sorted(set(lines[3::5]))
        saved = subprocess.run([docker.cli, "save", docker.image], capture_output=True,
                               timeout=300, check=True).stdout
        found = [n for n in needles if n.encode() in saved]
        require(not found, f"an extra CA certificate is inside the image: {found}")
        ok(f"the extra CA certificates given to the build are in no layer of the image "
           f"(docker save, {len(saved) / 1e6:.0f} MB, searched for {len(needles)} lines)")


def write_query(path: Path) -> None:
    """A short query: a I-vi-IV-V progression with a melody, 8 bars at 120 bpm."""
    ticks = 480
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000),
                            mido.MetaMessage("time_signature", numerator=4, denominator=4)])
    chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)] * 2
    events: list[tuple[int, mido.Message]] = []
    for bar, chord in enumerate(chords):
        start = bar * 4 * ticks
        for note in chord:
            events += [(start, mido.Message("note_on", note=note, velocity=70)),
                       (start + 4 * ticks - 10, mido.Message("note_off", note=note))]
        for beat in range(4):
            note = chord[beat % 3] + 12
            at = start + beat * ticks
            events += [(at, mido.Message("note_on", note=note, velocity=90)),
                       (at + ticks - 10, mido.Message("note_off", note=note))]
    now = 0
    for at, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        track.append(message.copy(time=at - now))
        now = at
    mido.MidiFile(ticks_per_beat=ticks, tracks=[track]).save(path)


def check_render_and_analyze(docker: Docker, folder: Path, user: str | None) -> None:
    """render and analyze on a mounted folder, as the image's user (user None) or as
    ``--user UID:GID``; both write their outputs there, owned by that user."""
    who = f"--user {user}" if user else f"the image's user ({IMAGE_UID})"
    folder.mkdir(parents=True)
    write_query(folder / "query.mid")
    uid, gid = (int(x) for x in user.split(":")) if user else (IMAGE_UID, IMAGE_UID)
    for path in (folder, folder / "query.mid"):
        os.chown(path, uid, gid)
    options = ("-v", f"{folder}:/work") + (("--user", user) if user else ())
    docker.run_image("render", "query.mid", "-o", "answer.mid", "--bits", "256",
                     options=options)
    answer = folder / "answer.mid"
    require(answer.is_file(), f"render wrote no answer.mid ({who})")
    notes = sum(m.type == "note_on" and m.velocity > 0 for m in mido.MidiFile(answer))
    require(answer.stat().st_uid == uid, f"answer.mid owned by uid {answer.stat().st_uid}")
    docker.run_image("analyze", "query.mid", "--out", "analysis", "--thresholds", "8",
                     options=options)
    written = sorted(p.name for p in (folder / "analysis").iterdir())
    require("report.json" in written and any(n.endswith(".png") for n in written),
            f"analyze wrote {written} ({who})")
    json.loads((folder / "analysis" / "report.json").read_text())
    ok(f"render and analyze as {who} on a mounted folder: answer.mid ({notes} notes), "
       f"{', '.join(written)}")


def check_doctor(docker: Docker) -> None:
    result = docker.run_image("doctor", check=False)
    require(result.returncode == 0,
            f"qbdi doctor exited {result.returncode}:\n{result.stdout}{result.stderr}")
    ok("qbdi doctor passes inside (the entrypoint's JACK, OSC port, model, one bar)")


# -- serve -------------------------------------------------------------------------------------

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


def check_serve(docker: Docker, network: str, host_port: int, folder: Path,
                figures: dict[str, object]) -> None:
    """``serve`` headless on NETWORK ("host" or "bridge"): ready line, /qbdi/status from the
    host over UDP, notes playing to a JACK listener inside, then ``docker stop``: exit 0
    within 2 s, nothing left sounding, the take saved."""
    folder.mkdir(parents=True)
    os.chown(folder, IMAGE_UID, IMAGE_UID)
    name = f"qbdi-test-serve-{network}-{os.getpid()}"
    if network == "host":
        net = ("--network", "host", "-e", "QBDI_OSC_ALLOW=127.0.0.1")
        serve_args = ("--osc-port", str(host_port))
        how = f"--network host, OSC on 127.0.0.1:{host_port}"
    else:
        net = ("-p", f"127.0.0.1:{host_port}:9000/udp")
        serve_args = ()
        how = f"default bridge, -p 127.0.0.1:{host_port}:9000/udp"
    command = [docker.cli, "run", "--name", name, "--label", docker.label, *net,
               "-v", f"{folder}:/work/takes", docker.image, "serve", *serve_args,
               "--quiet", "--record", "takes"]
    # stderr to files: a pipe nobody reads could fill and stall the container's output.
    server_err = (folder.parent / f"serve-{network}.stderr").open("w+")
    listener_err = (folder.parent / f"listener-{network}.stderr").open("w+")

    def tail(stream) -> str:
        stream.seek(0)
        return stream.read()[-3000:]

    started = time.monotonic()
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=server_err, text=True)
    listener = None
    try:
        line = ""
        while READY not in line:
            line = readline(server.stdout, max(0.0, started + 60 - time.monotonic()))
            if not line:
                server.kill()
                server.wait()
                raise CheckFailed(f"serve ({how}): no ready line within 60 s:\n"
                                  f"{tail(server_err)}")
        ready_s = time.monotonic() - started
        figures[f"serve_ready_s_{network}"] = round(ready_s, 2)
        ok(f"serve ({how}): `{line.strip()}` {ready_s:.2f} s after `docker run`")

        replies = ask_status(host_port)
        status = replies["/qbdi/status"]
        require({"/qbdi/bits", "/qbdi/mode"} <= set(replies) and "bar" in status,
                f"/qbdi/status replies: {replies}")
        ok(f"/qbdi/status answered over UDP from the host: mode {replies['/qbdi/mode']}, "
           f"bits {replies['/qbdi/bits']}, bar {status['bar']}, "
           f"osc_refused_sender {status.get('osc_refused_sender')}")

        # A JACK client inside the container, listening to "qbdi out" as a DAW would.
        log = folder / "heard.txt"
        listener = subprocess.Popen(
            [docker.cli, "exec", name, "python3", "-c", LISTENER, "/work/takes/heard.txt"],
            stdout=subprocess.PIPE, stderr=listener_err, text=True)
        first = readline(listener.stdout, 30)
        if not first.startswith("listening"):
            raise CheckFailed(f"the JACK listener inside: {first}{tail(listener_err)}")
        require(send(host_port, "/qbdi/bpm", [480.0]) == [480.0], "/qbdi/bpm 480")
        require(send(host_port, "/qbdi/mode", ["free"]) == ["free"], "/qbdi/mode free")
        deadline = time.monotonic() + 30
        while not sounding(heard(log)):
            require(time.monotonic() < deadline, "the server played no note in 30 s")
            time.sleep(0.02)
        before = heard(log)

        stop_started = time.monotonic()
        docker.run("stop", "--time", "10", name, timeout=30)
        stop_s = time.monotonic() - stop_started
        status_code = server.wait(timeout=30)
        figures[f"serve_stop_s_{network}"] = round(stop_s, 2)
        exit_code = docker.run("inspect", "--format", "{{.State.ExitCode}}", name).stdout
        if exit_code.strip() != "0" or status_code != 0:
            raise CheckFailed(f"serve exited {exit_code.strip()} (docker run: {status_code}) "
                              f"on docker stop:\n{tail(server_err)}")
        require(stop_s <= STOP_LIMIT_S, f"docker stop took {stop_s:.2f} s (limit 2 s)")
        after = heard(log)
        left = sounding(after)
        since = after[len(before):]
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

        takes = sorted(folder.glob("qbdi-take-*.mid"))
        require(len(takes) == 1, f"takes saved: {takes}")
        tracks = [t.name for t in mido.MidiFile(takes[0]).tracks]
        require({"player", "qbdi"} <= set(tracks), f"take tracks: {tracks}")
        ok(f"--record: take {takes[0].name} saved on docker stop, tracks {tracks}")
    finally:
        for process in (listener, server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        docker.run("rm", "--force", name, check=False)
        server_err.close()
        listener_err.close()


# -- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--image", required=True)
    parser.add_argument("--label", required=True, help="KEY=VALUE put on every container")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--user", action="append", default=[],
                        help="UID:GID to run render/analyze as (repeatable)")
    parser.add_argument("--bridge", choices=["yes", "no"], default="yes")
    parser.add_argument("--extra-ca", type=Path)
    parser.add_argument("--figures", type=Path, required=True)
    args = parser.parse_args(argv)
    docker = Docker(args.docker, args.image, args.label)
    figures: dict[str, object] = {}
    try:
        check_help(docker)
        check_contents(docker, args.extra_ca)
        check_render_and_analyze(docker, args.workdir / "files-image-user", None)
        for user in args.user:
            check_render_and_analyze(docker, args.workdir / f"files-{user.replace(':', '-')}",
                                     user)
        check_doctor(docker)
        networks = ["host"] + (["bridge"] if args.bridge == "yes" else [])
        for network in networks:
            check_serve(docker, network, free_udp_port(), args.workdir / f"serve-{network}",
                        figures)
    except (CheckFailed, subprocess.TimeoutExpired, subprocess.CalledProcessError) as err:
        print(f"FAILED: {err}", file=sys.stderr, flush=True)
        return 1
    finally:
        args.figures.write_text(json.dumps(figures))
    return 0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())

