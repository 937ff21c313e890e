"""The ``qbdi`` command line: a table of subcommands, each importing its heavy parts only
when it runs, so ``qbdi --help`` is instant.

Every :class:`~qbdi.errors.QbdiError` ends the program with its message and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from qbdi.defaults import DEFAULT_THRESHOLD
from qbdi.errors import QbdiError, check_writable

Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", required=True,
                        help="a folder of MIDI files, or music21:NAME (e.g. music21:bach)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--latent-dim", type=int, default=500)
    parser.add_argument("--hidden-dim", type=int, default=500)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-bars", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--transpose", type=int, default=5,
                        help="augment with transpositions of up to ±N semitones")
    parser.add_argument("--fp16", action="store_true", help="store weights as float16")
    parser.add_argument("--corpus-licence", default="unknown")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT.train-state.safetensors if it exists")
    parser.add_argument("--no-progress", action="store_true")


def _train(args: argparse.Namespace) -> int:
    """Train a bar VAE on a corpus and write a checkpoint."""
    from pydantic import ValidationError

    try:
        from qbdi.models.train import TrainSettings, train
    except ImportError as err:
        raise QbdiError(f"training needs torch ({err}): pip install torch==2.13.0 (CPU "
                        "build) and pip install 'qbdi[train]'") from err

    try:
        settings = TrainSettings(
            corpus=args.corpus, out=args.out, epochs=args.epochs, latent_size=args.latent_dim,
            hidden_size=args.hidden_dim, beta=args.beta, seed=args.seed,
            batch_bars=args.batch_bars, learning_rate=args.learning_rate,
            transpose_semitones=args.transpose,
            weights_dtype="float16" if args.fp16 else "float32",
            corpus_licence=args.corpus_licence, resume=args.resume,
            command="qbdi " + shlex.join(sys.argv[1:]),
        )
    except ValidationError as err:
        raise QbdiError(_describe(err)) from err
    check_writable(settings.out, "--out")  # before minutes of training, not after
    train(settings, progress=not args.no_progress)
    return 0


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help="checkpoint (default: the shipped Bach chorale model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="note probability above which a feature is on (default "
                             f"{DEFAULT_THRESHOLD}; the paper's reference code used 0.7)")
    parser.add_argument("--sampling", action="store_true",
                        help="draw notes by Bernoulli sampling instead of the threshold")
    parser.add_argument("--stats", choices=["query", "window", "corpus", "prior"],
                        default="query", help="channel statistics (default: the whole query)")
    parser.add_argument("--window-bars", type=int, default=16)
    parser.add_argument("--allocation", choices=["source", "posterior"], default="source",
                        help="variance that allocates bits: source (the paper's equations) or "
                             "posterior (the reference notebook)")
    parser.add_argument("--encoding", choices=["sample", "mean"], default="mean",
                        help="z_e = mu alone (default) or mu + sigma*eps (the paper)")
    parser.add_argument("--reallocate-per-bar", action="store_true",
                        help="allocate bits per bar instead of once per query")
    parser.add_argument("--metre", choices=["frames", "strict"], default="frames",
                        help="frames: cut any metre into 4/4 frames (warns); strict: refuse "
                             "metres other than 4/4")


def _render_args(parser: argparse.ArgumentParser) -> None:
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
    _add_model_args(parser)


def settings_from_args(args: argparse.Namespace, budget: int | str):
    """Build validated improviser settings from the shared model arguments."""
    from pydantic import ValidationError

    from qbdi.improviser import ImproviserSettings

    try:
        return ImproviserSettings(
            mode=getattr(args, "mode", "query"), budget_bits=budget, stats=args.stats,
            window_bars=args.window_bars, allocation=args.allocation,
            reallocate_per_bar=args.reallocate_per_bar, encoding=args.encoding,
            threshold=args.threshold, sampling=args.sampling, seed=args.seed,
        )
    except (ValidationError, ValueError) as err:
        raise QbdiError(_describe(err) if isinstance(err, ValidationError) else str(err)) from err


def parse_budgets(text: str) -> list[int | str]:
    from qbdi.render import parse_budget

    try:
        return [parse_budget(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise QbdiError(str(err)) from err


def _render(args: argparse.Namespace) -> int:
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
    _warn("render", score.warnings)
    score.check_metre(args.metre)
    if score.metres() - {"4/4", "2/2", "2/4"}:
        print(f"qbdi render: warning: {args.query} is in {', '.join(sorted(score.metres()))}; "
              "it is cut into 4/4 frames of 16 sixteenths that do not follow its barlines",
              file=sys.stderr)
    improviser = Improviser.from_checkpoint(load_checkpoint(args.model), settings[0])
    for budget, setting in _progress(list(zip(budgets, settings, strict=True)), "budgets"):
        improviser.reset(setting)
        with _bar_progress(score.n_bars, budget) as on_progress:
            rendering = render_score(score, improviser, on_progress)
        out = sweep_path(args.out, budget) if args.sweep else args.out
        write_rendering(out, score, rendering, args.with_query)
        print(f"{out}: {len(rendering.query_bars)} bars, {len(rendering.notes)} notes, "
              f"bits {budget}, {rendering.dims_with_bits:.0f} dimensions with bits")
    return 0


def _warn(command: str, lines: list[str]) -> None:
    for line in lines:
        print(f"qbdi {command}: warning: {line}", file=sys.stderr)


PROGRESS_MIN_BARS = 2048  # about 1 s at the live path's speed; shorter files finish first


@contextlib.contextmanager
def _bar_progress(n_bars: int, budget: object) -> Iterator[Callable[[int], None] | None]:
    """A bar-by-bar progress bar on stderr for a long file when a terminal shows it."""
    if n_bars < PROGRESS_MIN_BARS or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=n_bars, unit="bar", desc=f"bits {budget}", leave=False) as bar:
        yield bar.update


def _progress(items: list, unit: str):
    """A progress bar on stderr when there is more than one item and a terminal to show it."""
    if len(items) < 2 or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, unit=unit, leave=False)


def _score_args(parser: argparse.ArgumentParser) -> None:
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
    _add_model_args(parser)


def _score(args: argparse.Namespace) -> int:
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
    improviser = Improviser.from_checkpoint(load_checkpoint(args.model), base)
    rows = []
    for query in _progress(list(args.queries), "queries"):
        score = read_midi(query)
        _warn("score", score.warnings)
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
    rows = score_take(args.take, warn=lambda line: _warn("score", [line]))
    print(f"{args.take}: answers against the bars they answered (query mode)")
    print(format_take_table(rows))
    if args.json:
        args.json.write_text(json.dumps([row.as_dict() for row in rows], indent=1))
    return 0


def _analyze_args(parser: argparse.ArgumentParser) -> None:
    from qbdi.analysis.command import add_arguments

    add_arguments(parser)


def _analyze(args: argparse.Namespace) -> int:
    """Information dynamics of MIDI files and their renderings: IR, motifs, figures."""
    from qbdi.analysis.command import run

    return run(args)


def _describe(err) -> str:
    return "; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())


def _serve_args(parser: argparse.ArgumentParser) -> None:
    from qbdi.server.app import add_serve_arguments

    add_serve_arguments(parser)


def _serve(args: argparse.Namespace) -> int:
    """Serve live: read bars on a MIDI input, answer them on a MIDI output, OSC control."""
    from qbdi.server.app import serve

    return serve(args)


def _ports_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=["alsa", "jack", "coremidi", "windows", "memory"],
                        default=None, help="MIDI backend (default: detected)")


def _ports(args: argparse.Namespace) -> int:
    """List MIDI input and output ports (names for serve --in/--out)."""
    from qbdi.server.app import ports

    return ports(args)


def _presets_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset-dir", type=Path, default=None,
                        help="also list your presets in this folder (as serve --preset-dir)")


def _presets(args: argparse.Namespace) -> int:
    """List the presets (for serve --preset and /qbdi/preset), validating each."""
    from qbdi.server.app import presets

    return presets(args)


def _osc_help_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="as the README's table")


def _osc_help(args: argparse.Namespace) -> int:
    """Print the OSC addresses the server answers and the feedback it sends."""
    from qbdi.server.app import osc_help

    return osc_help(args)


def _doctor_args(parser: argparse.ArgumentParser) -> None:
    from qbdi.server.doctor import add_arguments

    add_arguments(parser)


def _doctor(args: argparse.Namespace) -> int:
    """Check MIDI backends, ports, the OSC port, the model and one bar; say what to fix."""
    from qbdi.server.doctor import doctor

    return doctor(args)


COMMANDS: list[Command] = [
    ("train", _train_args, _train),
    ("render", _render_args, _render),
    ("score", _score_args, _score),
    ("analyze", _analyze_args, _analyze),
    ("serve", _serve_args, _serve),
    ("ports", _ports_args, _ports),
    ("presets", _presets_args, _presets),
    ("osc-help", _osc_help_args, _osc_help),
    ("doctor", _doctor_args, _doctor),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qbdi", description="Query-based deep improvisation: a live MIDI improviser for "
        "DAWs with a rate-limited latent channel, and its offline rendering and analysis.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, add_arguments, run in COMMANDS:
        sub = subparsers.add_parser(name, help=(run.__doc__ or "").strip().splitlines()[0]
                                    if run.__doc__ else None)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except QbdiError as err:
        print(f"qbdi {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # A file or device failed under us (disk full, a folder removed mid-run): name it
        # rather than print a traceback. Commands check their outputs up front as well.
        where = f"{err.filename}: " if err.filename else ""
        print(f"qbdi {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
