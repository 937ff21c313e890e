"""Every benchmark in one command: one table on stdout, and JSON with ``--json OUT``.

    python benchmarks/run_all.py [--quick] [--json OUT.json] [--model PATH] [--bach]

Each part runs in its own process (this script with ``--part NAME``), so the one-core parts
pin BLAS to one thread before numpy loads while the throughput part uses every core:

* compute: ``Improviser.step`` per bar, one thread, default preset (bench_server.py);
* timing / ready: ``qbdi serve --backend jack`` in echo mode, note-ons vs the ideal grid
  (also while recording a take with ``--record``), and seconds to the "ready" line
  (bench_server.py; a JACK dummy server is started if none runs);
* render: batched bars/s, and wall time of ``qbdi render`` on a 4 min 24 s file
  (bench_core.py);
* analysis: our 200-threshold IR sweep vs vmo on 4000 frames, vmo extrapolated from a few
  thresholds (bench_analysis.py);
* train: seconds per epoch of the paper-size VAE, corpus loading excluded: on the shared
  query files, or on the music21 Bach chorales with ``--bach`` (loading them takes ~40 s);
* rss: resident memory of ``qbdi serve`` with the shipped model, after 3 s of free play;
* stage: output timing through JACK and per-bar compute in the server, quiet, under a
  flood of 1,000 bad datagrams/s with stdout and stderr blocked, and with the live
  terminal view drawing (bench_stage.py).

Targets: compute p99 <= 0.5 ms; timing p99 <= 1 ms beyond the JACK period; ready <= 1.5 s.
``--quick`` runs each part short (about a minute in all). No part asserts: numbers only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from summary_rows import summary_rows

HERE = Path(__file__).resolve().parent
QUERIES = HERE.parents[1] / "shared" / "data" / "queries"
PARTS = ("compute", "jack", "render", "analysis", "train", "rss", "stage")
JACKD = ["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "128"]


# -- the parts (each runs in a child process and prints one JSON object) -------------------

def part_compute(args: argparse.Namespace) -> dict:
    import bench_server  # pins BLAS to one thread on import

    return bench_server.bench_compute(_model(args), 300 if args.quick else 2000)


def part_jack(args: argparse.Namespace) -> dict:
    import bench_server

    work = Path(tempfile.mkdtemp(prefix="qbdi-bench-"))
    preset = work / "echo.toml"
    preset.write_text('tempo_bpm = 120.0\n[improviser]\nmode = "echo"\n')
    timing = bench_server.bench_timing(_model(args), preset, 4.0 if args.quick else 8.0)
    # Recording a take: 12 s holds one of its saves (every 10 s); --quick holds none.
    recording = bench_server.bench_timing(_model(args), preset, 4.0 if args.quick else 12.0,
                                          ("--record", str(work)))
    ready = bench_server.bench_ready(_model(args), preset, 2 if args.quick else 5)
    return {"timing": timing, "recording": recording, "ready_s": ready}


def part_render(args: argparse.Namespace) -> dict:
    import bench_core

    from qbdi.bars import notes_to_bars
    from qbdi.midifile import read_midi
    from qbdi.models.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(args.model)
    bars = notes_to_bars(read_midi(bench_core.LONG_QUERY).notes)
    n_bars = 2048 if args.quick else 16384
    throughput = {str(b): bench_core.bench_throughput(checkpoint, bars, b, n_bars)
                  for b in (256, "full")}
    model_arg = ["--model", str(args.model)] if args.model else []
    out = Path(tempfile.mkdtemp(prefix="qbdi-bench-")) / "render.mid"
    runs = 1 if args.quick else 3
    wall_s = min(bench_core.bench_render_wall(model_arg, out) for _ in range(runs))
    return {"bars_per_s": throughput, "render_wall_s": wall_s,
            "file": bench_core.LONG_QUERY.name}


def part_analysis(args: argparse.Namespace) -> dict:
    import bench_analysis as ba

    rows = {}
    for name, frames, metric in (("latent d=500, cosine", ba.latent_frames(), "cosine"),
                                 ("chroma, tonnetz", ba.chroma_frames(), "tonnetz")):
        ours_s, thresholds, totals = ba.time_ours(frames, metric)
        vmo_s, worst = ba.time_vmo(frames, metric, thresholds, totals, 1 if args.quick else 4)
        rows[name] = {"ours_s": ours_s, "vmo_s_extrapolated": vmo_s, "max_abs_dir": worst}
    return {"sweeps": rows}


def part_train(args: argparse.Namespace) -> dict:
    from qbdi.models.train import TrainSettings, train

    corpus = "music21:bach" if args.bach else str(QUERIES)
    epochs = 2 if args.quick else 4
    stamps: list[float] = []

    def log(line: str) -> None:
        if line.startswith(("corpus ", "epoch ")):
            stamps.append(time.perf_counter())

    out = Path(tempfile.mkdtemp(prefix="qbdi-bench-")) / "bench.safetensors"
    started = time.perf_counter()
    train(TrainSettings(corpus=corpus, out=out, epochs=epochs, seed=0), progress=False,
          log=log)
    per_epoch = [b - a for a, b in itertools.pairwise(stamps)]
    return {"corpus": corpus, "load_s": stamps[0] - started, "epoch_s": per_epoch}


def part_rss(args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "qbdi.cli", "serve", "--backend", "memory", "--preset",
               "free", "--osc-port", "0", "--quiet"]
    if args.model:
        command += ["--model", str(args.model)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        assert "ready" in process.stdout.readline()
        time.sleep(3.0)
        status = Path(f"/proc/{process.pid}/status").read_text()
        rss_kb = int(next(line for line in status.splitlines()
                          if line.startswith("VmRSS:")).split()[1])
    finally:
        process.terminate()
        process.wait(timeout=10)
    return {"rss_mb": rss_kb / 1024}


def part_stage(args: argparse.Namespace) -> dict:
    import bench_stage

    return bench_stage.bench_conditions(_model(args), 4.0 if args.quick else 8.0,
                                        6.0 if args.quick else 15.0,
                                        repeat=1 if args.quick else 2)


def _model(args: argparse.Namespace) -> Path:
    from qbdi.models.checkpoint import default_checkpoint_path

    return args.model or default_checkpoint_path()


# -- the driver ---------------------------------------------------------------------------

def _run_part(name: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--part", name]
    command += ["--quick"] if args.quick else []
    command += ["--bach"] if args.bach else []
    command += ["--model", str(args.model)] if args.model else []
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["failed"]
        return {"error": tail[0][:160], "wall_s": time.perf_counter() - started}
    data = json.loads(result.stdout.strip().splitlines()[-1])
    data["wall_s"] = time.perf_counter() - started
    return data


def _ensure_jack() -> subprocess.Popen | None:
    if shutil.which("jack_lsp") is None or shutil.which("jackd") is None:
        return None
    if subprocess.run(["jack_lsp"], capture_output=True).returncode == 0:
        return None
    process = subprocess.Popen(JACKD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["jack_lsp"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs of every part")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: shipped)")
    parser.add_argument("--bach", action="store_true",
                        help="time training epochs on the music21 Bach chorales")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        sys.path.insert(0, str(HERE))
        print(json.dumps(globals()[f"part_{args.part}"](args)))
        return 0
    parts = [p for p in args.only.split(",") if p]
    jack = _ensure_jack() if {"jack", "stage"} & set(parts) else None
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                     "quick": args.quick}
    try:
        for name in parts:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = _run_part(name, args)
    finally:
        if jack is not None:
            jack.terminate()
            jack.wait(timeout=10)
    if args.json:  # first: a table that fails to build loses no measurement
        args.json.write_text(json.dumps(results, indent=1))
    rows = summary_rows(results)
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure':<{width}} | measured | target |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for measure, value, target in rows:
        print(f"| {measure:<{width}} | {value} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
