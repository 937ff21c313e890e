"""What ``qbdi train`` measures into a checkpoint besides the model: the style measure (a
classifier of the corpus's bars against other music, :mod:`qbdi.models.style_train`,
validated on held-out pieces) and the frontier on real queries (:mod:`qbdi.frontier`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qbdi.corpus import Corpus, Piece, load_corpus, load_queries, load_reference_music
from qbdi.errors import CorpusError
from qbdi.models.checkpoint import CorpusStats
from qbdi.models.config import AnswerConfig
from qbdi.models.density import starts_per_bar
from qbdi.models.runtime import InferenceModel

if TYPE_CHECKING:
    from qbdi.models.train import Split, TrainSettings


def style_measure(settings: TrainSettings, corpus: Corpus, split: Split,
                   log: Callable[[str], None]):
    """Train and validate the style classifier: the training pieces against 4/5 of the
    pieces of each other-music source (and guard bars), validated on the held-out pieces and
    the other fifth."""
    from qbdi.models.style_train import LabelledBars, guard_bars, train_classifier, validate

    sources = _negative_sources(settings, corpus, log)
    train_parts, train_names, heldout = [], [], []
    for name, pieces in sources.items():
        order = np.random.default_rng(settings.seed).permutation(len(pieces))
        n_heldout = max(1, len(pieces) // 5) if len(pieces) > 1 else 0
        held = [pieces[i].bars for i in order[:n_heldout]]
        kept = [pieces[i].bars for i in order[n_heldout:]]
        if kept:
            train_parts.append(np.concatenate(kept))
            train_names += [name] * len(train_parts[-1])
        if held:
            heldout.append((name, np.concatenate(held)))
    rng = np.random.default_rng(settings.seed)
    for kind, bars in guard_bars(split.train, rng).items():
        train_parts.append(bars)
        train_names += [f"guard:{kind}"] * len(bars)
    log(f"style measure: {len(split.train)} corpus bars against "
        f"{sum(len(p) for p in train_parts)} others ({', '.join(sources)}, guards)")
    classifier = train_classifier(
        LabelledBars(split.train, np.array(["corpus"] * len(split.train))),
        LabelledBars(np.concatenate(train_parts), np.array(train_names)),
        hidden=64, epochs=1000, weight_decay=1e-3, corpus_weight=0.85, seed=settings.seed,
        metadata={"corpus": corpus.name, "negatives": sorted(sources)})
    corpus_heldout = split.heldout if len(split.heldout) else split.train
    figures = validate(classifier, corpus_heldout, heldout)
    classifier.metadata["validation"] = {k: round(v, 4) for k, v in figures.items()}
    log(f"style measure validation: {classifier.metadata['validation']}")
    return classifier, {"style_heldout_corpus": round(figures["heldout_corpus"], 4),
                        "style_heldout_other": round(figures["heldout_other"], 4)}


def frontier_fields(settings: TrainSettings, runtime: InferenceModel, stats: CorpusStats,
              answer: AnswerConfig, style, log: Callable[[str], None]) -> dict:
    """The card's frontier on the query folder, and the free mode's style and density
    (measured after the training time is taken)."""
    from qbdi.frontier import free_answers, measure_frontier
    from qbdi.improviser import Improviser

    queries = load_queries(settings.frontier_queries)
    improviser = Improviser(runtime, stats, answer)
    rows = measure_frontier(improviser, style, queries, seeds=settings.frontier_seeds)
    free = free_answers(improviser, 1000, settings.seed)
    for row in rows:
        log(f"frontier: {row.model_dump_json()}")
    return {"frontier": rows,
            "frontier_setting": (f"{len(queries)} queries of {settings.frontier_queries.name}, "
                                 f"{settings.frontier_seeds} seeds, perception channel, query "
                                 "statistics; free mode: corpus aggregate statistics"),
            "free_style": round(float(style.probability(free).mean()), 4),
            "free_starts_per_bar": round(starts_per_bar(free), 3)}


def _negative_sources(settings: TrainSettings, corpus: Corpus,
                      log: Callable[[str], None]) -> dict[str, list[Piece]]:
    """Other music by source: music21 collections (without the corpus's own) and folders."""
    sources: dict[str, list[Piece]] = {}
    for spec in settings.style_negatives:
        if spec == "music21":
            own = {corpus.name.split(":", 1)[1]} if corpus.name.startswith("music21:") else set()
            sources.update(load_reference_music(
                own | set(settings.style_exclude), settings.seed,
                progress=lambda name: log(f"style negatives: reading music21:{name}")))
        else:
            try:
                sources[Path(spec).name] = load_corpus(spec).pieces
            except CorpusError as err:
                raise CorpusError(f"style negatives: {err}") from err
    if not sources:
        raise CorpusError("style negatives: no usable other music found")
    return sources
