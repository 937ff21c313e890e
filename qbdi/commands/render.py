"""``qbdi render``: improvise on a query MIDI file and write the answers as MIDI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qbdi.commands.common import (
    add_model_args,
    bar_progress,
    parse_budgets,
    progress,
    settings_from_args,
    warn,
)
from qbdi.errors import QbdiError, check_writable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", type=Path, help="query MIDI file")
    parser.add_argument("-o", "--out", type=Path, required=True, help="MIDI file to write")
    parser.add_argument("--bits", default="full", help="bits per bar, or 'full' (default)")
    parser.add_argument("--sweep", default=None,
                        help="several budgets, e.g. 0,64,256,full: writes OUT.bits-B.mid each")
    parser.add_argument("--mode", choices=["query", "free", "echo"], default="query")
    parser.add_argument("--with-query", action="store_true",
                        help="add the query as a second track on channel 2")
    parser.add_argument("--track", default=None, metavar="NAME",
                        help="take the query's notes from the tracks of this name only (e.g. "
                             "'player' of a take recorded by serve --record)")
    add_model_args(parser)


def run(args: argparse.Namespace) -> int:
    """Render a query MIDI file through the model and the channel."""
    from qbdi.improviser import Improviser
    from qbdi.midifile import read_midi
    from qbdi.models.checkpoint import load_checkpoint
    from qbdi.render import render_score, sweep_path, write_rendering

    budgets = parse_budgets(args.sweep) if args.sweep else parse_budgets(args.bits)
    if not budgets:
        raise QbdiError("--sweep names no budget")
    check_writable(args.out, "--out")
    settings = [settings_from_args(args, budget) for budget in budgets]
    score = read_midi(args.query, track=args.track)
    warn("render", score.warnings)
    score.check_metre(args.metre)
    if score.metres() - {"4/4", "2/2", "2/4"}:
        print(f"qbdi render: warning: {args.query} is in {', '.join(sorted(score.metres()))}; "
              "it is cut into 4/4 frames of 16 sixteenths that do not follow its barlines",
              file=sys.stderr)
    improviser = Improviser.from_checkpoint(load_checkpoint(args.model))
    for budget, setting in progress(list(zip(budgets, settings, strict=True)), "budgets"):
        with bar_progress(score.n_bars, budget) as on_progress:
            rendering = render_score(score, improviser, setting, on_progress)
        out = sweep_path(args.out, budget) if args.sweep else args.out
        write_rendering(out, score, rendering, args.with_query)
        print(f"{out}: {len(rendering.query_bars)} bars, {len(rendering.notes)} notes, "
              f"bits {budget}, {rendering.dims_with_bits:.0f} dimensions with bits")
    return 0


