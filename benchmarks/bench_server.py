"""Benchmark the live server: per-bar compute, output timing through JACK, ready time.

    python benchmarks/bench_server.py [--model PATH] [--bars 2000] [--seconds 8]

* compute: ``Improviser.step`` per bar on one thread (BLAS threads pinned to 1), with the
  default preset's settings, over the bars of the real query files, each step right after
  the last (the target's measure); then one bar over and over (the machine's own spread);
  then 300 of the query bars with a 20 ms pause before each, as a bar on stage follows
  tenths of a second of other work (the step then starts with the CPU's caches and
  predictors holding other work: on this shared 2-core VM it costs two to three times as much);
* timing: ``qbdi serve --backend jack`` in echo mode at 120 BPM; a real query is played into
  "qbdi in" and the note-ons received on "qbdi out" are compared with the ideal sixteenth
  grid (fitted to the stream: a constant latency is not an error), and the JACK period;
* ready: seconds from starting ``qbdi serve`` to its "ready" line (ports open).

Without the shipped model a random model of the paper's size (2496-500-500) stands in:
compute cost depends on the sizes, not on the weights. Targets: compute p99 <= 0.5 ms,
timing p99 <= 1 ms beyond the JACK period, ready <= 1.5 s.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core, as the target says; before numpy is imported

import argparse  # noqa: E402
import gc  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from qbdi.bars import notes_to_bars  # noqa: E402
from qbdi.improviser import Improviser  # noqa: E402
from qbdi.midifile import read_midi  # noqa: E402
from qbdi.models.checkpoint import (  # noqa: E402
    CorpusStats,
    default_checkpoint_path,
    expected_shapes,
    save_checkpoint,
)
from qbdi.models.config import ModelCard, ModelConfig  # noqa: E402
from qbdi.presets import load_preset  # noqa: E402

QUERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "queries"
JACK_RATE_HZ, JACK_PERIOD_FRAMES = 48_000, 128
# The paused row: a bar on stage follows tenths of a second of other work, not the last bar.
PAUSE_S, PAUSED_BARS = 0.02, 300


def random_checkpoint(path: Path) -> Path:
    """A paper-size checkpoint with random weights (same compute as a trained one)."""
    rng = np.random.default_rng(0)
    config = ModelConfig()
    weights = {name: (rng.standard_normal(shape) * 0.05).astype(np.float32)
               for name, shape in expected_shapes(config).items()
               if not name.startswith("stats.")}
    latent = config.latent_size
    ones = np.ones(latent, np.float32)
    stats = CorpusStats(np.zeros(latent, np.float32), ones, np.zeros(latent, np.float32),
                        ones * 2, ones)
    card = ModelCard(corpus="random (benchmark)", pieces_train=0, pieces_heldout=0,
                     bars_train=0, bars_heldout=0, epochs=0, seed=0, train_seconds=0.0)
    save_checkpoint(path, config, card, weights, stats)
    return path


def query_bars() -> np.ndarray:
    files = sorted(QUERIES.glob("*.mid"))
    return np.concatenate([notes_to_bars(read_midi(path).notes) for path in files])


def bench_compute(model: Path, n_bars: int) -> dict[str, float]:
    """``Improviser.step`` on the bars of the shared queries in turn, and then on one bar
    over and over (``same_bar_*``): the second is this machine's spread for the same work,
    which tells the bars' content apart from the machine's noise in the first."""
    from qbdi.models.checkpoint import load_checkpoint

    settings = load_preset("default").improviser
    improviser = Improviser.from_checkpoint(load_checkpoint(model))
    bars = query_bars()
    for bar in bars[:50]:
        improviser.step(bar, settings)  # warm caches
    gc.collect()  # and freeze start-up objects out of the collector, as `qbdi serve` does
    gc.freeze()
    in_turn = [bars[i % len(bars)] for i in range(n_bars)]
    ms = _step_times_ms(improviser, settings, in_turn)
    same = _step_times_ms(improviser, settings, [bars[len(bars) // 2]] * n_bars)
    paused = _step_times_ms(improviser, settings, in_turn[:PAUSED_BARS], PAUSE_S)
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "same_bar_median_ms": float(np.median(same)),
            "same_bar_p99_ms": float(np.percentile(same, 99)),
            "paused_median_ms": float(np.median(paused)),
            "paused_p99_ms": float(np.percentile(paused, 99))}


def _step_times_ms(improviser: Improviser, settings, bars: list,
                   pause_s: float = 0.0) -> np.ndarray:
    """Each step's wall time; with ``pause_s``, after a sleep that long (untimed)."""
    times_s = []
    for bar in bars:
        if pause_s:
            time.sleep(pause_s)
        started_s = time.perf_counter()
        improviser.step(bar, settings)
        times_s.append(time.perf_counter() - started_s)
    return np.array(times_s) * 1e3


