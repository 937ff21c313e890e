"""``qbdi analyze``: the paper's experiment (section 3.1, Figures 4-6) in one command.

For each query MIDI file: analyse the query itself and, with ``--bits``, each rendering of
it through the one improviser at those budgets (``stats="query"``, the paper's offline
setting), with the Variable Markov Oracle. Writes ``report.json`` and three PNG figures.

Latent features, one vector per bar: for the query, the encoder mean ``mu`` of its bars;
for a rendering, ``z_d``, the latent states after the channel that the decoder turned into
that rendering (the paper's Figure 6 analyses these). At full rate ``z_d = z_e``, the
encoder's sample ``mu + sigma * eps``.

The wiring into ``qbdi`` goes through :func:`add_arguments` and :func:`run`;
:class:`~qbdi.errors.QbdiError` (bad files, bad values) propagates for the CLI to print.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qbdi.analysis.errors import AnalysisInputError
from qbdi.analysis.features import FRAMES_PER_BAR_CHOICES
from qbdi.defaults import DEFAULT_THRESHOLD
from qbdi.errors import QbdiError

REPORT_NAME = "report.json"
REPORT_SCHEMA_VERSION = 1
FIG4_NAME = "fig4_motifs.png"
FIG5_NAME = "fig5_ir_vs_threshold.png"
FIG6_NAME = "fig6_ir_over_time_{feature}.png"
MIN_BARS = 2
MAX_FRAMES = 8192  # the analysis compares every pair of frames: 8192^2 float64 are 512 MiB
FEATURES = {"chroma": ("chroma",), "latent": ("latent",), "both": ("chroma", "latent")}
QUERY = "query"
QUERY_LATENTS = "mu of the query bars (encoder mean)"
RENDERING_LATENTS = "z_d: the decoder's input, after the channel (z_e = mu + sigma*eps at full)"

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


# -- one version of one piece ------------------------------------------------------------
@dataclass
class Version:
    """The query or one rendering of it: bars, latents and the analyses of them."""

    name: str  # "query" or "bits-B"
    budget: int | str | None
    bars: np.ndarray  # (n_bars, 16, 2, 78) bool
    latents: np.ndarray | None = None  # (n_bars, latent_size)
    dims_with_bits: float | None = None
    analyses: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        if self.budget is None:
            return "query"
        return "full rate" if self.budget == "full" else f"{self.budget} bits/bar"


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


def make_versions(bars: np.ndarray, options: Options, improviser) -> list[Version]:
    """The query, then one rendering per budget through ``improviser`` (None: query only)."""
    query = Version(QUERY, None, bars)
    if improviser is not None and "latent" in options.features:
        from qbdi.bars import flatten_bars

        query.latents, _ = improviser.model.encode(flatten_bars(bars))
    return [query] + [render(bars, budget, options, improviser) for budget in options.budgets]


def render(bars: np.ndarray, budget: int | str, options: Options, improviser) -> Version:
    """Render ``bars`` at ``budget`` through the one improviser, keeping its ``z_d``."""
    from qbdi.improviser import ImproviserSettings

    improviser.reset(ImproviserSettings(
        mode="query", stats="query", budget_bits=budget, seed=options.seed,
        threshold=options.note_threshold, encoding="sample",  # the paper's experiment
    ))
    out_bars, answers = improviser.improvise(bars)
    dims = None if budget == "full" else answers.mean_dims_with_bits()
    z_d = answers.z_d.astype(np.float64)  # (n_bars, latent_size)
    return Version(f"bits-{budget}", budget, out_bars, z_d, dims)


def analyse_version(path: Path, version: Version, feature: str, options: Options) -> None:
    """Analyse ``version`` of ``path`` on ``feature`` into ``version.analyses``.

    A query that cannot be analysed is the user's input: :class:`QbdiError` naming the
    file. A rendering that cannot (e.g. the decoder answered silence) goes to
    ``version.errors`` with a warning on stderr, and the other versions go on.
    """
    from qbdi.analysis.report import analyze

    try:
        version.analyses[feature] = analyze(
            version.bars, version.latents, feature, frames_per_bar=options.frames_per_bar,
            n_thresholds=options.n_thresholds, min_length_frames=options.min_length_frames,
            min_count=options.min_count,
        )
    except AnalysisInputError as err:
        if version.budget is None:
            raise QbdiError(f"{path}: {version.name}, {feature}: {err}") from err
        version.errors[feature] = str(err)
        print(f"qbdi analyze: warning: {path}: {version.name}, {feature}: {err}",
              file=sys.stderr)


def make_improviser(options: Options):
    """The one improviser, or None when no model is needed."""
    if not options.needs_model:
        return None
    from qbdi.improviser import Improviser
    from qbdi.models.checkpoint import load_checkpoint

    return Improviser.from_checkpoint(load_checkpoint(options.model))


# -- figures and report ------------------------------------------------------------------
def figure_dirs(files: list[Path], out_dir: Path) -> list[Path]:
    """``out_dir`` for one file; ``out_dir/STEM`` each (``STEM-2``... on a clash) for more."""
    if len(files) == 1:
        return [out_dir]
    seen: dict[str, int] = {}
    dirs = []
    for path in files:
        seen[path.stem] = seen.get(path.stem, 0) + 1
        suffix = "" if seen[path.stem] == 1 else f"-{seen[path.stem]}"
        dirs.append(out_dir / f"{path.stem}{suffix}")
    return dirs


def write_figures(versions: list[Version], features: tuple[str, ...], fig_dir: Path) -> list[Path]:
    """Figures 4-6 from the analysed versions; returns the PNGs written."""
    from qbdi.analysis import figures

    main = features[0]  # chroma when analysed: the paper's Figures 4 and 5
    done = [v for v in versions if main in v.analyses]
    written = []
    if done:
        written.append(figures.plot_motifs(
            [v.analyses[main] for v in done], [v.bars for v in done], fig_dir / FIG4_NAME,
            [f"{v.title} ({main})" for v in done]))
        written.append(figures.plot_ir_vs_threshold(
            [v.analyses[main] for v in done], fig_dir / FIG5_NAME,
            [f"{v.title} ({main})" for v in done]))
    over_time = features[-1]  # latent when analysed: the paper's Figure 6
    shown = [v for v in versions if over_time in v.analyses]
    renderings = [v for v in shown if v.budget is not None]
    if shown:
        shown = renderings or shown
        written.append(figures.plot_ir_over_time(
            [v.analyses[over_time] for v in shown],
            fig_dir / FIG6_NAME.format(feature=over_time),
            [f"{v.title} ({over_time})" for v in shown]))
    return written


def entry(path: Path, version: Version) -> dict:
    """One report.json entry."""
    item = {
        "file": str(path),
        "version": version.name,
        "budget_bits_per_bar": version.budget,
        "n_bars": len(version.bars),
        "sounding_steps": int(version.bars[:, :, 0, :].any(axis=-1).sum()),
        "mean_dims_with_bits": version.dims_with_bits,
        "latent_source": None,
        "analyses": version.analyses,
        "errors": version.errors,
    }
    if "latent" in version.analyses or "latent" in version.errors:
        item["latent_source"] = QUERY_LATENTS if version.budget is None else RENDERING_LATENTS
    return item


def settings_record(options: Options) -> dict:
    """The settings report.json records."""
    return {
        "model": str(options.model) if options.model else "shipped default" if options.needs_model
        else None,
        "features": list(options.features),
        "budgets_bits_per_bar": options.budgets,
        "improviser": {"mode": "query", "stats": "query", "encoding": "sample",
                       "seed": options.seed, "note_threshold_probability": options.note_threshold},
        "frames_per_bar": options.frames_per_bar,
        "min_length_frames": options.min_length_frames,
        "min_count": options.min_count,
        "n_thresholds": options.n_thresholds,
    }


# -- the command -------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Analyse queries (and their renderings) and write report.json and Figures 4-6."""
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


def write_report(options: Options, entries: list[dict], figure_list: list[dict]) -> Path:
    """Write ``DIR/report.json`` and say so on stdout."""
    report = {"schema_version": REPORT_SCHEMA_VERSION, "settings": settings_record(options),
              "entries": entries, "figures": figure_list}
    report_path = options.out_dir / REPORT_NAME
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1))
    print(f"{report_path}: {len(entries)} analysed versions of {len(options.files)} file(s)")
    return report_path


def _progress(total: int):
    """A tqdm bar on stderr when stderr is a terminal; otherwise a silent stand-in."""
    from tqdm import tqdm

    return tqdm(total=total, unit="analysis", file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty())
