"""``qbdi analyze``: the paper's experiment (section 3.1, Figures 4-6) in one command.

For each query MIDI file: analyse the query itself and, with ``--bits``, each rendering of
it through the one improviser at those budgets (``stats="query"``, the paper's offline
setting), with the Variable Markov Oracle. Writes ``report.json`` and three PNG figures.

Latent features, one vector per bar: for the query, the encoder mean ``mu`` of its bars;
for a rendering, ``z_d``, the latent states after the channel that the decoder turned into
that rendering (the paper's Figure 6 analyses these). At full rate ``z_d = z_e``, the
encoder's sample ``mu + sigma * eps``.

:class:`~qbdi.errors.QbdiError` (bad files, bad values) propagates for the CLI to print.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qbdi.analysis.features import FRAMES_PER_BAR_CHOICES
from qbdi.commands.analyze_report import (
    FIG4_NAME,
    FIG5_NAME,
    FIG6_NAME,
    REPORT_NAME,
    analyse_version,
    entry,
    figure_dirs,
    make_versions,
    write_figures,
    write_report,
)
from qbdi.defaults import DEFAULT_THRESHOLD
from qbdi.errors import QbdiError

MIN_BARS = 2
MAX_FRAMES = 8192  # the analysis compares every pair of frames: 8192^2 float64 are 512 MiB
FEATURES = {"chroma": ("chroma",), "latent": ("latent",), "both": ("chroma", "latent")}

DESCRIPTION = """\
Information rate and motifs (Variable Markov Oracle) of query MIDI files and, with --bits,
of their renderings through the model and the channel: the paper's experiment (section 3.1,
Figures 4-6) in one command."""
EPILOG = f"""\
features:
  chroma  pitch classes per frame (--frames-per-bar), Tonnetz distance
  latent  one vector per bar, cosine distance: the encoder mean mu for the query; for a
          rendering, z_d, the latents after the channel that the decoder rendered
          (at full rate z_d = mu + sigma*eps). The channel's statistics come from the
          whole query (the paper's offline setting).

output:
  DIR/{REPORT_NAME}
      one entry per (file, version): version "query", and "bits-B" for each budget B
      of --bits, with its chroma and/or latent analysis (sweep, best threshold, IR over
      time, motifs; units in key names), plus the settings used and the figures written
  {FIG4_NAME}
      motifs over the piano roll, one panel per version (Figure 4; chroma if analysed)
  {FIG5_NAME}
      total IR against threshold, versions side by side (Figure 5; chroma if analysed)
  {FIG6_NAME.format(feature="latent")}
      IR over time of the renderings' latents (Figure 6); of the query without --bits;
      fig6_ir_over_time_chroma.png with --feature chroma
  With one FILE the figures go in DIR; with several, in DIR/STEM/ for each file (STEM-2,
  STEM-3 ... when files share a stem). report.json is always DIR/{REPORT_NAME}.

the paper's experiment on one query (full rate against 256 bits per bar):
  qbdi analyze query.mid --out results --bits full,256 --feature both
"""


# -- arguments ---------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``qbdi analyze``'s arguments on ``parser``."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE.mid",
                        help="query MIDI files to analyse")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for report.json and the figures (created if missing)")
    parser.add_argument("--feature", choices=list(FEATURES), default="chroma",
                        help="chroma (Tonnetz distance, no model needed for the query alone), "
                             "latent (cosine distance of per-bar latents) or both "
                             "(default chroma)")
    parser.add_argument("--bits", default=None, metavar="B[,B...]",
                        help="also render each query at these budgets in bits per bar and "
                             "analyse the renderings, e.g. full,256 (default: the query only)")
    parser.add_argument("--model", type=Path, default=None,
                        help="checkpoint for the latents and renderings (default: shipped model)")
    parser.add_argument("--seed", type=int, default=0, help="improviser seed (default 0)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="note probability above which a rendered note is on (default "
                             f"{DEFAULT_THRESHOLD})")
    parser.add_argument("--frames-per-bar", type=int, choices=FRAMES_PER_BAR_CHOICES, default=4,
                        help="chroma frames per bar: 1 bar, 4 beats, 16 sixteenths (default 4)")
    parser.add_argument("--min-length", type=int, default=2, metavar="FRAMES",
                        help="shortest motif reported, in frames (default 2)")
    parser.add_argument("--min-count", type=int, default=2,
                        help="fewest occurrences of a motif reported (default 2)")
    parser.add_argument("--thresholds", type=int, default=200, metavar="N",
                        help="similarity thresholds in the sweep (default 200)")
    parser.add_argument("--track", default=None, metavar="NAME",
                        help="analyse the notes of the tracks of this name only (e.g. 'player' "
                             "or 'qbdi' of a take recorded by serve --record)")


@dataclass(frozen=True)
class Options:
    """Validated arguments; ``budgets`` are bits per bar or ``"full"``."""

    files: list[Path]
    out_dir: Path
    features: tuple[str, ...]
    budgets: list[int | str]
    model: Path | None
    seed: int
    note_threshold: float
    frames_per_bar: int
    min_length_frames: int
    min_count: int
    n_thresholds: int
    track: str | None = None

    @property
    def needs_model(self) -> bool:
        return bool(self.budgets) or "latent" in self.features


def parse_options(args: argparse.Namespace) -> Options:
    """Check every value before any file is read; raise :class:`QbdiError` naming the bad one."""
    if args.min_length < 1:
        raise QbdiError(f"--min-length must be >= 1 frame, got {args.min_length}")
    if args.min_count < 2:
        raise QbdiError(f"--min-count must be >= 2, got {args.min_count}")
    if args.thresholds < 2:
        raise QbdiError(f"--thresholds must be >= 2, got {args.thresholds}")
    if not 0.0 < args.threshold < 1.0:
        raise QbdiError(f"--threshold must be between 0 and 1 (exclusive), got {args.threshold}")
    if args.seed < 0:
        raise QbdiError(f"--seed must be >= 0, got {args.seed}")
    return Options(
        files=list(args.files), out_dir=args.out, features=FEATURES[args.feature],
        budgets=parse_bits(args.bits), model=args.model, seed=args.seed,
        note_threshold=args.threshold, frames_per_bar=args.frames_per_bar,
        min_length_frames=args.min_length, min_count=args.min_count,
        n_thresholds=args.thresholds, track=args.track,
    )


def _check_out_dir(out_dir: Path) -> None:
    """Create ``--out`` now (as the report would) so a bad folder fails before the work."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise QbdiError(f"--out {out_dir}: cannot create this folder ({err.strerror})") from err
    if not os.access(out_dir, os.W_OK):
        raise QbdiError(f"--out {out_dir}: folder not writable")


def parse_bits(text: str | None) -> list[int | str]:
    """``"full,256"`` -> ``["full", 256]`` (duplicates dropped); None -> ``[]``."""
    from qbdi.render import parse_budget

    if text is None:
        return []
    try:
        budgets = [parse_budget(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise QbdiError(f"--bits: {err}") from err
    if not budgets:
        raise QbdiError(f"--bits names no budget: {text!r} (e.g. full,256)")
    return list(dict.fromkeys(budgets))


def read_query(path: Path, track: str | None = None) -> np.ndarray:
    """The query's ``(n_bars, 16, 2, 78)`` bars (of the tracks called ``track`` alone, if
    given); :class:`QbdiError` naming ``path`` if unusable."""
    from qbdi.bars import notes_to_bars
    from qbdi.midifile import read_midi

    # MidiFileError: missing, not MIDI, no notes (drums are ignored), no such track
    score = read_midi(path, track=track)
    for line in score.warnings:  # what a damaged file's reading skipped
        print(f"qbdi analyze: warning: {line}", file=sys.stderr)
    if score.metres() - {"4/4", "2/2", "2/4"}:
        print(f"qbdi analyze: warning: {path} is in {', '.join(sorted(score.metres()))}; it is "
              "cut into 4/4 frames of 16 sixteenths that do not follow its barlines",
              file=sys.stderr)
    bars = notes_to_bars(score.notes)
    if len(bars) < MIN_BARS:
        raise QbdiError(f"{path}: only {len(bars)} bar of notes; the analysis needs at least "
                        f"{MIN_BARS} bars to find repetitions")
    return bars


def check_size(path: Path, n_bars: int, options: Options) -> None:
    """Refuse, before any work, a query with more frames than the analysis can compare."""
    frames_per_bar = options.frames_per_bar if "chroma" in options.features else 1
    if n_bars * frames_per_bar > MAX_FRAMES:
        hint = " (or --frames-per-bar 1)" if frames_per_bar > 1 else ""
        raise QbdiError(f"{path}: {n_bars:,} bars of {frames_per_bar} frames are more than the "
                        f"{MAX_FRAMES:,} frames the analysis can compare pairwise; analyse a "
                        f"shorter part of it{hint}")


def make_improviser(options: Options):
    """The one improviser, or None when no model is needed."""
    if not options.needs_model:
        return None
    from qbdi.improviser import Improviser
    from qbdi.models.checkpoint import load_checkpoint

    return Improviser.from_checkpoint(load_checkpoint(options.model))


# -- the command -------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Information dynamics of MIDI files and their renderings: IR, motifs, figures.

    Writes report.json and Figures 4-6."""
    options = parse_options(args)
    # every file checked first
    queries = [(path, read_query(path, options.track)) for path in options.files]
    for path, bars in queries:
        check_size(path, len(bars), options)
    _check_out_dir(options.out_dir)
    improviser = make_improviser(options)
    n_analyses = len(queries) * (1 + len(options.budgets)) * len(options.features)
    entries, figure_list = [], []
    with _progress(n_analyses) as progress:
        for (path, bars), fig_dir in zip(queries, figure_dirs(options.files, options.out_dir),
                                         strict=True):
            versions = make_versions(bars, options, improviser)
            for version in versions:
                for feature in options.features:
                    analyse_version(path, version, feature, options)
                    progress.update(1)
            entries += [entry(path, v) for v in versions]
            written = write_figures(versions, options.features, fig_dir)
            figure_list.append({"file": str(path), "pngs": [
                str(png.relative_to(options.out_dir)) for png in written]})
    write_report(options, entries, figure_list)
    return 0


def _progress(total: int):
    """A tqdm bar on stderr when stderr is a terminal; otherwise a silent stand-in."""
    from tqdm import tqdm

    return tqdm(total=total, unit="analysis", file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty())
