"""Threshold sweep speed: vmo vs qbdi.analysis, 200 thresholds on 4000 frames.

Run: ``python benchmarks/bench_analysis.py [--vmo-thresholds N]``. vmo is timed on N
evenly spread thresholds of the same grid (default 4) and extrapolated to 200, as the
table says; ours is the whole pipeline (distance matrix, threshold grid, 200-threshold
sweep), best of 3. The IR totals are checked equal at the thresholds vmo ran.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qbdi.analysis import default_thresholds, distance_matrix, ir_sweep, tonnetz_distance

N_FRAMES = 4000
N_THRESHOLDS = 200


def random_with_repeats(bank: np.ndarray, n_frames: int, seed: int, noise: float) -> np.ndarray:
    """Frames from ``bank`` where runs of earlier frames come back (with noise)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_frames, bank.shape[1]))
    i = 0
    while i < n_frames:
        length = min(int(rng.integers(2, 12)), n_frames - i)
        if i > 20 and rng.random() < 0.6:
            source = int(rng.integers(0, max(i - length, 1)))
            segment = out[source : source + length]
            out[i : i + length] = segment + noise * rng.standard_normal(segment.shape)
        else:
            out[i : i + length] = bank[rng.integers(0, len(bank), size=length)]
        i += length
    return out


def latent_frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    return random_with_repeats(rng.standard_normal((N_FRAMES, 500)), N_FRAMES, 1, noise=0.3)


def chroma_frames() -> np.ndarray:
    rng = np.random.default_rng(2)
    chords = rng.integers(0, 5, size=(60, 12)) * (rng.random((60, 12)) < 0.35)
    return np.abs(random_with_repeats(chords.astype(float), N_FRAMES, 3, noise=0.0))


def time_ours(frames: np.ndarray, metric: str) -> tuple[float, np.ndarray, np.ndarray]:
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        distances = distance_matrix(frames, metric, lower_only=True)
        thresholds = default_thresholds(distances, N_THRESHOLDS)
        _, totals = ir_sweep(distances, thresholds)
        best = min(best, time.perf_counter() - start)
    return best, thresholds, totals


def time_vmo(frames, metric, thresholds, totals, n_run) -> tuple[float, float]:
    import vmo

    if metric == "cosine":
        options = {"dfunc": "cosine"}
    else:
        options = {"dfunc": "other", "dfunc_handle": lambda a, b: tonnetz_distance(a, b)}
    picks = np.linspace(0, len(thresholds) - 1, n_run + 2).round().astype(int)[1:-1]
    worst = 0.0
    start = time.perf_counter()
    for k in picks:
        oracle = vmo.build_oracle(
            frames, flag="a", threshold=thresholds[k], dim=frames.shape[1], **options
        )
        worst = max(worst, abs(oracle.IR()[0].sum() - totals[k]))
    per_threshold = (time.perf_counter() - start) / n_run
    return per_threshold * len(thresholds), worst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vmo-thresholds", type=int, default=4)
    n_run = parser.parse_args().vmo_thresholds
    rows = []
    for name, frames, metric in (
        ("latent d=500, cosine", latent_frames(), "cosine"),
        ("chroma, tonnetz", chroma_frames(), "tonnetz"),
    ):
        ours_s, thresholds, totals = time_ours(frames, metric)
        vmo_s, worst = time_vmo(frames, metric, thresholds, totals, n_run)
        rows.append((name, vmo_s, ours_s, worst))
    print(f"{N_FRAMES} frames, {N_THRESHOLDS} thresholds; vmo timed on {n_run} and extrapolated")
    print(
        f"{'input':<22} {'vmo (s, extrap.)':>17} {'ours (s)':>9} {'speed-up':>9} {'max |dIR|':>10}"
    )
    for name, vmo_s, ours_s, worst in rows:
        print(f"{name:<22} {vmo_s:>17.1f} {ours_s:>9.2f} {vmo_s / ours_s:>8.0f}x {worst:>10.1e}")


if __name__ == "__main__":
    main()
