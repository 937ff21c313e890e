"""``qbdi analyze``'s work on one piece: the query and its renderings as versions, their
analyses, Figures 4-6 and ``report.json``."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qbdi.analysis.errors import AnalysisInputError
from qbdi.errors import QbdiError

if TYPE_CHECKING:
    from qbdi.commands.analyze import Options

REPORT_NAME = "report.json"
REPORT_SCHEMA_VERSION = 1
FIG4_NAME = "fig4_motifs.png"
FIG5_NAME = "fig5_ir_vs_threshold.png"
FIG6_NAME = "fig6_ir_over_time_{feature}.png"
QUERY = "query"
QUERY_LATENTS = "mu of the query bars (encoder mean)"
RENDERING_LATENTS = "z_d: the decoder's input, after the channel (z_e = mu + sigma*eps at full)"


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


def make_versions(bars: np.ndarray, options: Options, improviser) -> list[Version]:
    """The query, then one rendering per budget through ``improviser`` (None: query only)."""
    query = Version(QUERY, None, bars)
    if improviser is not None and "latent" in options.features:
        from qbdi.bars import flatten_bars

        query.latents, _ = improviser.model.encode(flatten_bars(bars))
    return [query] + [render(bars, budget, options, improviser) for budget in options.budgets]


def render(bars: np.ndarray, budget: int | str, options: Options, improviser) -> Version:
    """Render ``bars`` at ``budget`` through the one improviser, keeping its ``z_d``."""
    from qbdi.render import improvise
    from qbdi.settings import ImproviserSettings

    settings = ImproviserSettings(
        mode="query", stats="query", budget_bits=budget, seed=options.seed,
        threshold=options.note_threshold, encoding="sample",  # the paper's experiment
    )
    answers = improvise(improviser, bars, settings)
    dims = None if budget == "full" else answers.mean_dims_with_bits()
    z_d = answers.z_d.astype(np.float64)  # (n_bars, latent_size)
    return Version(f"bits-{budget}", budget, answers.bars, z_d, dims)


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


def write_report(options: Options, entries: list[dict], figure_list: list[dict]) -> Path:
    """Write ``DIR/report.json`` and say so on stdout."""
    report = {"schema_version": REPORT_SCHEMA_VERSION, "settings": settings_record(options),
              "entries": entries, "figures": figure_list}
    report_path = options.out_dir / REPORT_NAME
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1))
    print(f"{report_path}: {len(entries)} analysed versions of {len(options.files)} file(s)")
    return report_path
