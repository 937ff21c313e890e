"""``qbdi serve``: build the server from command-line options and run it until SIGINT or
SIGTERM.

Start-up fails at once (a :class:`~qbdi.errors.QbdiError`, exit 2) when the preset, the
model, the MIDI backend, the OSC socket, a web port or the ``--name`` is unusable; it never
falls back to another device silently. Once the ports, the OSC socket and the web ports are
open it prints one ``ready`` line on stdout (tests and benchmarks wait for it); with
``--web``, the next line gives the surface's address with its token.

Nothing it prints can stop the music: logs and the ready line go through writer threads
(:mod:`~qbdi.server.logs`), the terminal view draws on its own thread, and shutdown waits
for them only a bounded time.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from qbdi.commands import serve_web
from qbdi.commands.serve_args import add_arguments  # noqa: F401  (the CLI table's)
from qbdi.errors import QbdiError, check_writable
from qbdi.presets import cc_table, load_named_preset, load_preset, preset_path
from qbdi.presets import preset_dir as shipped_preset_dir
from qbdi.server.backends import detect_backend
from qbdi.server.bounded_log import LogTicker
from qbdi.server.clocks import Clock, InternalClock, MidiClockFollower
from qbdi.server.logs import Output
from qbdi.server.midi_input import MALFORMED
from qbdi.server.osc_transport import OscTransport, check_bind, parse_target
from qbdi.server.ports import CLIENT_NAME, MemoryPorts, MidoPorts, Ports
from qbdi.server.status import StatusLine
from qbdi.server.take import Take, TakeListener
from qbdi.settings import MAX_TEMPO_BPM, MIN_TEMPO_BPM, Preset, changed, describe_error

log = logging.getLogger("qbdi.server")


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


def take_path(record: Path, now: datetime.datetime | None = None,
              name: str = CLIENT_NAME) -> Path:
    """The file ``--record`` writes: a new dated file ``NAME-take-DATE-TIME.mid`` in a
    folder, or the file named, which must not exist yet (a take never overwrites another).
    Refused before serving starts."""
    if record.is_dir():
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        record = record / f"{name}-take-{stamp}.mid"
    if record.exists():
        raise QbdiError(f"--record {record}: already exists; a take never overwrites a file "
                        "(give a new name, or a folder for a dated file)")
    check_writable(record, "--record")
    return record


def open_ports(backend: str | None, in_port: str | None, out_port: str | None,
               name: str = CLIENT_NAME, controls_port: str | None = None) -> Ports:
    """The ports for ``--backend`` (detected when None); fails at once when none works."""
    backend = backend or detect_backend()
    if backend == "memory":
        return MemoryPorts(controls=controls_port is not None)
    return MidoPorts(backend, in_port, out_port, name, controls_port)


def log_prefix(name: str) -> str:
    return "qbdi serve" if name == CLIENT_NAME else f"qbdi serve [{name}]"


def wants_view(args: argparse.Namespace) -> bool:
    """The live view: on a terminal, unless plain logs were asked for."""
    return not (args.quiet or args.log_json or args.no_view) and os.isatty(1)


def run(args: argparse.Namespace) -> int:
    """Serve live: read bars on a MIDI input, answer them on a MIDI output, OSC control.

    Runs until SIGINT/SIGTERM; every note ends before exit."""
    output = Output(args.quiet, args.log_json, log_prefix(args.name), server=args.name)
    try:
        return _serve(args, output)
    except QbdiError as err:
        # Said through the writer, as everything else: printing it here could block the
        # exit on a stderr nobody reads (a port lost while the output is stalled).
        if args.log_json:
            log.error("%s", err)
        else:
            output.log.put(f"{log_prefix(args.name)}: error: {err}")
        return 2
    finally:
        output.close()


def _serve(args: argparse.Namespace, output: Output) -> int:
    from threadpoolctl import threadpool_limits

    from qbdi.improviser import load_improvisers
    from qbdi.server.memory_lock import lock_memory
    from qbdi.server.session import Server
    from qbdi.server.view_feed import ViewFeed

    # One bar is one row: BLAS threads only add wake-ups. Unpinned, per-bar compute in the
    # server measured 10 ms median / 24 ms p99 on the 2-core machine under load, pinned
    # 1.5 / 4.1 ms (benchmarks/bench_stage.py).
    threadpool_limits(limits=1, user_api="blas")

    state = starting_state(args.preset, args.bpm)
    preset_dir = user_preset_dir(args.preset, args.preset_dir)
    feedback = parse_target(args.feedback) if args.feedback else None
    take = Take(take_path(args.record, name=args.name)) if args.record is not None else None
    allow = check_bind(args.osc_host, serve_web.split_ips(args.osc_allow))
    web = serve_web.WebParts(args, sorted(allow), preset_dir)
    ports = open_ports(args.backend, args.in_port, args.out_port, args.name, args.controls_port)
    models, model = load_improvisers(args.model or state.model)
    web.choices["models"] = list(models)
    state = changed(state, model=model)
    clock, state = make_clock(args.clock, state, args.bpm is not None)
    transport = OscTransport(args.osc_host, args.osc_port, allow, feedback, args.osc_rate)
    feed = ViewFeed(clock, state) if wants_view(args) else None
    listeners = [feed or StatusLine(args.quiet, args.log_json), *web.listeners()]
    listeners += [TakeListener(take)] if take is not None else []
    midi_log = getattr(ports, "midi_log", None)  # real ports count malformed MIDI
    listeners += [LogTicker(midi_log)] if midi_log is not None else []

    def refusals() -> list:
        midi = [] if midi_log is None else ["midi_malformed", midi_log.count(MALFORMED)]
        return (transport.status_counts() + midi + output.status_counts()
                + web.status_counts())

    server = Server(ports, clock, models[model], state, models=models,
                    feedback=web.feedback(transport), listeners=listeners,
                    preset_loader=functools.partial(load_named_preset, user_dir=preset_dir),
                    status_counts=refusals, ir_taps=[feed.ir] if feed is not None else [],
                    close_ahead_s=args.close_ahead_ms / 1e3)
    stop = threading.Event()
    _stop_on_signals(stop, server.loop.inbox.wake)
    # Start-up objects (the model, numpy, mido) never become garbage: freezing them keeps a
    # full collection from scanning them in the middle of a bar.
    gc.collect()
    gc.freeze()
    memory_note = "memory not locked (--lock-memory locks it)"
    if args.lock_memory:
        _, memory_note = lock_memory()
    view = None
    try:
        server.start()
        transport.start(server.post_osc)
        web.start(server.post_osc, lambda: server.loop.state, transport.host, transport.port)
        controls = f", controls {ports.controls_name!r}" if ports.controls_name else ""
        output.say(f"{log_prefix(args.name)}: ready: in {ports.in_name!r}, out "
                   f"{ports.out_name!r}{controls}, osc {transport.host}:{transport.port}"
                   f"{web.ready_note}, clock {args.clock}, preset {args.preset}"
                   + (f", recording to {take.path}" if take else ""))
        for line in (*web.lines, f"{log_prefix(args.name)}: {memory_note}"):
            output.say(line)
        if feed is not None:
            view = start_view(feed, server, args.name, refusals, stop, output)
        server.serve(stop)
    finally:
        server.shutdown()
        web.close()
        transport.close()
        clock.close()  # a Link clock leaves its session
        if view is not None:
            stop_view(view, output)
    c = server.loop.counters
    log.info("stopped after %d bars: %d overruns, %d skipped, %d errors", c.bars, c.overruns,
             c.skipped_bars, c.bar_errors)
    if server.state.controls.cc != state.controls.cc:
        log.warning("MIDI controls learned this session; to keep them, put this in your "
                    "preset:\n%s", cc_table(server.state.controls.cc))
    return 0


def start_view(feed, server, name: str, counts: Callable[[], list], stop: threading.Event,
               output: Output):
    """The live terminal view, drawing until :func:`stop_view`; log lines print above it
    when stderr is a terminal too."""
    from qbdi.server.view import TerminalView

    def quit_serving() -> None:
        stop.set()
        server.wake()

    view = TerminalView(feed, lambda address, values: server.post_osc(address, values, None),
                        name, counts=counts, on_quit=quit_serving)
    if os.isatty(2):  # logs print above the view; stderr sent elsewhere keeps them
        output.log.sink = view.add_log_line
    view.start()
    return view


def stop_view(view, output: Output) -> None:
    """Stop the view (bounded) and give its unprinted log lines back to plain output."""
    view.close(0.2)
    output.log.sink = None
    for line in view.unprinted_lines():
        output.log.put(line)


def _stop_on_signals(stop: threading.Event, wake: Callable[[], None]) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: ending notes and stopping", signal.Signals(signum).name)
        stop.set()
        wake()  # notes end now, not at the loop's next scheduled wake-up

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
