"""Pinned renderings: for fixed models, settings and seeds, the exact output bars.

A restructuring of the improviser must not change one output bit; a change that does (a new
default, a new random stream) re-pins on purpose, in its own commit, saying why:
``python tests/pins.py --write``. The queries are generated here, so no file is needed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qbdi.bars import BAR_SHAPE, STEPS_PER_BAR, Note, notes_to_bars
from qbdi.improviser import Improviser
from qbdi.models.checkpoint import CorpusStats, load_checkpoint
from qbdi.models.config import ModelConfig
from qbdi.models.runtime import InferenceModel
from qbdi.render import improvise
from qbdi.settings import ImproviserSettings

PINS = Path(__file__).resolve().parent / "data" / "pins.json"


def query_bars(n_bars: int, seed: int) -> np.ndarray:
    """A piano-like query: a chord per half bar and a line of eighths, random keys."""
    rng = np.random.default_rng(seed)
    notes: list[Note] = []
    for bar in range(n_bars):
        root = 48 + int(rng.integers(0, 12))
        for half in (0, 8):
            start = bar * STEPS_PER_BAR + half
            for interval in (0, 4, 7):
                notes.append(Note(start, root + interval, start + 8, 70))
        for eighth in range(8):
            start = bar * STEPS_PER_BAR + 2 * eighth
            notes.append(Note(start, 72 + int(rng.integers(0, 12)), start + 2, 90))
    return notes_to_bars(notes, n_bars)


def seeded_model(seed: int = 7, hidden: int = 48, latent: int = 24) -> tuple[InferenceModel,
                                                                           CorpusStats]:
    """A small model with seeded random weights (no training, no torch)."""
    rng = np.random.default_rng(seed)
    config = ModelConfig(hidden_size=hidden, latent_size=latent)
    sizes = {"enc_hidden": (config.input_size, hidden), "enc_mu": (hidden, latent),
             "enc_logvar": (hidden, latent), "dec_hidden": (latent, hidden),
             "dec_out": (hidden, config.input_size)}
    weights = {}
    for name, (n_in, n_out) in sizes.items():
        gain = 12.0 if name == "enc_hidden" else 2.0  # sparse bars: ~50 of 2496 inputs on
        weights[f"{name}.weight"] = (gain * rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
                                     ).astype(np.float32)
        weights[f"{name}.bias"] = (0.1 * rng.standard_normal(n_out)).astype(np.float32)
    weights["enc_logvar.bias"] -= 2.0
    weights["dec_out.bias"] -= 3.0
    model = InferenceModel(config, weights)
    mu, logvar = model.encode(query_bars(64, seed + 1).reshape(64, -1))
    return model, CorpusStats.from_encodings(mu, logvar)


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
