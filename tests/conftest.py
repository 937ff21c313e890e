"""Shared fixtures: the real query files, and a tiny model trained on them once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

QUERIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "queries"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run long soak/fuzz tests")
    parser.addoption("--soak-clients-minutes", type=float, default=0.0,
                     help="run the real-time soak with outside programs for this long "
                          "(tests/test_soak_clients.py; 30 in the README)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long test: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def queries_dir() -> Path:
    if not QUERIES.is_dir():
        pytest.skip(f"real query files not found at {QUERIES} (shared/data/queries)")
    return QUERIES


@pytest.fixture(scope="session")
def query_files(queries_dir: Path) -> list[Path]:
    return sorted(queries_dir.glob("*.mid"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, queries_dir: Path) -> Path:
    """A real (tiny) model trained for a few epochs on the query files."""
    from qbdi.models.train import TrainSettings, train

    out = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    train(TrainSettings(corpus=str(queries_dir), out=out, epochs=3, latent_size=16,
                        hidden_size=32, seed=1), progress=False, log=lambda _: None)
    return out
