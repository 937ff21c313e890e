"""The improviser's output, bit for bit, for pinned models, settings and seeds (tests/pins.py)."""

from __future__ import annotations

import json

import pytest
from pins import PINS, digest, scenarios

CASES = scenarios()
PINNED = json.loads(PINS.read_text())


def test_every_scenario_is_pinned() -> None:
    assert set(CASES) <= set(PINNED), sorted(set(CASES) - set(PINNED))


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendering_matches_its_pin(name: str) -> None:
    got = digest(CASES[name]())
    assert got == PINNED[name], (
        f"{name}: output bars changed (bars:cells on:hash {got} vs pinned {PINNED[name]}); "
        "if on purpose, re-pin with `python tests/pins.py --write` in its own commit")
