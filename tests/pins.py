"""Pinned renderings: for fixed models, settings and seeds, the exact output bars.

A restructuring of the improviser must not change one output bit; a change that does (a new
default, a new random stream) re-pins on purpose, in its own commit, saying why:
``python tests/pins.py --write``. The queries and the seeded model come from
``tests/seeded.py``, so no file is needed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from seeded import query_bars, seeded_model

from qbdi.bars import BAR_SHAPE
from qbdi.improviser import Improviser
from qbdi.models.checkpoint import CorpusStats, load_checkpoint
from qbdi.models.runtime import InferenceModel
from qbdi.render import improvise
from qbdi.settings import ImproviserSettings

PINS = Path(__file__).resolve().parent / "data" / "pins.json"


def _render(model: InferenceModel, stats: CorpusStats, settings: ImproviserSettings,
            bars: np.ndarray) -> np.ndarray:
    return improvise(Improviser(model, stats), bars, settings).bars


def _live(model: InferenceModel, stats: CorpusStats, bars: np.ndarray) -> np.ndarray:
    """Bar by bar, with settings changed between bars as a performer would."""
    improviser, settings = Improviser(model, stats), ImproviserSettings()
    plan = {8: {"budget_bits": 0}, 14: {"budget_bits": "full"}, 20: {"stats": "corpus"},
            26: {"encoding": "sample", "budget_bits": 64}, 32: {"sampling": True}}
    out = []
    for i, bar in enumerate(bars):
        settings = settings.model_copy(update=plan.get(i, {}))
        out.append(improviser.step(None if i % 11 == 10 else bar, settings).bar)
    return np.stack(out)


def scenarios() -> dict[str, Callable[[], np.ndarray]]:
    """Name -> a function returning the output bars ``(n, 16, 2, 78)`` bool."""
    short, long_ = query_bars(40, 1), query_bars(1100, 2)
    cases: dict[str, Callable[[], np.ndarray]] = {}
    settings = {
        "window-256": ImproviserSettings(),
        "query-64": ImproviserSettings(stats="query", budget_bits=64),
        "query-full": ImproviserSettings(stats="query", budget_bits="full"),
        "corpus-0": ImproviserSettings(stats="corpus", budget_bits=0),
        "paper-256": ImproviserSettings(stats="corpus", encoding="sample", threshold=0.7),
        "posterior-realloc-sampled": ImproviserSettings(
            stats="query", allocation="posterior", reallocate_per_bar=True, sampling=True,
            budget_bits=128, seed=3),
        "prior-32": ImproviserSettings(stats="prior", budget_bits=32, seed=5),
        "free": ImproviserSettings(mode="free", seed=9),
        "echo": ImproviserSettings(mode="echo"),
    }
    models = {"seeded": seeded_model}
    try:
        shipped = load_checkpoint()
        models["shipped"] = lambda: (InferenceModel.from_checkpoint(shipped), shipped.stats)
    except Exception:  # the shipped model is re-pinned whenever it is retrained
        pass
    for model_name, make in models.items():
        for name, chosen in settings.items():
            cases[f"{model_name}/{name}"] = (
                lambda make=make, chosen=chosen: _render(*make(), chosen, short))
        cases[f"{model_name}/query-256-long"] = (lambda make=make: _render(
            *make(), ImproviserSettings(stats="query", seed=11), long_))
        cases[f"{model_name}/corpus-sampled-long"] = (lambda make=make: _render(
            *make(), ImproviserSettings(stats="corpus", sampling=True, seed=12), long_))
        cases[f"{model_name}/live-changes"] = lambda make=make: _live(*make(), short)
    return cases


def digest(bars: np.ndarray) -> str:
    bars = np.asarray(bars, dtype=bool)
    assert bars.shape[1:] == BAR_SHAPE
    return f"{len(bars)}:{int(bars.sum())}:" + hashlib.sha256(
        np.packbits(bars).tobytes()).hexdigest()[:32]


def main() -> int:
    if "--write" not in sys.argv[1:]:
        print("usage: python tests/pins.py --write   (re-pins every scenario)")
        return 2
    pins = {name: digest(run()) for name, run in scenarios().items()}
    PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(pins)} pins to {PINS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
