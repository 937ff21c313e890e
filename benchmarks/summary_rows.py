"""The rows of run_all.py's table: (measure, value, target) per part's results, in the order
of the parts; a part that failed shows its error, one not run shows nothing."""

from __future__ import annotations

from collections.abc import Callable

Row = tuple[str, str, str]


def summary_rows(results: dict) -> list[Row]:
    rows: list[Row] = []
    for part, (label, make) in ROWS.items():
        if part not in results:  # not run (--only)
            continue
        if "error" in results[part]:
            rows.append((label, f"not measured: {results[part]['error']}", ""))
            continue
        rows += make(results[part])
    return rows


def _compute(c: dict) -> list[Row]:
    return [("per-bar compute, 1 thread: median / p99 / max (ms)",
             f"{c['median_ms']:.3f} / {c['p99_ms']:.3f} / {c['max_ms']:.3f}", "p99 <= 0.5"),
            ("the same, one bar over and over (the machine's spread): median / p99",
             f"{c['same_bar_median_ms']:.3f} / {c['same_bar_p99_ms']:.3f}", ""),
            ("the same bars, a 20 ms pause before each (as on stage): median / p99",
             f"{c['paused_median_ms']:.3f} / {c['paused_p99_ms']:.3f}", "")]


def _jack(jack: dict) -> list[Row]:
    t, r, ready = jack["timing"], jack["recording"], jack["ready_s"]
    return [(f"output timing error vs grid, JACK ({t['notes']:.0f} notes): median / "
             "p99 / max (ms)", f"{t['median_ms']:.3f} / {t['p99_ms']:.3f} / "
             f"{t['max_ms']:.3f}", f"p99 <= {t['period_ms'] + 1:.2f} (period "
             f"{t['period_ms']:.2f} + 1)"),
            (f"the same while recording a take, --record ({r['notes']:.0f} notes)",
             f"{r['median_ms']:.3f} / {r['p99_ms']:.3f} / {r['max_ms']:.3f}", "as without"),
            (f"qbdi serve ready, {len(ready)} runs: median / max (s)",
             f"{sorted(ready)[len(ready) // 2]:.3f} / {max(ready):.3f}", "<= 1.5")]


def _render(r: dict) -> list[Row]:
    return [("batched render bars/s: 256 bits / full rate",
             f"{r['bars_per_s']['256']:,.0f} / {r['bars_per_s']['full']:,.0f}",
             ">= 20,000 (old model, A/B)"),
            (f"qbdi render {r['file']} (4 min 24 s), start-up included (s)",
             f"{r['render_wall_s']:.2f}", "<= 1")]


def _analysis(analysis: dict) -> list[Row]:
    rows = []
    for name, a in analysis["sweeps"].items():
        ours_s, vmo_s = a["ours_s"], a["vmo_s_extrapolated"]
        rows.append((f"IR sweep, 200 thresholds x 4000 frames, {name}: ours / vmo "
                     "(extrapolated) (s)", f"{ours_s:.2f} / {vmo_s:.1f} ({vmo_s / ours_s:.0f}x)",
                     ""))
    return rows


def _train(tr: dict) -> list[Row]:
    return [(f"training, paper-size VAE, {tr['corpus'].split('/')[-1]}: s per epoch "
             f"(corpus load {tr['load_s']:.1f} s)", " / ".join(f"{e:.2f}" for e in tr["epoch_s"]),
             "")]


def _rss(r: dict) -> list[Row]:
    return [("qbdi serve RSS, shipped model, free play (MB)", f"{r['rss_mb']:.0f}", "")]


def _stage(stage: dict) -> list[Row]:
    """Timing and compute per condition of bench_stage.py."""
    what = {"quiet": "quiet", "flood": "1,000 bad datagrams/s, stdout+stderr blocked",
            "view": "live terminal view drawing"}
    rows = []
    for condition, r in stage.items():
        if not isinstance(r, dict):  # the run's own figures (e.g. the load average)
            continue
        if "error" in r:
            rows.append((f"on stage, {what[condition]}", f"not measured: {r['error']}", ""))
            continue
        t, c = r["timing"], r["compute"]
        rows.append((f"on stage, {what[condition]}: output timing, JACK ({t['n']:.0f} "
                     "notes): median / p99 / max (ms)",
                     f"{t['median_ms']:.3f} / {t['p99_ms']:.3f} / {t['max_ms']:.3f}",
                     "as quiet"))
        rows.append((f"on stage, {what[condition]}: per-bar compute in the server "
                     f"({c['n']:.0f} bars): median / p99 / max (ms)",
                     f"{c['median_ms']:.3f} / {c['p99_ms']:.3f} / {c['max_ms']:.3f}",
                     "as quiet"))
    return rows


ROWS: dict[str, tuple[str, Callable[[dict], list[Row]]]] = {
    "compute": ("per-bar compute, 1 thread", _compute),
    "jack": ("output timing / ready (JACK)", _jack),
    "render": ("render", _render),
    "analysis": ("analysis sweep", _analysis),
    "train": ("training", _train),
    "rss": ("server RSS", _rss),
    "stage": ("on stage (flood, blocked output, view)", _stage),
}
"""Per part of run_all.PARTS, in its order: the label of its row when it failed, and its rows."""
