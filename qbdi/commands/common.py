"""What several commands share: the improviser's arguments, budgets, progress bars."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from qbdi.defaults import DEFAULT_THRESHOLD
from qbdi.errors import QbdiError
from qbdi.settings import STATS_SOURCES


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help="checkpoint (default: the shipped Bach chorale model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="note probability above which a feature is on (default "
                             f"{DEFAULT_THRESHOLD}; the paper's reference code used 0.7)")
    parser.add_argument("--sampling", action="store_true",
                        help="draw notes by Bernoulli sampling instead of the threshold")
    parser.add_argument("--stats", choices=STATS_SOURCES,
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


def settings_from_args(args: argparse.Namespace, budget: int | str):
    """Build validated improviser settings from the shared model arguments."""
    from pydantic import ValidationError

    from qbdi.settings import ImproviserSettings

    try:
        return ImproviserSettings(
            mode=getattr(args, "mode", "query"), budget_bits=budget, stats=args.stats,
            window_bars=args.window_bars, allocation=args.allocation,
            reallocate_per_bar=args.reallocate_per_bar, encoding=args.encoding,
            threshold=args.threshold, sampling=args.sampling, seed=args.seed,
        )
    except (ValidationError, ValueError) as err:
        raise QbdiError(describe(err) if isinstance(err, ValidationError) else str(err)) from err


def parse_budgets(text: str) -> list[int | str]:
    from qbdi.render import parse_budget

    try:
        return [parse_budget(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise QbdiError(str(err)) from err


PROGRESS_MIN_BARS = 2048  # about 1 s at the live path's speed; shorter files finish first


@contextlib.contextmanager
def bar_progress(n_bars: int, budget: object) -> Iterator[Callable[[int], None] | None]:
    """A bar-by-bar progress bar on stderr for a long file when a terminal shows it."""
    if n_bars < PROGRESS_MIN_BARS or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=n_bars, unit="bar", desc=f"bits {budget}", leave=False) as bar:
        yield bar.update


def progress(items: list, unit: str):
    """A progress bar on stderr when there is more than one item and a terminal to show it."""
    if len(items) < 2 or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, unit=unit, leave=False)


def warn(command: str, lines: list[str]) -> None:
    """Print what reading a file skipped (or anything else worth knowing) as warnings."""
    for line in lines:
        print(f"qbdi {command}: warning: {line}", file=sys.stderr)


def describe(err) -> str:
    return "; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())


