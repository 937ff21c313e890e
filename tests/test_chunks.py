"""Offline rendering's chunks on every core give the answers of one core, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from qbdi import chunks
from qbdi.bars import BAR_SHAPE
from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.models.runtime import CHUNK_BARS
from qbdi.render import improvise
from qbdi.settings import ImproviserSettings


def test_chunk_slices_cover_every_bar_once():
    parts = chunks.chunk_slices(2 * CHUNK_BARS + 3)
    assert [(p.start, p.stop) for p in parts] == [
        (0, CHUNK_BARS), (CHUNK_BARS, 2 * CHUNK_BARS), (2 * CHUNK_BARS, 3 * CHUNK_BARS)]
    assert chunks.chunk_slices(0) == []


@pytest.mark.parametrize("settings", [
    {"stats": "query", "budget_bits": 16},
    {"stats": "query", "budget_bits": 16, "encoding": "sample", "channel": "perception"},
    {"stats": "corpus", "budget_bits": "full", "sampling": True},
    {"mode": "free"},
])
def test_rendering_on_every_core_equals_one_core(tiny_checkpoint, monkeypatch, settings):
    rng = np.random.default_rng(5)
    bars = rng.random((2 * CHUNK_BARS + 9, *BAR_SHAPE)) < 0.03
    improviser = Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint))
    chosen = ImproviserSettings(**settings)
    monkeypatch.setattr(chunks.os, "cpu_count", lambda: 4)
    parallel = improvise(improviser, bars, chosen)
    monkeypatch.setattr(chunks.os, "cpu_count", lambda: 1)
    serial = improvise(improviser, bars, chosen)
    assert np.array_equal(parallel.bars, serial.bars)
    assert np.array_equal(parallel.z_d, serial.z_d)
    assert parallel.bars.any()


def test_the_shipped_model_renders_alike_on_every_core(monkeypatch):
    """Its calibrated decoding of notes (voices) and register move, over several chunks."""
    bars = np.random.default_rng(6).random((CHUNK_BARS + 100, *BAR_SHAPE)) < 0.03
    improviser = Improviser.from_checkpoint(load_checkpoint(None))
    settings = ImproviserSettings(stats="query", budget_bits=256, channel="perception")
    monkeypatch.setattr(chunks.os, "cpu_count", lambda: 2)
    parallel = improvise(improviser, bars, settings)
    monkeypatch.setattr(chunks.os, "cpu_count", lambda: 1)
    assert np.array_equal(parallel.bars, improvise(improviser, bars, settings).bars)
