"""Block-parallel work: fixed blocks, results in order, errors raised to the caller."""

import threading

import numpy as np
import pytest

from qbdi import blocks
from qbdi.blocks import block_slices, map_blocks


def test_block_slices_cover_every_item_once():
    assert block_slices(0, 4) == []
    assert block_slices(3, 4) == [slice(0, 3)]
    assert block_slices(9, 4) == [slice(0, 4), slice(4, 8), slice(8, 9)]
    covered = np.concatenate([np.arange(20)[part] for part in block_slices(20, 6)])
    assert np.array_equal(covered, np.arange(20))


def test_results_come_back_in_block_order_from_worker_threads(monkeypatch):
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    threads = set()

    def work(k, part):
        threads.add(threading.current_thread().name)
        return k, part.start, part.stop

    results = list(map_blocks(work, 10, 3))
    assert results == [(0, 0, 3), (1, 3, 6), (2, 6, 9), (3, 9, 10)]
    assert all(name.startswith("qbdi-block") for name in threads)


def test_one_block_runs_in_the_calling_thread(monkeypatch):
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    names = list(map_blocks(lambda k, part: threading.current_thread().name, 5, 8))
    assert names == [threading.current_thread().name]


def test_blas_is_held_to_one_thread_while_blocks_run_and_released_after(monkeypatch):
    from threadpoolctl import threadpool_info

    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    during = list(map_blocks(lambda k, part: blas_threads(), 4, 2))
    assert during == [[1] * len(before)] * 2
    assert blas_threads() == before


def test_an_error_in_a_block_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)

    def work(k, part):
        if k == 1:
            raise ValueError("block 1 failed")
        return k

    with pytest.raises(ValueError, match="block 1 failed"):
        list(map_blocks(work, 6, 2))
