"""``qbdi serve``: build the server from command-line options and run it until SIGINT or
SIGTERM.

Start-up fails at once (a :class:`~qbdi.errors.QbdiError`, exit 2) when the preset, the
model, the MIDI backend, the OSC socket or a web port is unusable; it never falls back to
another device silently. Once the ports, the OSC socket and the web ports are open it
prints one ``ready`` line on stdout (tests and benchmarks wait for it); with ``--web``,
the next line gives the surface's address with its token.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import logging
import math
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from qbdi.commands import serve_web
from qbdi.errors import QbdiError, check_writable
from qbdi.presets import load_named_preset, load_preset, preset_path
from qbdi.presets import preset_dir as shipped_preset_dir
from qbdi.server.backends import BACKENDS, detect_backend
from qbdi.server.clocks import Clock, InternalClock, MidiClockFollower
from qbdi.server.osc_transport import OscTransport, check_bind, parse_target
from qbdi.server.ports import MemoryPorts, MidoPorts, Ports
from qbdi.server.status import StatusLine, configure_logging
from qbdi.server.take import Take, TakeListener
from qbdi.settings import MAX_TEMPO_BPM, MIN_TEMPO_BPM, Preset, changed, describe_error

log = logging.getLogger("qbdi.server")


def _udp_port(text: str) -> int:
    """An argparse type: a UDP port number, 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65_535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {port}")
    return port


def _rate_per_s(text: str) -> float:
    """An argparse type: a finite rate > 0 per second."""
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(rate) or rate <= 0:
        raise argparse.ArgumentTypeError(f"a rate must be finite and > 0, got {text}")
    return rate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default",
                        help="shipped preset name or a preset file (default: default)")
    parser.add_argument("--model", default=None, metavar="NAME|FILE",
                        help="the model that answers first: a shipped model's name (qbdi "
                             "models) or a checkpoint file (default: the preset's, else bach); "
                             "/qbdi/model switches between it and the shipped ones")
    parser.add_argument("--in", dest="in_port", default=None,
                        help="connect to this existing input port instead of creating "
                             "'qbdi in'")
    parser.add_argument("--out", dest="out_port", default=None,
                        help="connect to this existing output port instead of creating "
                             "'qbdi out'")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="MIDI backend (default: detected; memory = no MIDI, smoke test)")
    parser.add_argument("--osc-host", default="127.0.0.1",
                        help="address to listen on for OSC (default 127.0.0.1)")
    parser.add_argument("--osc-port", type=_udp_port, default=9000,
                        help="UDP port for OSC (default 9000; 0 = any free port)")
    parser.add_argument("--osc-allow", default="",
                        help="comma-separated client IPs allowed when --osc-host is not "
                             "loopback")
    parser.add_argument("--osc-rate", type=_rate_per_s, default=200.0,
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
    serve_web.add_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--log-json", action="store_true",
                        help="structured logs: one JSON object per line on stderr")


def user_preset_dir(preset: str, preset_dir: Path | None) -> Path | None:
    """The folder ``/qbdi/preset`` may load from besides the shipped presets: ``--preset-dir``,
    else the folder of a ``--preset`` file, else none. Refuses a missing ``--preset-dir``."""
    if preset_dir is not None:
        if not preset_dir.is_dir():
            raise QbdiError(f"--preset-dir {preset_dir}: not a folder")
        return preset_dir
    folder = preset_path(preset).parent
    return None if folder == shipped_preset_dir() else folder


def starting_state(preset: str, bpm: float | None) -> Preset:
    state = load_preset(preset)
    if bpm is None:
        return state
    try:
        return changed(state, tempo_bpm=bpm)
    except ValidationError as err:
        raise QbdiError(f"--bpm: {describe_error(err)}") from err


