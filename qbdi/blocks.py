"""Work on a long run of bars in fixed blocks, spread over the CPU's cores.

Offline rendering answers thousands of bars at once. One thread with a multi-threaded BLAS
leaves cores idle in everything that is not a matrix product (the channel's random draws,
sparse products, thresholds), so instead each core takes whole blocks with a one-thread BLAS:
measured 1.3x the throughput on this 2-core CPU.

Guarantees: the blocks are fixed by the bar count and :data:`BLOCK_BARS` alone, results
come back in block order, and blocks run with a one-thread BLAS, so what a block computes
never depends on the number of cores or on scheduling. One block runs inline, in the
calling thread, with BLAS left as it is (the live server's one-bar steps never start a
thread).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

BLOCK_BARS = 1024
"""Bars per block. On the 4 min 24 s query repeated to 16384 bars, blocks of 256, 512, 1024
and 2048 bars rendered 43,300, 43,500, 44,600 and 45,400 bars/s (within the runs' noise of
each other); 1024 still splits a file of a few thousand bars over both cores."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def block_slices(n_items: int, block: int = BLOCK_BARS) -> list[slice]:
    """``[0:block], [block:2 block], ...`` covering ``n_items``; empty for zero items."""
    return [slice(start, min(start + block, n_items)) for start in range(0, n_items, block)]


def map_blocks(work: Callable[[int, slice], T], n_items: int,
               block: int = BLOCK_BARS) -> Iterator[T]:
    """``work(k, block_k)`` for each block, results yielded in block order.

    With more than one block, every BLAS library is held to one thread until the last
    result is taken (so a block's floating-point results are those of a one-thread BLAS
    whatever the machine, and workers do not oversubscribe the cores), and with more than
    one core the blocks run on a shared pool of worker threads, one per core. An exception
    in a block is raised here, in the caller's thread.
    """
    slices = block_slices(n_items, block)
    if len(slices) <= 1:
        for k, part in enumerate(slices):
            yield work(k, part)
        return
    from threadpoolctl import threadpool_limits  # here: one-bar steps never need it

    with threadpool_limits(limits=1, user_api="blas"):
        if usable_cores() <= 1:
            for k, part in enumerate(slices):
                yield work(k, part)
        else:
            yield from _shared_pool().map(work, range(len(slices)), slices)


def _shared_pool() -> ThreadPoolExecutor:
    """One pool for the process, a thread per usable core, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=usable_cores(),
                                       thread_name_prefix="qbdi-block")
        return _pool
