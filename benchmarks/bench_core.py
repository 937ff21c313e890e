"""Core benchmarks: per-bar encode+decode latency on one thread, batched render throughput
(model + channel), and the wall time of `qbdi render` on a long real file, start-up included.

Run: python benchmarks/bench_core.py [--model PATH] [--json OUT.json] [--cpu-time]
Prints a table; the numbers are this machine's (2-core CPU here). ``--cpu-time`` times with
the CPU time of the thread (per bar) or the process (batched) instead of the wall clock, so
that on a shared, loaded machine the time the scheduler gave to others is left out; batched
rendering is then reported per CPU-second, which two idle cores would double at best.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# One thread for the latency numbers: set before numpy loads its BLAS. The throughput run
# (QBDI_BENCH_THROUGHPUT set) uses every core, and so does an importer (run_all.py's render
# part measures throughput through bench_throughput).
ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
if __name__ == "__main__" and "QBDI_BENCH_THROUGHPUT" not in os.environ:
    for name in ONE_THREAD:
        os.environ.setdefault(name, "1")

import numpy as np  # noqa: E402

from qbdi.bars import flatten_bars, notes_to_bars  # noqa: E402
from qbdi.improviser import Improviser  # noqa: E402
from qbdi.midifile import read_midi  # noqa: E402
from qbdi.models.checkpoint import load_checkpoint  # noqa: E402
from qbdi.models.runtime import InferenceModel, logits_to_bars  # noqa: E402
from qbdi.presets import load_preset  # noqa: E402
from qbdi.render import improvise  # noqa: E402
from qbdi.settings import ImproviserSettings  # noqa: E402

QUERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "queries"
LONG_QUERY = QUERIES / "prokofiev-prksn2_4-six-eight.mid"  # 4 min 24 s, 249 frames


def percentile_ms(samples_s: list[float], q: float) -> float:
    return float(np.percentile(samples_s, q) * 1e3)


STEP_PRESET = os.environ.get("QBDI_BENCH_PRESET", "default")  # the live step's settings

# The clock of every timing below; --cpu-time swaps in CPU-time clocks (set before any run).
CLOCKS = {"wall": (time.perf_counter, time.perf_counter),
          "cpu": (time.thread_time, time.process_time)}
bar_clock, batch_clock = CLOCKS[os.environ.get("QBDI_BENCH_CLOCK", "wall")]


def bench_bar_latency(model: InferenceModel, bars: np.ndarray, repeats: int = 2000) -> dict:
    flat = flatten_bars(bars)
    samples = []
    for i in range(repeats):
        row = flat[i % len(flat)][None]
        started = bar_clock()
        mu, _ = model.encode(row)
        logits_to_bars(model.decode_logits(mu), 0.7)
        samples.append(bar_clock() - started)
    return {"median_ms": percentile_ms(samples, 50), "p99_ms": percentile_ms(samples, 99)}


def bench_step_latency(improviser: Improviser, bars: np.ndarray, repeats: int = 2000) -> dict:
    settings = load_preset(STEP_PRESET).improviser.model_copy(update={"budget_bits": 256})
    improviser.step(bars[0], settings)  # the first step starts the stream afresh: not timed
    # As `qbdi serve` does once it has started: start-up objects are frozen out of the
    # collector, so a full collection cannot scan them in the middle of a bar.
    gc.collect()
    gc.freeze()
    samples = []
    for i in range(repeats):
        started = bar_clock()
        improviser.step(bars[i % len(bars)], settings)
        samples.append(bar_clock() - started)
    return {"median_ms": percentile_ms(samples, 50), "p99_ms": percentile_ms(samples, 99)}


def bench_throughput(checkpoint, bars: np.ndarray, budget, n_bars: int = 16384) -> float:
    """Bars per second of improvise() on a large batch (model + channel time only), the best
    of three runs after a warm-up run of the same size: steady state, once the allocator
    holds the batch's working set (the first run also pays for faulting it in)."""
    batch = bars[np.arange(n_bars) % len(bars)]
    improviser = Improviser.from_checkpoint(checkpoint)
    settings = ImproviserSettings(stats="query", budget_bits=budget)
    improvise(improviser, batch, settings)  # warm up
    best_s = float("inf")
    for _ in range(3):
        started = batch_clock()
        improvise(improviser, batch, settings)
        best_s = min(best_s, batch_clock() - started)
    return n_bars / best_s


