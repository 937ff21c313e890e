"""``qbdi score``: how closely renderings follow their queries at each budget, or how a
recorded take's live answers followed the player."""

from __future__ import annotations

import argparse
from pathlib import Path

from qbdi.commands.common import (
    add_model_args,
    parse_budgets,
    progress,
    settings_from_args,
    warn,
)
from qbdi.errors import QbdiError, check_writable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("queries", type=Path, nargs="*", help="query MIDI files")
    parser.add_argument("--take", type=Path, default=None, metavar="TAKE.mid",
                        help="instead of rendering queries: score the live answers of a take "
                             "recorded by serve --record against the bars they answered, per "
                             "budget")
    parser.add_argument("--bits", default="0,16,32,64,128,256,512,1024,full",
                        help="budgets to score, comma-separated")
    parser.add_argument("--seeds", type=int, default=3, help="renderings per budget (averaged)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON")
    parser.add_argument("--plot", type=Path, default=None,
                        help="write a PNG plot: chroma cosine and onset F1 per budget and, "
                             "with a model that has a style measure, the frontier (chroma "
                             "cosine against style, one point per budget)")
    add_model_args(parser)


def run(args: argparse.Namespace) -> int:
    """Score renderings against their queries at each bit budget (musical acceptance)."""
    import json

    from qbdi.acceptance import format_table, is_monotone, plot, score_budgets, summary_table
    from qbdi.improviser import Improviser
    from qbdi.midifile import read_midi
    from qbdi.models.checkpoint import load_checkpoint

    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None:
            check_writable(path, option)
    if args.take is not None:
        return _score_take(args)
    if not args.queries:
        raise QbdiError("give query MIDI files to score, or --take TAKE.mid")
    budgets = parse_budgets(args.bits)
    base = settings_from_args(args, budgets[0])
    checkpoint = load_checkpoint(args.model)
    improviser = Improviser.from_checkpoint(checkpoint)
    if checkpoint.style is None:
        warn("score", ["the model has no style measure: no style column"])
    rows = []
    for query in progress(list(args.queries), "queries"):
        score = read_midi(query)
        warn("score", score.warnings)
        score.check_metre(args.metre)
        rows += score_budgets(query.name, score, improviser, base, budgets, args.seeds,
                              checkpoint.style)
    print(format_table(rows))
    print(summary_table(rows, checkpoint.answer.corpus_starts_per_bar))
    if checkpoint.style is not None:
        print(_free_line(improviser, checkpoint.style, args.seed))
    for query in args.queries:
        mine = [r for r in rows if r.query == query.name]
        chroma, onset = [r.chroma_cosine for r in mine], [r.onset_f1 for r in mine]
        print(f"{query.name}: rises with the budget: chroma {is_monotone(chroma)} "
              f"(within 0.01: {is_monotone(chroma, 0.01)}), onset F1 {is_monotone(onset)} "
              f"(within 0.01: {is_monotone(onset, 0.01)})")
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in rows], indent=1))
    if args.plot:
        plot(rows, str(args.plot))
    return 0


FREE_BARS = 1000


def _free_line(improviser, style, seed: int) -> str:
    """Free mode's style and density, as served (:data:`FREE_BARS` bars)."""
    from qbdi.frontier import free_answers
    from qbdi.models.density import starts_per_bar

    bars = free_answers(improviser, FREE_BARS, seed)
    silent = int((~bars[:, :, 0].any(axis=(1, 2))).sum())
    return (f"free mode ({FREE_BARS} bars, latents from the "
            f"{improviser.answer.free_latents}): style {style.probability(bars).mean():.3f}, "
            f"{starts_per_bar(bars):.1f} starts a bar, {silent} silent bars")


def _score_take(args: argparse.Namespace) -> int:
    """``qbdi score --take``: the live answers of a recorded take, per budget."""
    import json

    from qbdi.models.checkpoint import load_checkpoint
    from qbdi.take_score import format_take_table, score_take

    if args.queries or args.plot:
        raise QbdiError("--take scores one take: give no query files and no --plot")
    style = load_checkpoint(args.model).style  # the --model's measure of its corpus's style
    rows = score_take(args.take, warn=lambda line: warn("score", [line]), style=style)
    print(f"{args.take}: answers against the bars they answered (query mode)")
    print(format_take_table(rows))
    if args.json:
        args.json.write_text(json.dumps([row.as_dict() for row in rows], indent=1))
    return 0


