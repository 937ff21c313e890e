"""Where the tail of a live bar comes from: the step beside fixed work and two variants.

    python benchmarks/bench_tail.py [--rounds 6] [--steps 1000]

Each row times one thing ``--steps`` times in a row, and the rows take turns for
``--rounds`` rounds (an A/B: a minute when the shared machine is slower touches every row
alike). Rows:

* ``Improviser.step``: the shipped default model and the ``default`` preset, over the bars
  of the shared queries (what ``bench_server.py``'s compute row measures);
* the same step with the output layer's sounding logits taken from a cache instead of
  reading its sounding part (256 x 16 steps x the model's pitch range: 0.9 MB for the
  chorales' 55 pitches): what that read costs the step, its own time and what it evicts
  from the cache for the rest;
* the same step with a model of 128 hidden units (random weights, the same latent size):
  half the weights a bar reads (the README's size sweep says what it costs musically);
* fixed numpy work reading 1.2 MB (six sums of 300,000 float32), and a fixed pure-Python
  loop touching no memory: the machine's own spread for work of the step's size, with and
  without memory traffic.

Columns: median and p99 over every round, and p99 / median, the tail's share. BLAS on one
thread, start-up objects frozen out of the garbage collector, as ``qbdi serve`` runs.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core, as the target says; before numpy is imported

import argparse  # noqa: E402
import gc  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from bench_server import query_bars  # noqa: E402

from qbdi.improviser import Improviser  # noqa: E402
from qbdi.models.checkpoint import (  # noqa: E402
    default_checkpoint_path,
    expected_shapes,
    load_checkpoint,
)
from qbdi.models.runtime import InferenceModel  # noqa: E402
from qbdi.presets import load_preset  # noqa: E402

SMALL_HIDDEN = 128


def small_model(model: InferenceModel) -> InferenceModel:
    """A model of ``model``'s sizes but SMALL_HIDDEN hidden units, random weights (the
    output biases low enough that a bar sounds a few notes, as a trained model's do)."""
    rng = np.random.default_rng(0)
    config = model.config.model_copy(update={"hidden_size": SMALL_HIDDEN})
    weights = {name: (rng.standard_normal(shape) * 0.05).astype(np.float32)
               for name, shape in expected_shapes(config).items()
               if not name.startswith("stats.")}
    weights["dec_out.bias"] -= 3.0
    return InferenceModel(config, weights, model.pitch_range)


class CachedSounding(InferenceModel):
    """``model`` whose sounding logits are one fixed array (read once, kept): the step does
    everything else as before."""

    def __init__(self, model: InferenceModel) -> None:
        self.__dict__.update(model.__dict__)
        self._cached = model.sounding_logits(model.decode_hidden(
            np.zeros((1, model.latent_size), dtype=np.float32)))

    def sounding_logits(self, hidden: np.ndarray) -> np.ndarray:
        return self._cached


def stepper(model: InferenceModel, template: Improviser, bars: np.ndarray
            ) -> Callable[[int], None]:
    settings = load_preset("default").improviser
    improviser = Improviser(model, template.corpus_stats, template.answer)
    for bar in bars[:50]:
        improviser.step(bar, settings)  # warm
    return lambda i: improviser.step(bars[i % len(bars)], settings)


def fixed_numpy() -> Callable[[int], None]:
    values = np.random.default_rng(0).random(300_000, dtype=np.float32)

    def work(_: int) -> None:
        for _ in range(6):
            values.sum()
    return work


def fixed_python(_: int) -> None:
    total = 0
    for i in range(5000):
        total += i


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    bars = query_bars()
    shipped = Improviser.from_checkpoint(load_checkpoint(default_checkpoint_path()))
    rows = {
        "`Improviser.step`, shipped model": stepper(shipped.model, shipped, bars),
        "the step, sounding logits from a cache (the output layer not read)":
            stepper(CachedSounding(shipped.model), shipped, bars),
        f"the step, {SMALL_HIDDEN} hidden units (random weights)":
            stepper(small_model(shipped.model), shipped, bars),
        "fixed numpy work reading 1.2 MB": fixed_numpy(),
        "fixed pure-Python loop": fixed_python,
    }
    gc.collect()
    gc.freeze()
    times_ms: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, run in rows.items():
            for i in range(args.steps):
                started_s = time.perf_counter()
                run(i)
                times_ms[name].append((time.perf_counter() - started_s) * 1e3)
    load = os.getloadavg()[0]
    print(f"{args.rounds} rounds of {args.steps}, rows in turn; load average {load:.2f}")
    print("| measure | median (ms) | p99 (ms) | p99 / median |")
    print("|---|---|---|---|")
    for name, samples in times_ms.items():
        median, p99 = np.median(samples), np.percentile(samples, 99)
        print(f"| {name} | {median:.3f} | {p99:.3f} | {p99 / median:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
