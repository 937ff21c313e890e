"""The arguments of ``qbdi serve`` and their argparse types."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from qbdi.commands import arg_types, serve_web
from qbdi.server.backends import BACKENDS
from qbdi.server.ports import CLIENT_NAME

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,31}")


def _server_name(text: str) -> str:
    """An argparse type: a server name, usable as a MIDI client and port name and in a file
    name (letters, digits, space, dot, dash, underscore; up to 32, not starting with a
    space or punctuation)."""
    if not NAME_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a name is 1-32 letters, digits, spaces, '.', '-' or '_', starting "
            "with a letter or digit")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", type=_server_name, default=CLIENT_NAME,
                        help="names the MIDI client and its ports ('NAME in', 'NAME out'), "
                             "the take files and the log lines, so several servers run "
                             f"side by side (default {CLIENT_NAME})")
    parser.add_argument("--preset", default="default",
                        help="shipped preset name or a preset file (default: default)")
    parser.add_argument("--model", default=None, metavar="NAME|FILE",
                        help="the model that answers first: a shipped model's name (qbdi "
                             "models) or a checkpoint file (default: the preset's, else bach); "
                             "/qbdi/model switches between it and the shipped ones")
    parser.add_argument("--in", dest="in_port", default=None,
                        help="connect to this existing input port instead of creating "
                             "'NAME in'")
    parser.add_argument("--out", dest="out_port", default=None,
                        help="connect to this existing output port instead of creating "
                             "'NAME out'")
    parser.add_argument("--controls-in", dest="controls_port", default=None, metavar="NAME",
                        help="read MIDI controls (knobs, program changes, pads; the "
                             "preset's [controls] table) from this existing port; by default "
                             "they come from the input port")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="MIDI backend (default: detected; memory = no MIDI, smoke test)")
    parser.add_argument("--osc-host", default="127.0.0.1",
                        help="address to listen on for OSC (default 127.0.0.1)")
    parser.add_argument("--osc-port", type=arg_types.port, default=9000,
                        help="UDP port for OSC (default 9000; 0 = any free port)")
    parser.add_argument("--osc-allow", default="",
                        help="comma-separated client IPs allowed when --osc-host is not "
                             "loopback")
    parser.add_argument("--osc-rate", type=arg_types.rate_per_s, default=200.0,
                        help="most OSC messages accepted per second (default 200)")
    parser.add_argument("--feedback", default=None, metavar="HOST:PORT",
                        help="send values, bar reports, errors and a heartbeat here")
    parser.add_argument("--bpm", type=float, default=None,
                        help="tempo of the internal clock (default: the preset's)")
    parser.add_argument("--clock", choices=["internal", "midi", "link"], default="internal",
                        help="internal tempo, follow MIDI clock from the DAW on the input, or "
                             "follow an Ableton Link session (needs the aalink package)")
    parser.add_argument("--preset-dir", type=Path, default=None,
                        help="folder of your own presets that /qbdi/preset loads by name "
                             "(default: the folder of --preset when it is a file)")
    parser.add_argument("--record", type=Path, default=None, metavar="FILE.mid|FOLDER",
                        help="record the session (your notes, the answers, tempo, and "
                             "markers where the mode or bits change) to a new MIDI file, "
                             "saved every 10 s and on exit; a folder gets a dated file")
    parser.add_argument("--quiet", action="store_true",
                        help="plain logs, warnings and errors only (no terminal view)")
    parser.add_argument("--log-json", action="store_true",
                        help="structured logs: one JSON object per line on stderr (no "
                             "terminal view)")
    parser.add_argument("--no-view", action="store_true",
                        help="plain log lines even on a terminal, instead of the live view")
    parser.add_argument("--close-ahead-ms", type=arg_types.milliseconds(500), default=0.0,
                        metavar="MS",
                        help="close each bar at least this long before its end (at most an "
                             "eighth), so that its answer has that long to be ready; default "
                             "0: half a sixteenth, 15.6 ms at 480 BPM. Later input counts "
                             "from the next bar's first step. For fast tempos on a machine "
                             "that stalls (60 held a 30-minute soak at 480 BPM)")
    parser.add_argument("--lock-memory", action="store_true",
                        help="lock the process's memory in RAM where the memory-lock limit "
                             "allows, so that no page is read back from disk mid-bar "
                             "(experimental: with it, JACK tests under load lost or garbled "
                             "MIDI events)")
    serve_web.add_arguments(parser)
