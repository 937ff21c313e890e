"""Long runs of bars through a deterministic stage in chunks, on every core.

Offline rendering's stages are numpy. Their matrix products run on BLAS threads, but the
rest of a stage (gathers, the decoding of notes) runs on one core while the other waits.
Chunks of bars on one thread per core, each with a one-thread BLAS, keep every core busy
through the whole stage (``benchmarks/bench_core.py``: batched rendering, README). Only
stages that draw no random numbers go through here: a stage that draws them would draw
them in another order. The live step (one bar) never does, and the pure packages stay
without threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import threadpool_limits

from qbdi.models.runtime import CHUNK_BARS

Result = TypeVar("Result")


def chunk_slices(n_bars: int) -> list[slice]:
    """``0..n_bars`` in consecutive slices of at most ``CHUNK_BARS`` (none for no bars)."""
    return [slice(start, start + CHUNK_BARS) for start in range(0, n_bars, CHUNK_BARS)]


def map_chunks(stage: Callable[[slice], Result], n_bars: int) -> Iterator[Result]:
    """``stage(part)`` for the parts of :func:`chunk_slices`, in their order, as each is
    ready; on one thread per core (one BLAS thread each) when there are several parts.
    ``stage`` must be deterministic and safe to run on two parts at once."""
    parts = chunk_slices(n_bars)
    workers = min(len(parts), os.cpu_count() or 1)
    if workers <= 1:
        yield from map(stage, parts)
        return
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        yield from pool.map(stage, parts)
