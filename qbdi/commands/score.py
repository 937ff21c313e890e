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
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG plot")
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
    improviser = Improviser.from_checkpoint(load_checkpoint(args.model))
    rows = []
    for query in progress(list(args.queries), "queries"):
        score = read_midi(query)
        warn("score", score.warnings)
        score.check_metre(args.metre)
        rows += score_budgets(query.name, score, improviser, base, budgets, args.seeds)
    print(format_table(rows))
    print(summary_table(rows))
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


def _score_take(args: argparse.Namespace) -> int:
    """``qbdi score --take``: the live answers of a recorded take, per budget."""
    import json

    from qbdi.take_score import format_take_table, score_take

    if args.queries or args.plot:
        raise QbdiError("--take scores one take: give no query files and no --plot")
    rows = score_take(args.take, warn=lambda line: warn("score", [line]))
    print(f"{args.take}: answers against the bars they answered (query mode)")
    print(format_take_table(rows))
    if args.json:
        args.json.write_text(json.dumps([row.as_dict() for row in rows], indent=1))
    return 0