def start_serve(model: Path, preset: Path, extra_args: tuple[str, ...] = ()
                ) -> tuple[subprocess.Popen, float]:
    started_s = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "jack", "--model", str(model),
         "--preset", str(preset), "--osc-port", "0", "--quiet", *extra_args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in process.stdout:
        if "ready" in line:
            return process, time.perf_counter() - started_s
    raise RuntimeError(f"qbdi serve did not start: {process.stderr.read()}")


def stop_serve(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)


def bench_timing(model: Path, preset: Path, seconds: float,
                 extra_args: tuple[str, ...] = ()) -> dict[str, float]:
    """Note-on times on "qbdi out" against the grid, while a real query is played in for
    ``seconds``; ``extra_args`` go to ``qbdi serve`` (e.g. ``--record DIR``)."""
    import mido

    from qbdi.server.backends import resolve_port

    process, _ = start_serve(model, preset, extra_args)
    try:
        rt = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        times_s: list[float] = []
        listener = rt.open_input(
            resolve_port("qbdi out", rt.get_input_names(), "input"),
            callback=lambda m: times_s.append(time.perf_counter()) if m.type == "note_on"
            and m.velocity else None)
        player = rt.open_output(resolve_port("qbdi in", rt.get_output_names(), "output"))
        time.sleep(0.3)
        step_s = 60.0 / 120.0 / 4
        notes = read_midi(QUERIES / "prokofiev-visions-fugitives-vf_no1.mid").notes
        events = sorted([(n.start_step, 1, n.pitch) for n in notes] +
                        [(n.end_step, 0, n.pitch) for n in notes])
        t0_s = time.perf_counter()
        for step, kind, pitch in events:
            if step * step_s > seconds:
                break
            while time.perf_counter() < t0_s + step * step_s:
                time.sleep(0.0005)
            player.send(mido.Message("note_on" if kind else "note_off", channel=1, note=pitch,
                                     velocity=90))
        time.sleep(4 * 16 * step_s)
        listener.close()
        player.close()
    finally:
        stop_serve(process)
    t = np.array(times_s)
    phase = (t - t[0]) / step_s
    error_s = (phase - np.round(phase)) * step_s
    error_s -= np.median(error_s)  # a constant latency is no timing error
    abs_ms = np.abs(error_s) * 1e3
    return {"notes": float(len(t)), "median_ms": float(np.median(abs_ms)),
            "p99_ms": float(np.percentile(abs_ms, 99)), "max_ms": float(abs_ms.max()),
            "period_ms": JACK_PERIOD_FRAMES / JACK_RATE_HZ * 1e3}


def bench_ready(model: Path, preset: Path, runs: int = 3) -> list[float]:
    ready_s = []
    for _ in range(runs):
        process, seconds = start_serve(model, preset)
        ready_s.append(seconds)
        stop_serve(process)
    return ready_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qbdi-bench-"))
    model = args.model or (default_checkpoint_path() if default_checkpoint_path().is_file()
                           else random_checkpoint(work / "random.safetensors"))
    preset = work / "echo.toml"
    preset.write_text('tempo_bpm = 120.0\n[improviser]\nmode = "echo"\n')
    print(f"model: {model}")
    compute = bench_compute(model, args.bars)
    print("| measure | median | p99 | max | target |")
    print("|---|---|---|---|---|")
    print(f"| per-bar compute, 1 thread (ms) | {compute['median_ms']:.3f} | "
          f"{compute['p99_ms']:.3f} | {compute['max_ms']:.3f} | p99 <= 0.5 |")
    print(f"| the same, 20 ms pause before each bar (ms) | {compute['paused_median_ms']:.3f} | "
          f"{compute['paused_p99_ms']:.3f} | | |")
    try:
        timing = bench_timing(model, preset, args.seconds)
        # long enough to hold one of the take's saves (every 10 s)
        recording = bench_timing(model, preset, max(args.seconds, 12.0),
                                 ("--record", str(work)))
        ready = bench_ready(model, preset)
    except (RuntimeError, OSError) as err:
        print(f"| JACK timing / ready | not measured: {err} | | | |")
        return 1
    print(f"| output timing error vs grid, JACK (ms; {timing['notes']:.0f} notes; period "
          f"{timing['period_ms']:.2f} ms) | {timing['median_ms']:.3f} | {timing['p99_ms']:.3f} "
          f"| {timing['max_ms']:.3f} | p99 <= 1 beyond period |")
    print(f"| the same while recording a take (--record; {recording['notes']:.0f} notes) | "
          f"{recording['median_ms']:.3f} | {recording['p99_ms']:.3f} | "
          f"{recording['max_ms']:.3f} | as without |")
    print(f"| qbdi serve ready (s; {len(ready)} runs) | {np.median(ready):.3f} | "
          f"{max(ready):.3f} | {max(ready):.3f} | <= 1.5 |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
