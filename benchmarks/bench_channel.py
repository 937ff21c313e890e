"""Timings of the channel's hot path: ``python benchmarks/bench_channel.py``.

Prints the median over repeats of allocate_bits (d = 500, one row and a batch of 256 rows)
for several budgets, and of transmit on a 4096 x 500 batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from qbdi.channel import ChannelParams, allocate_bits, transmit

DIM = 500
BATCH_ROWS = 256
BUDGETS_BITS = (64, 256, 1024, 4096)


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    times_s = []
    for _ in range(repeats):
        start_s = time.perf_counter()
        call()
        times_s.append(time.perf_counter() - start_s)
    return 1e3 * float(np.median(times_s))


def main() -> None:
    rng = np.random.default_rng(0)
    variances = rng.gamma(0.5, 2.0, size=DIM)
    batch = rng.gamma(0.5, 2.0, size=(BATCH_ROWS, DIM))
    print(f"{'operation':<40} {'median ms':>10}")
    for budget_bits in BUDGETS_BITS:
        single = median_ms(lambda b=budget_bits: allocate_bits(variances, b), 200)
        rows = median_ms(lambda b=budget_bits: allocate_bits(batch, b), 20)
        print(f"{f'allocate_bits B={budget_bits} d={DIM}':<40} {single:>10.3f}")
        print(f"{f'allocate_bits B={budget_bits} {BATCH_ROWS}x{DIM}':<40} {rows:>10.3f}")
    z_e = rng.normal(size=(4096, DIM)).astype(np.float32)
    mu_e = np.zeros(DIM, dtype=np.float32)
    bits = allocate_bits(variances, 1024)
    params = ChannelParams(mu_e, variances, bits)
    sample = median_ms(lambda: transmit(z_e, params, rng), 20)
    print(f"{f'transmit 4096x{DIM} (B=1024)':<40} {sample:>10.3f}")


if __name__ == "__main__":
    main()
