"""The frontier a model card and ``qbdi score`` report: harmony followed against style, per
bit budget.

Each real query (bars of other music) is answered offline at each budget exactly as the
improviser answers it (:func:`qbdi.render.improvise`: register, channel, calibrated decoding
of the model's :class:`~qbdi.models.config.AnswerConfig`), and each answer is scored against
its query bar by chroma cosine and onset F1 (:mod:`qbdi.scoring`), by the model's style
measure (:mod:`qbdi.analysis.style`, mean P(corpus) of the answer bars), by its note starts
per bar (:func:`qbdi.models.decoding.starts_per_bar`) and by its silent bars (answer bars
that sound nothing where the query bar sounds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qbdi.analysis.style import StyleClassifier
from qbdi.bars import BAR_SHAPE, sounding_bars
from qbdi.improviser import Improviser
from qbdi.models.config import FrontierRow
from qbdi.models.density import starts_per_bar
from qbdi.render import improvise
from qbdi.scoring import agreement
from qbdi.settings import ImproviserSettings

BUDGETS: tuple[int | str, ...] = (0, 16, 32, 64, 128, 256, 512, 1024, "full")
CARD_SETTINGS = ImproviserSettings(stats="query", channel="perception", budget_bits=0)
"""What ``qbdi train --frontier-queries`` measures into the card: the query's statistics
through the perception channel (the research branch's measurement)."""


@dataclass(frozen=True, slots=True)
class AnswerScore:
    """One rendering of a query scored against it."""

    chroma_cosine: float
    onset_f1: float
    style: float | None  # mean P(corpus) of the answer bars; None without a style measure
    starts_per_bar: float
    silent_bars: int


def score_answer(answer_bars: np.ndarray, query_bars: np.ndarray,
                 style: StyleClassifier | None) -> AnswerScore:
    """Score answers ``(n, 16, 2, 78)`` against their query bars, bar i against bar i."""
    result = agreement(answer_bars, query_bars)
    silent = sounding_bars(query_bars) & ~sounding_bars(answer_bars)
    return AnswerScore(result.chroma_cosine, result.onset_f1,
                       None if style is None or not len(answer_bars)
                       else float(style.probability(answer_bars).mean()),
                       starts_per_bar(answer_bars), int(silent.sum()))


def measure_frontier(improviser: Improviser, style: StyleClassifier,
                     queries: Mapping[str, np.ndarray], *,
                     base: ImproviserSettings = CARD_SETTINGS,
                     budgets: Sequence[int | str] = BUDGETS, seeds: int = 3
                     ) -> list[FrontierRow]:
    """One :class:`FrontierRow` per budget: per query the mean over seeds ``base.seed``,
    ``base.seed + 1``, ..., then the mean and the worst (min, or max for onset F1) over the
    queries; silent bars summed over queries and seeds."""
    rows = []
    for budget in budgets:
        per_query = []
        for bars in queries.values():
            scores = [score_answer(improvise(improviser, bars, base.model_copy(
                update={"budget_bits": budget, "seed": base.seed + seed})).bars, bars, style)
                for seed in range(seeds)]
            per_query.append(scores)
        means = np.array([[np.mean([getattr(s, k) for s in scores])
                           for k in ("chroma_cosine", "onset_f1", "style", "starts_per_bar")]
                          for scores in per_query])
        rows.append(FrontierRow(
            budget_bits=budget,
            chroma_cosine_mean=round(float(means[:, 0].mean()), 4),
            chroma_cosine_min=round(float(means[:, 0].min()), 4),
            onset_f1_mean=round(float(means[:, 1].mean()), 4),
            onset_f1_max=round(float(means[:, 1].max()), 4),
            style_mean=round(float(means[:, 2].mean()), 4),
            style_min=round(float(means[:, 2].min()), 4),
            starts_per_bar=round(float(means[:, 3].mean()), 3),
            silent_bars=sum(s.silent_bars for scores in per_query for s in scores)))
    return rows


def free_answers(improviser: Improviser, n_bars: int, seed: int = 0) -> np.ndarray:
    """``n_bars`` free improvisations ``(n, 16, 2, 78)``, as free mode plays them."""
    silence = np.zeros((n_bars, *BAR_SHAPE), dtype=bool)
    return improvise(improviser, silence, ImproviserSettings(mode="free", seed=seed)).bars
