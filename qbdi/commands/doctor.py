"""``qbdi doctor``: can ``qbdi serve`` work here, and if not, what to start or install.

Checks, in order: the MIDI APIs compiled into python-rtmidi, each backend of this platform
(ALSA sequencer, JACK server, CoreMIDI, Windows MM), the backend ``serve`` would use and
its ports, the OSC port (a bind test), the preset, the model (load) and one bar through
the improviser (timed against the time a bar has to compute).

Guarantees: nothing is started or left behind (JACK is probed with
``JACK_NO_START_SERVER``, the OSC socket is closed at once); every FAIL line says what to do;
the exit status is 0 exactly when no check FAILs, i.e. when ``serve`` with the same options
can start and keep up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qbdi.errors import QbdiError
from qbdi.server.backends import BACKENDS, JACKD_LINE, RTMIDI_APIS, backend_works, list_ports

OK, FAIL, INFO = "OK", "FAIL", "INFO"
PLATFORM_BACKENDS = {"linux": ("alsa", "jack"), "darwin": ("coremidi", "jack"),
                     "win32": ("windows",)}
TIMED_BARS = 5


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, how it went, and what to do about it."""

    name: str
    status: str  # OK | FAIL | INFO (INFO never fails the run)
    detail: str
    fix: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="check this MIDI backend (default: the one serve would detect)")
    parser.add_argument("--osc-host", default="127.0.0.1")
    parser.add_argument("--osc-port", type=int, default=9000)
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped one)")
    parser.add_argument("--preset", default="default")


# -- MIDI -------------------------------------------------------------------------------

def check_rtmidi() -> Check:
    import rtmidi

    names = [rtmidi.get_api_display_name(api) for api in rtmidi.get_compiled_api()]
    wanted = [RTMIDI_APIS[b] for b in PLATFORM_BACKENDS.get(sys.platform, ("alsa", "jack"))]
    have = [a for a in wanted if getattr(rtmidi, f"API_{a}") in rtmidi.get_compiled_api()]
    if have:
        return Check("rtmidi APIs", OK, ", ".join(names) + " compiled in")
    return Check("rtmidi APIs", FAIL, f"compiled in: {', '.join(names) or 'none'}",
                 "reinstall the python-rtmidi wheel: pip install --force-reinstall "
                 "python-rtmidi")


def _jack_fix() -> str:
    if shutil.which("jackd") is None:
        return f"install JACK (Debian/Ubuntu: apt-get install jackd2), then `{JACKD_LINE}`"
    server = os.environ.get("JACK_DEFAULT_SERVER", "default")
    named = "" if server == "default" else f" (server name {server!r}: add -n {server})"
    return f"start a JACK server{named}: `{JACKD_LINE}`"


def check_platform_backend(backend: str) -> Check:
    """Whether ``backend`` can make a MIDI client now; the fix names what to start."""
    works = backend_works(backend)
    if backend == "alsa":
        detail = ("ALSA sequencer /dev/snd/seq usable" if works else
                  "no ALSA sequencer (/dev/snd/seq)" if not os.path.exists("/dev/snd/seq")
                  else "/dev/snd/seq exists but cannot be opened")
        fix = ("load the sequencer (sudo modprobe snd-seq) and join the audio group; "
               "in Docker: docker run --device /dev/snd ...; or use JACK")
    elif backend == "jack":
        server = os.environ.get("JACK_DEFAULT_SERVER", "default")
        detail = f"JACK server {server!r} " + ("running" if works else "not running")
        fix = _jack_fix()
    else:
        detail = f"{RTMIDI_APIS[backend]} " + ("usable" if works else "not usable")
        fix = "CoreMIDI needs macOS" if backend == "coremidi" else \
            "Windows MM needs Windows; create ports with loopMIDI and pass --in/--out"
    return Check(f"MIDI {backend}", OK if works else FAIL, detail, "" if works else fix)


def midi_checks(chosen: str | None) -> tuple[list[Check], str | None]:
    """The per-backend checks and the backend serve would use (None: none works).

    A backend that does not work is only a FAIL when no backend serve could use works.
    """
    if chosen == "memory":
        return [Check("MIDI backend", INFO, "memory: no MIDI at all (smoke tests only)")], chosen
    candidates = (chosen,) if chosen else PLATFORM_BACKENDS.get(sys.platform, ("alsa", "jack"))
    checks = [check_platform_backend(b) for b in candidates]
    working = [c.name.split()[-1] for c in checks if c.status == OK]
    backend = working[0] if working else None
    if backend is not None:
        checks = [c if c.status == OK else Check(c.name, INFO, c.detail + " (not needed)")
                  for c in checks]
        checks.append(Check("MIDI backend", OK, f"serve will use --backend {backend}"))
    else:
        checks.append(Check("MIDI backend", FAIL, "no MIDI backend works",
                            "start or install one of the above (or --backend memory for a "
                            "smoke test without MIDI)"))
    return checks, backend


