"""Benchmark ``qbdi serve`` on stage: output timing through JACK and per-bar compute in
the server, quiet, under a flood of bad OSC with its output blocked, and with the live
terminal view drawing.

    python benchmarks/bench_stage.py [--model PATH] [--seconds 8] [--compute-seconds 15]
                                     [--repeat 2]

Conditions (each a fresh ``qbdi serve --backend jack`` process):

* quiet: stdout and stderr to /dev/null, plain logs (``--no-view``): the baseline;
* flood: the same, but stdout and stderr on a pipe that is full from the start and never
  read, while 1,000 bad datagrams a second arrive (malformed, unknown addresses, refused
  values; beyond ``--osc-rate`` most are dropped as rate-limited);
* view: under a pseudo-terminal read as fast as it is written, the live view drawing.

Measures per condition:

* timing: echo mode at 480 BPM (four times the notes of ``bench_server.py``'s 120, so a
  p99 rests on more of them), a real query played into "NAME in"; the note-ons heard on
  "NAME out" against the ideal sixteenth grid (as ``bench_server.py``), and the share of
  them more than 2 ms off it (robust to the rare stall of a shared machine, sensitive to
  a thread that keeps the loop waiting);
* compute: query mode at 960 BPM (a bar every 0.25 s) with the query played in; each bar's
  compute time as the server reports it (``/qbdi/bar``, through ``--feedback``).

With ``--repeat N`` the conditions run N times, interleaved (quiet, flood, view, quiet,
...), so a shared machine's load drifts over all of them alike; the samples of a condition
are pooled. Numbers only: nothing asserts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from pythonosc.osc_packet import OscPacket
from stage_rig import free_port, serving

from qbdi.midifile import read_midi

QUERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "queries"
QUERY = QUERIES / "prokofiev-visions-fugitives-vf_no1.mid"
CONDITIONS = ("quiet", "flood", "view")
TIMING_BPM = 480.0
LATE_MS = 2.0  # a note further than this from the grid counts as late


def play_and_listen(name: str, seconds: float, tempo_bpm: float) -> list[float]:
    """Play the query into "NAME in" at ``tempo_bpm`` for ``seconds``; the times of the
    note-ons heard on "NAME out" (until a bar after the last note)."""
    import mido

    from qbdi.server.backends import resolve_port

    rt = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    times_s: list[float] = []
    listener = rt.open_input(
        resolve_port(f"{name} out", rt.get_input_names(), "input"),
        callback=lambda m: times_s.append(time.perf_counter())
        if m.type == "note_on" and m.velocity else None)
    player = rt.open_output(resolve_port(f"{name} in", rt.get_output_names(), "output"))
    time.sleep(0.3)
    step_s = 60.0 / tempo_bpm / 4
    notes = read_midi(QUERY).notes
    length = max(n.end_step for n in notes)
    repeats = range(8)  # the query again and again, for as long as asked
    events = sorted([(n.start_step + k * length, 1, n.pitch) for n in notes for k in repeats]
                    + [(n.end_step + k * length, 0, n.pitch) for n in notes for k in repeats])
    t0_s = time.perf_counter()
    for step, kind, pitch in events:
        if step * step_s > seconds:
            break
        while time.perf_counter() < t0_s + step * step_s:
            time.sleep(0.0005)
        player.send(mido.Message("note_on" if kind else "note_off", note=pitch, velocity=90))
    time.sleep(2 * 16 * step_s)
    listener.close()
    player.close()
    return times_s


def grid_errors_ms(times_s: list[float], tempo_bpm: float) -> list[float]:
    """Each note-on's distance to the sixteenth grid fitted to them (as bench_server.py)."""
    step_s = 60.0 / tempo_bpm / 4
    t = np.array(times_s)
    phase = (t - t[0]) / step_s
    error_s = (phase - np.round(phase)) * step_s
    error_s -= np.median(error_s)  # a constant latency is no timing error
    return list(np.abs(error_s) * 1e3)