def make_clock(kind: str, state: Preset, tempo_given: bool) -> tuple[Clock, Preset]:
    """The clock for ``--clock``, and the state with the tempo it starts at.

    Link joins the session first: without ``--bpm`` the server adopts the session's tempo
    instead of imposing the preset's on every peer.
    """
    if kind == "midi":
        return MidiClockFollower(), state
    if kind != "link":
        return InternalClock(state.tempo_bpm), state
    from qbdi.server.link_clock import LinkClock

    clock = LinkClock(state.tempo_bpm)
    peers = clock.wait_for_peers()
    log.info("Ableton Link: %d peers, %.2f BPM", peers, clock.tempo_bpm)
    if tempo_given or peers == 0:
        return clock, state
    tempo_bpm = min(max(clock.tempo_bpm, MIN_TEMPO_BPM), MAX_TEMPO_BPM)
    return clock, changed(state, tempo_bpm=tempo_bpm)


def take_path(record: Path, now: datetime.datetime | None = None) -> Path:
    """The file ``--record`` writes: a new dated file in a folder, or the file named, which
    must not exist yet (a take never overwrites another). Refused before serving starts."""
    if record.is_dir():
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        record = record / f"qbdi-take-{stamp}.mid"
    if record.exists():
        raise QbdiError(f"--record {record}: already exists; a take never overwrites a file "
                        "(give a new name, or a folder for a dated file)")
    check_writable(record, "--record")
    return record


def open_ports(backend: str | None, in_port: str | None, out_port: str | None) -> Ports:
    """The ports for ``--backend`` (detected when None); fails at once when none works."""
    backend = backend or detect_backend()
    if backend == "memory":
        return MemoryPorts()
    return MidoPorts(backend, in_port, out_port)


def run(args: argparse.Namespace) -> int:
    """Serve live: read bars on a MIDI input, answer them on a MIDI output, OSC control.

    Runs until SIGINT/SIGTERM; every note ends before exit."""
    from qbdi.improviser import load_improvisers
    from qbdi.server.session import Server

    configure_logging(args.quiet, args.log_json)
    state = starting_state(args.preset, args.bpm)
    preset_dir = user_preset_dir(args.preset, args.preset_dir)
    feedback = parse_target(args.feedback) if args.feedback else None
    take = Take(take_path(args.record)) if args.record is not None else None
    allow = check_bind(args.osc_host, serve_web.split_ips(args.osc_allow))
    web = serve_web.WebParts(args, sorted(allow), preset_dir)
    ports = open_ports(args.backend, args.in_port, args.out_port)
    models, model = load_improvisers(args.model or state.model)
    web.choices["models"] = list(models)
    state = changed(state, model=model)
    clock, state = make_clock(args.clock, state, args.bpm is not None)
    status = StatusLine(args.quiet, args.log_json)
    transport = OscTransport(args.osc_host, args.osc_port, allow, feedback, args.osc_rate)
    listeners = [status, *web.listeners()] + ([TakeListener(take)] if take is not None else [])
    server = Server(ports, clock, models[model], state, models=models,
                    feedback=web.feedback(transport),
                    listeners=listeners,
                    preset_loader=functools.partial(load_named_preset, user_dir=preset_dir),
                    status_counts=lambda: transport.status_counts() + web.status_counts())
    stop = threading.Event()
    _stop_on_signals(stop, server.loop.inbox.wake)
    # Start-up objects (the model, numpy, mido) never become garbage: freezing them keeps a
    # full collection from scanning them in the middle of a bar.
    gc.collect()
    gc.freeze()
    try:
        server.start()
        transport.start(server.post_osc)
        web.start(server.post_osc, lambda: server.loop.state, transport.host, transport.port)
        print(f"qbdi serve: ready: in {ports.in_name!r}, out {ports.out_name!r}, "
              f"osc {transport.host}:{transport.port}{web.ready_note}, clock {args.clock}, "
              f"preset {args.preset}" + (f", recording to {take.path}" if take else ""),
              flush=True)
        for line in web.lines:
            print(line, flush=True)
        server.serve(stop)
    finally:
        server.shutdown()
        web.close()
        transport.close()
        clock.close()  # a Link clock leaves its session
    c = server.loop.counters
    log.info("stopped after %d bars: %d overruns, %d skipped, %d errors", c.bars, c.overruns,
             c.skipped_bars, c.bar_errors)
    return 0


def _stop_on_signals(stop: threading.Event, wake: Callable[[], None]) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: ending notes and stopping", signal.Signals(signum).name)
        stop.set()
        wake()  # notes end now, not at the loop's next scheduled wake-up

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