def check_ports(backend: str) -> Check:
    try:
        inputs, outputs = list_ports(backend)
    except QbdiError as err:
        return Check("MIDI ports", FAIL, str(err), "see the backend line above")
    shown = "; ".join([f"in: {', '.join(inputs) or 'none'}",
                       f"out: {', '.join(outputs) or 'none'}"])
    return Check("MIDI ports", INFO, shown + " (serve adds 'qbdi in' and 'qbdi out')")


# -- OSC, preset, model, one bar ----------------------------------------------------------

def check_osc(host: str, port: int) -> Check:
    """A UDP bind on ``host:port``, closed at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            return Check("OSC port", FAIL, f"cannot bind UDP {host}:{port}: {err.strerror}",
                         "stop what holds it (another qbdi serve?) or pick another with "
                         "--osc-port")
    return Check("OSC port", OK, f"UDP {host}:{port} is free")


def check_preset(name: str) -> tuple[Check, Any]:
    from qbdi.presets import load_preset

    try:
        preset = load_preset(name)
    except QbdiError as err:
        return Check("preset", FAIL, str(err), "fix the file or name a shipped preset "
                                               "(qbdi presets)"), None
    return Check("preset", OK, f"{name}: {preset.description or 'no description'}"), preset


def check_model(path: str | None) -> tuple[Check, Any]:
    from qbdi.models.checkpoint import default_checkpoint_path, load_checkpoint

    where = path or str(default_checkpoint_path())
    try:
        checkpoint = load_checkpoint(path)
    except (QbdiError, OSError, ValueError) as err:
        fix = ("reinstall qbdi (the shipped model is missing)" if path is None
               else "check the --model path (a qbdi .safetensors checkpoint)")
        return Check("model", FAIL, f"{where}: {err}", fix), None
    config = checkpoint.config
    return Check("model", OK, f"{where}: latent {config.latent_size}, hidden "
                              f"{config.hidden_size}"), checkpoint


def _test_bar() -> Any:
    """A C major arpeggio over one bar, the kind of bar a player sends."""
    from qbdi.bars import Note, notes_to_bars

    notes = [Note(step, pitch, step + 4) for step, pitch in zip((0, 4, 8, 12),
                                                                 (60, 64, 67, 72), strict=True)]
    return notes_to_bars(notes, 1)[0]


def check_bar(checkpoint: Any, preset: Any, clock: Callable[[], float]) -> Check:
    """Time one bar through the improviser against the half sixteenth it has to compute."""
    from qbdi.improviser import Improviser

    try:
        improviser = Improviser.from_checkpoint(checkpoint)
        bar = _test_bar()
        times_ms = []
        for _ in range(TIMED_BARS):
            start = clock()
            improviser.step(bar, preset.improviser)
            times_ms.append((clock() - start) * 1e3)
    except Exception as err:  # any failure here is what serve would hit on every bar
        return Check("one bar", FAIL, f"{type(err).__name__}: {err}",
                     "report this with the model and preset used")
    budget_ms = 60_000.0 / preset.tempo_bpm / 4 / 2  # half a sixteenth at the preset tempo
    median_ms = statistics.median(times_ms)
    detail = (f"median {median_ms:.1f} ms over {TIMED_BARS} bars (mode "
              f"{preset.improviser.mode}, bits {preset.improviser.budget_bits}); budget "
              f"{budget_ms:.0f} ms at {preset.tempo_bpm:g} BPM")
    if median_ms > budget_ms:
        return Check("one bar", FAIL, detail, "answers would be late every bar: use a "
                     "slower tempo, a smaller model, or a faster machine")
    return Check("one bar", OK, detail)


def check_link() -> Check:
    try:
        import aalink  # noqa: F401
    except ImportError:
        return Check("Ableton Link", INFO, "aalink not installed: --clock link unavailable "
                                           '(pip install "qbdi[link]")')
    return Check("Ableton Link", INFO, "aalink installed: --clock link available")


# -- the report -------------------------------------------------------------------------

def run_checks(args: argparse.Namespace, clock: Callable[[], float]) -> list[Check]:
    checks = [check_rtmidi()]
    midi, backend = midi_checks(args.backend)
    checks += midi
    if backend is not None and backend != "memory":
        checks.append(check_ports(backend))
    checks.append(check_osc(args.osc_host, args.osc_port))
    preset_check, preset = check_preset(args.preset)
    model_check, checkpoint = check_model(args.model)
    checks += [preset_check, model_check]
    if preset is not None and checkpoint is not None:
        checks.append(check_bar(checkpoint, preset, clock))
    checks.append(check_link())
    return checks


def format_report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.status:4s}  {check.name:{width}s}  {check.detail}")
        if check.fix:
            lines.append(f"{'':4s}  {'':{width}s}  fix: {check.fix}")
    failed = [c.name for c in checks if c.status == FAIL]
    lines.append("")
    lines.append("qbdi serve can work here." if not failed else
                 f"qbdi serve cannot work yet: fix {', '.join(failed)} (see 'fix:' above).")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Check MIDI backends, ports, the OSC port, the model and one bar; say what to fix.

    Prints the report; 0 when serve can work, 1 when a check failed."""
    import time

    checks = run_checks(args, time.perf_counter)
    print(format_report(checks), flush=True)
    return 1 if any(c.status == FAIL for c in checks) else 0