def summary(values_ms: list[float]) -> dict[str, float]:
    ms = np.array(values_ms)
    return {"n": float(len(ms)), "median_ms": float(np.median(ms)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            "late_pct": float(np.mean(ms > LATE_MS) * 100)}


def _bar_computes(sock: socket.socket, stop: threading.Event, out: list[float]) -> None:
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            data, _ = sock.recvfrom(65_535)
        except TimeoutError:
            continue
        with contextlib.suppress(Exception):
            for timed in OscPacket(data).messages:
                if timed.message.address == "/qbdi/bar":
                    out.append(float(timed.message.params[1]))


def run_condition(condition: str, model: Path, seconds: float,
                  compute_seconds: float) -> dict[str, list[float]]:
    """Samples under ``condition``: timing errors (echo, 480 BPM) and per-bar compute
    times (query, 960 BPM), in ms."""
    work = Path(tempfile.mkdtemp(prefix="qbdi-bench-stage-"))
    echo, query = work / "echo.toml", work / "query.toml"
    echo.write_text(f'tempo_bpm = {TIMING_BPM}\n[improviser]\nmode = "echo"\n')
    query.write_text('tempo_bpm = 960.0\n[improviser]\nmode = "query"\n')
    samples: dict[str, list[float]] = {}
    for preset, tempo_bpm, secs, key in ((echo, TIMING_BPM, seconds, "timing"),
                                         (query, 960.0, compute_seconds, "compute")):
        name = f"bench-{condition}-{os.getpid()}"
        feedback = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        feedback.bind(("127.0.0.1", 0))
        computes: list[float] = []
        stop = threading.Event()
        reader = threading.Thread(target=_bar_computes, args=(feedback, stop, computes))
        reader.start()
        try:
            with serving(condition, model, preset, name, free_port(),
                         feedback.getsockname()[1]):
                times_s = play_and_listen(name, secs, tempo_bpm)
        finally:
            stop.set()
            reader.join()
            feedback.close()
        # (the first bar's compute pays for warming caches)
        samples[key] = grid_errors_ms(times_s, tempo_bpm) if key == "timing" else computes[1:]
    return samples


def bench_conditions(model: Path, seconds: float, compute_seconds: float,
                     conditions: tuple[str, ...] = CONDITIONS, repeat: int = 1) -> dict:
    """Per condition: pooled timing and compute summaries over ``repeat`` interleaved
    runs (or the error of a run that failed)."""
    pooled: dict[str, dict[str, list[float]]] = {c: {"timing": [], "compute": []}
                                                 for c in conditions}
    errors: dict[str, str] = {}
    for _ in range(repeat):
        for condition in conditions:
            print(f"running {condition} ...", file=sys.stderr, flush=True)
            try:
                samples = run_condition(condition, model, seconds, compute_seconds)
            except (RuntimeError, OSError) as err:
                errors[condition] = str(err)[:160]
                continue
            for key, values in samples.items():
                pooled[condition][key] += values
    return {c: {"error": errors[c]} if c in errors else
            {"timing": summary(p["timing"]), "compute": summary(p["compute"]),
             "runs": repeat} for c, p in pooled.items()}


def table(results: dict[str, dict]) -> list[str]:
    lines = ["| condition | output timing vs grid, JACK: median / p99 / max (ms), late > "
             f"{LATE_MS:g} ms | per-bar compute in the server: median / p99 / max (ms) |",
             "|---|---|---|"]
    for condition, r in results.items():
        if "error" in r:
            lines.append(f"| {condition} | not measured: {r['error']} | |")
            continue
        t, c = r["timing"], r["compute"]
        lines.append(f"| {condition} | {t['median_ms']:.3f} / {t['p99_ms']:.3f} / "
                     f"{t['max_ms']:.3f}, {t['late_pct']:.1f} % ({t['n']:.0f} notes) | "
                     f"{c['median_ms']:.3f} / "
                     f"{c['p99_ms']:.3f} / {c['max_ms']:.3f} ({c['n']:.0f} bars) |")
    return lines


def main() -> int:
    import argparse

    from qbdi.models.checkpoint import default_checkpoint_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--compute-seconds", type=float, default=15.0)
    parser.add_argument("--only", default=",".join(CONDITIONS))
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    model = args.model or default_checkpoint_path()
    results = bench_conditions(model, args.seconds, args.compute_seconds,
                               tuple(args.only.split(",")), args.repeat)
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