def bench_render_wall(model_arg: list[str], out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "qbdi.cli", "render", str(LONG_QUERY), "-o", str(out),
                    "--bits", "256", *model_arg], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--preset", default=None,
                        help="the settings of the live step (a preset's name or file)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with CPU time, not wall time (a loaded machine)")
    args = parser.parse_args()
    if args.preset:
        global STEP_PRESET
        STEP_PRESET = args.preset
    if args.cpu_time:
        os.environ["QBDI_BENCH_CLOCK"] = "cpu"  # for the throughput run in a subprocess too
        global bar_clock, batch_clock
        bar_clock, batch_clock = CLOCKS["cpu"]
    checkpoint = load_checkpoint(args.model)
    bars = notes_to_bars(read_midi(LONG_QUERY).notes)
    model = InferenceModel.from_checkpoint(checkpoint)
    improviser = Improviser.from_checkpoint(checkpoint)
    results = {
        "model": checkpoint.path,
        "encode_decode_1thread": bench_bar_latency(model, bars),
        "improviser_step_1thread_256bits": bench_step_latency(improviser, bars),
    }
    # Throughput may use both cores: this script again, without the one-thread limits.
    env = {k: v for k, v in os.environ.items() if k not in ONE_THREAD}
    env["QBDI_BENCH_THROUGHPUT"] = checkpoint.path
    throughput = subprocess.run([sys.executable, __file__], check=True, capture_output=True,
                                text=True, env=env).stdout
    results["render_bars_per_s_2cores"] = json.loads(throughput)
    model_arg = ["--model", str(args.model)] if args.model else []
    out = Path("/tmp/qbdi-bench-render.mid")
    results["render_wall_s_264s_file"] = min(bench_render_wall(model_arg, out) for _ in range(3))
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def print_table(results: dict) -> None:
    cpu = os.environ.get("QBDI_BENCH_CLOCK") == "cpu"
    per_s = "bars/CPU-s" if cpu else "bars/s"
    bar_unit = "median/p99 CPU ms" if cpu else "median / p99 ms"
    rows = [
        ("encode+decode one bar, 1 thread", bar_unit,
         f"{results['encode_decode_1thread']['median_ms']:.3f} / "
         f"{results['encode_decode_1thread']['p99_ms']:.3f}", "p99 <= 0.5"),
        (f"improviser.step ({Path(STEP_PRESET).stem} preset, 256 bits), 1 thread", bar_unit,
         f"{results['improviser_step_1thread_256bits']['median_ms']:.3f} / "
         f"{results['improviser_step_1thread_256bits']['p99_ms']:.3f}", "p99 <= 0.5"),
        ("batched render, 256 bits (model+channel)", per_s,
         f"{results['render_bars_per_s_2cores']['256']:,.0f}", ">= 20,000"),
        ("batched render, full rate", per_s,
         f"{results['render_bars_per_s_2cores']['full']:,.0f}", ">= 20,000"),
        ("qbdi render, 4m24s file, start-up included", "s wall",
         f"{results['render_wall_s_264s_file']:.2f}", "<= 1"),
    ]
    print(f"{'benchmark':<52} {'unit':<16} {'measured':>16} {'target':>12}")
    for name, unit, value, target in rows:
        print(f"{name:<52} {unit:<16} {value:>16} {target:>12}")


def throughput_only(checkpoint_path: str) -> None:
    checkpoint = load_checkpoint(checkpoint_path)
    bars = notes_to_bars(read_midi(LONG_QUERY).notes)
    print(json.dumps({str(b): bench_throughput(checkpoint, bars, b) for b in (256, "full")}))


if __name__ == "__main__":
    if "QBDI_BENCH_THROUGHPUT" in os.environ:
        throughput_only(os.environ["QBDI_BENCH_THROUGHPUT"])
    else:
        main()
