"""Musical acceptance of the channel: how closely renderings at each bit budget follow
their query, bar by bar (``qbdi score``).

For each query and budget the query is rendered with several seeds and each output bar is
scored against its query bar (:mod:`qbdi.scoring`): chroma cosine, onset F1, the style
(mean P(corpus) of the answer bars by the model's style measure, when it has one), note
starts per bar and silent bars (:func:`qbdi.frontier.score_answer`), plus two measures of the
zero-bit behaviour: how many distinct bars the output has, and whether its key
(Krumhansl-Kessler key finding on the whole piece's chroma) has the query's tonic.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

from qbdi.analysis.style import StyleClassifier
from qbdi.bars import chroma_per_bar, notes_to_bars
from qbdi.frontier import score_answer
from qbdi.improviser import Improviser
from qbdi.midifile import Score
from qbdi.render import improvise
from qbdi.settings import ImproviserSettings

DEFAULT_BUDGETS: tuple[int | str, ...] = (0, 16, 32, 64, 128, 256, 512, 1024, "full")


@dataclass(frozen=True, slots=True)
class BudgetScore:
    query: str
    budget_bits: int | str
    chroma_cosine: float
    onset_f1: float
    distinct_bars_fraction: float
    tonal_centre_match: bool
    seeds: int
    style: float | None = None  # mean P(corpus) of the answers; None without a style measure
    starts_per_bar: float = 0.0
    silent_bars: int = 0  # answer bars silent where the query sounds, over all seeds

    def as_dict(self) -> dict:
        return asdict(self)


# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def estimate_key(bars: np.ndarray) -> str:
    """The best-correlating of the 24 major and minor keys, e.g. ``"A minor"``; ``"silence"``
    when nothing sounds."""
    chroma = chroma_per_bar(bars).sum(axis=0)
    if not chroma.any():
        return "silence"
    best, best_r = "", -2.0
    for tonic in range(12):
        for name, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
            r = np.corrcoef(chroma, np.roll(profile, tonic))[0, 1]
            if np.isfinite(r) and r > best_r:
                best, best_r = f"{PITCH_CLASSES[tonic]} {name}", r
    return best or "silence"


def tonal_centre(bars: np.ndarray) -> int:
    """The tonic pitch class of :func:`estimate_key` (-1 for silence)."""
    key = estimate_key(bars)
    return -1 if key == "silence" else PITCH_CLASSES.index(key.split()[0])


def distinct_fraction(bars: np.ndarray) -> float:
    """Distinct sounding output bars / sounding bars (0 when nothing sounds)."""
    sounding = [bar.tobytes() for bar in bars if bar.any()]
    return len(set(sounding)) / len(sounding) if sounding else 0.0


def score_budgets(name: str, score: Score, improviser: Improviser,
                  base: ImproviserSettings, budgets=DEFAULT_BUDGETS,
                  seeds: int = 3, style: StyleClassifier | None = None) -> list[BudgetScore]:
    """Render ``score`` at each budget with ``seeds`` seeds; average the agreement (and the
    style, with a style measure)."""
    query_bars = notes_to_bars(score.notes)
    rows = []
    for budget in budgets:
        scores, distinct, centre = [], [], []
        for seed in range(seeds):
            settings = base.model_copy(update={"budget_bits": budget, "seed": base.seed + seed})
            output = improvise(improviser, query_bars, settings).bars
            scores.append(score_answer(output, query_bars, style))
            distinct.append(distinct_fraction(output))
            centre.append(tonal_centre(output) == tonal_centre(query_bars))
        rows.append(BudgetScore(
            name, budget, float(np.mean([s.chroma_cosine for s in scores])),
            float(np.mean([s.onset_f1 for s in scores])), float(np.mean(distinct)),
            bool(np.mean(centre) >= 0.5), seeds,
            None if style is None else float(np.mean([s.style for s in scores])),
            float(np.mean([s.starts_per_bar for s in scores])),
            sum(s.silent_bars for s in scores)))
    return rows


def is_monotone(values: list[float], tolerance: float = 0.0) -> bool:
    """True when each value is at least the previous minus ``tolerance``."""
    return all(b >= a - tolerance for a, b in itertools.pairwise(values))


def format_table(rows: list[BudgetScore]) -> str:
    lines = [f"{'query':<44} {'bits':>5} {'chroma':>7} {'onsetF1':>8} {'style':>6} "
             f"{'starts':>6} {'silent':>6} {'distinct':>9} {'tonic':>6}"]
    for row in rows:
        lines.append(f"{row.query[:44]:<44} {row.budget_bits!s:>5} {row.chroma_cosine:7.3f} "
                     f"{row.onset_f1:8.3f} {_style_text(row.style):>6} "
                     f"{row.starts_per_bar:6.1f} {row.silent_bars:6d} "
                     f"{row.distinct_bars_fraction:9.2f} "
                     f"{'yes' if row.tonal_centre_match else 'no':>6}")
    return "\n".join(lines)


def _style_text(style: float | None) -> str:
    return "-" if style is None else f"{style:.3f}"


def summary_table(rows: list[BudgetScore], corpus_starts_per_bar: float | None = None) -> str:
    """Per budget over all queries: mean and minimum chroma cosine, mean and maximum onset
    F1, mean and minimum style, note starts per bar (the corpus's alongside when known),
    silent answer bars (summed over queries and seeds), how many queries give one static,
    sounding texture (distinct sounding bars <= 10 %), how many are silent throughout, and
    how many keep the query's tonic."""
    budgets = list(dict.fromkeys(row.budget_bits for row in rows))
    corpus = "" if corpus_starts_per_bar is None else f" (corpus {corpus_starts_per_bar:.1f})"
    lines = ["| bits/bar | chroma cosine mean | chroma cosine min | onset F1 mean | "
             f"onset F1 max | style mean | style min | starts/bar{corpus} | silent bars | "
             "static texture | silent queries | tonic kept |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for budget in budgets:
        mine = [row for row in rows if row.budget_bits == budget]
        chroma = [row.chroma_cosine for row in mine]
        onset = [row.onset_f1 for row in mine]
        styles = [row.style for row in mine if row.style is not None]
        style = (f"{np.mean(styles):.3f} | {min(styles):.3f}" if len(styles) == len(mine)
                 else "- | -")
        static = sum(0 < row.distinct_bars_fraction <= 0.1 for row in mine)
        silent = sum(row.distinct_bars_fraction == 0 for row in mine)
        tonic = sum(row.tonal_centre_match for row in mine)
        lines.append(f"| {budget} | {np.mean(chroma):.3f} | {min(chroma):.3f} | "
                     f"{np.mean(onset):.3f} | {max(onset):.3f} | {style} | "
                     f"{np.mean([row.starts_per_bar for row in mine]):.1f} | "
                     f"{sum(row.silent_bars for row in mine)} | "
                     f"{static}/{len(mine)} | {silent}/{len(mine)} | {tonic}/{len(mine)} |")
    return "\n".join(lines)


def frontier_points(rows: list[BudgetScore]) -> list[tuple[int | str, float, float]]:
    """Per budget, in order: ``(budget, chroma cosine, style)`` averaged over the queries;
    empty when the rows have no style."""
    budgets = list(dict.fromkeys(row.budget_bits for row in rows))
    points = []
    for budget in budgets:
        mine = [row for row in rows if row.budget_bits == budget]
        if any(row.style is None for row in mine):
            return []
        points.append((budget, float(np.mean([row.chroma_cosine for row in mine])),
                       float(np.mean([row.style for row in mine]))))
    return points


def plot(rows: list[BudgetScore], path: str) -> None:
    """Chroma cosine and onset F1 against the budget, one line per query; with a style
    measure, the frontier too: harmony followed (x, chroma cosine) against style (y, mean
    P(corpus)), one point per budget (means over the queries), per query in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = frontier_points(rows)
    fig, axes = plt.subplots(1, 3 if points else 2, figsize=(16 if points else 11, 4))
    queries = sorted({row.query for row in rows})
    for query in queries:
        mine = [row for row in rows if row.query == query]
        labels = [str(row.budget_bits) for row in mine]
        axes[0].plot(labels, [row.chroma_cosine for row in mine], marker="o", label=query)
        axes[1].plot(labels, [row.onset_f1 for row in mine], marker="o", label=query)
        if points:
            axes[2].plot([row.chroma_cosine for row in mine], [row.style for row in mine],
                         color="0.8", linewidth=0.8)
    axes[0].set(title="chroma cosine vs query", xlabel="bits per bar", ylim=(0, 1.02))
    axes[1].set(title="onset F1 vs query", xlabel="bits per bar", ylim=(0, 1.02))
    axes[1].legend(fontsize=6, loc="upper left")
    if points:
        frontier = axes[2]
        frontier.plot([p[1] for p in points], [p[2] for p in points], marker="o", color="C3")
        for index, (budget, x, y) in enumerate(points):  # labels alternate above and below
            frontier.annotate(str(budget), (x, y), textcoords="offset points", fontsize=7,
                              xytext=(-4, 6 if index % 2 == 0 else -12))
        frontier.set(title="frontier: harmony followed vs style", xlabel="chroma cosine "
                     "(harmony followed)", ylabel="style (mean P(corpus))", xlim=(0, 1.02),
                     ylim=(0, 1.02))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
