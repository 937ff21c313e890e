"""Shared fixtures: our small query files, and the tiny test model (seeded numpy weights).

``--block-torch`` makes ``import torch`` fail for the whole run: loop, server, rendering and
analysis tests pass without it; the training tests skip (``tests/test_no_torch.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from query_data import QUERIES
from torch_block import block_torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run long soak/fuzz tests")
    parser.addoption("--soak-clients-minutes", type=float, default=0.0,
                     help="run the real-time soak with outside programs for this long "
                          "(tests/test_soak_clients.py; 30 in the README)")
    parser.addoption("--block-torch", action="store_true",
                     help="make `import torch` fail, as where torch is not installed")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--block-torch"):
        block_torch()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test through JACK's dummy driver (no real-time scheduling) or the wall clock may
    # meet a lost period or a stall of this shared machine; it gets one more run, and the
    # summary shows it (R). Our own code's failures repeat; a test failing twice fails.
    retry = pytest.mark.flaky(reruns=1, reruns_delay=1)
    for item in items:
        if "jack" in item.keywords or "realtime" in item.keywords:
            item.add_marker(retry)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long test: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def queries_dir() -> Path:
    """Our query files (tests/data/queries, written by tests/data/make_queries.py)."""
    return QUERIES


@pytest.fixture(scope="session")
def query_files(queries_dir: Path) -> list[Path]:
    return sorted(queries_dir.glob("*.mid"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model (hidden 32, latent 16) from seeded numpy weights, written as a checkpoint
    (``tests/seeded.py``): no training, no torch."""
    from seeded import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")
