"""The checks scripts/docker-test.sh runs on the built image, from the host.

Each check prints one ``ok:`` line or stops with ``FAILED:`` and exit status 1. Figures
(start-up and stop times, sizes) go to ``--figures`` as JSON for the summary.

The serve check is in ``docker_serve.py``, what all checks share in ``docker_rig.py``.

Needs on the host: mido and python-osc (the script installs them when missing), and a
``docker`` CLI talking to the daemon in ``DOCKER_HOST``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mido
from docker_rig import IMAGE_UID, CheckFailed, Docker, ok, require
from docker_serve import check_serve

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

