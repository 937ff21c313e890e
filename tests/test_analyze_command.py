"""``qbdi analyze``: the paper's experiment end to end on query files, and bad input."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from query_data import CHORDS_MELODY, MARCH

from qbdi.bars import Note, notes_to_bars
from qbdi.commands.analyze import (
    add_arguments,
    make_improviser,
    parse_options,
    run,
)
from qbdi.commands.analyze_report import FIG4_NAME, FIG5_NAME, figure_dirs, render
from qbdi.defaults import DEFAULT_THRESHOLD
from qbdi.errors import QbdiError
from qbdi.midifile import Track, read_midi, write_midi
from qbdi.models.runtime import logits_to_bars

SHORT = CHORDS_MELODY  # 20 bars of 4/4, phrases AABA + coda
SHORTER = MARCH  # 20 bars of 2/4: 10 frames
FIG6_LATENT = "fig6_ir_over_time_latent.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The same as qbdi/cli.py does for every command: a QbdiError is a message and exit 2.
HARNESS = (
    "import argparse, sys\n"
    "from qbdi.errors import QbdiError\n"
    "from qbdi.commands.analyze import add_arguments, run\n"
    "p = argparse.ArgumentParser(prog='qbdi analyze'); add_arguments(p)\n"
    "args = p.parse_args(sys.argv[1:])\n"
    "try:\n"
    "    sys.exit(run(args))\n"
    "except QbdiError as err:\n"
    "    print(f'qbdi analyze: error: {err}', file=sys.stderr); sys.exit(2)\n"
)


def analyze_cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HARNESS, *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def parse(*args: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qbdi analyze")
    add_arguments(parser)
    return parser.parse_args([str(a) for a in args])


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 5_000, f"{path}: only {len(data)} bytes"


# -- the paper's experiment ----------------------------------------------------------------
@pytest.fixture(scope="module")
def experiment(tmp_path_factory, queries_dir: Path, tiny_checkpoint: Path) -> dict:
    """One run of the whole experiment through a subprocess: query, full rate, 256 bits."""
    out = tmp_path_factory.mktemp("experiment")
    result = analyze_cli(queries_dir / SHORT, "--out", out, "--bits", "full,256",
                         "--feature", "both", "--model", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "report.json" in result.stdout
    return {"out": out, "report": json.loads((out / "report.json").read_text()),
            "stderr": result.stderr}


def test_experiment_has_every_version_and_feature(experiment: dict, queries_dir: Path) -> None:
    report = experiment["report"]
    entries = report["entries"]
    assert [e["version"] for e in entries] == ["query", "bits-full", "bits-256"]
    assert [e["budget_bits_per_bar"] for e in entries] == [None, "full", 256]
    n_bars = len(notes_to_bars(read_midi(queries_dir / SHORT).notes))
    for e in entries:
        assert e["file"] == str(queries_dir / SHORT)
        assert e["n_bars"] == n_bars
        assert set(e["analyses"]) == {"chroma", "latent"}, e["errors"]
        assert e["latent_source"]
    assert entries[0]["latent_source"].startswith("mu")
    assert entries[1]["latent_source"].startswith("z_d")
    assert entries[2]["mean_dims_with_bits"] > 0
    assert entries[1]["mean_dims_with_bits"] is None  # full rate: no channel


def test_experiment_records_its_settings(experiment: dict, tiny_checkpoint: Path) -> None:
    settings = experiment["report"]["settings"]
    assert settings["model"] == str(tiny_checkpoint)
    assert settings["budgets_bits_per_bar"] == ["full", 256]
    assert settings["improviser"]["stats"] == "query"
    assert settings["improviser"]["seed"] == 0
    assert settings["improviser"]["note_threshold_probability"] == DEFAULT_THRESHOLD
    assert settings["features"] == ["chroma", "latent"]
    assert settings["frames_per_bar"] == 4


def test_experiment_curves_and_motifs_are_consistent(experiment: dict) -> None:
    for e in experiment["report"]["entries"]:
        for feature, a in e["analyses"].items():
            frames_per_bar = 4 if feature == "chroma" else 1
            assert a["frames_per_bar"] == frames_per_bar
            assert a["n_frames"] == e["n_bars"] * frames_per_bar
            assert len(a["ir_bits_over_time"]) == a["n_frames"]
            assert len(a["thresholds"]) == len(a["total_ir_bits"]) == 200
            assert min(a["thresholds"]) <= a["best_threshold"] <= max(a["thresholds"])
            assert a["best_total_ir_bits"] == max(a["total_ir_bits"])
            assert all(np.isfinite(a["ir_bits_over_time"]))
            for motif in a["motifs"]:
                assert motif["length_frames"] >= a["min_length_frames"]
                assert len(motif["start_frames"]) == motif["count"] >= a["min_count"]
                assert all(s >= 0 and s + motif["length_frames"] <= a["n_frames"]
                           for s in motif["start_frames"])
    query_chroma = experiment["report"]["entries"][0]["analyses"]["chroma"]
    assert query_chroma["motifs"], "the query repeats its A phrase"


def test_experiment_writes_the_three_figures(experiment: dict, queries_dir: Path) -> None:
    out = experiment["out"]
    for name in (FIG4_NAME, FIG5_NAME, FIG6_LATENT):
        assert_png(out / name)
    assert experiment["report"]["figures"] == [
        {"file": str(queries_dir / SHORT), "pngs": [FIG4_NAME, FIG5_NAME, FIG6_LATENT]}]


def test_no_progress_bar_without_a_terminal(experiment: dict) -> None:
    assert "analysis/s" not in experiment["stderr"] and "%|" not in experiment["stderr"]


# -- the render path ---------------------------------------------------------------------
def test_renderings_take_the_one_render_path(queries_dir: Path, tiny_checkpoint: Path) -> None:
    """The kept z_d is what the decoder turned into the rendering, and the rendering is
    the plain improviser's."""
    from qbdi.improviser import Improviser
    from qbdi.models.checkpoint import load_checkpoint
    from qbdi.render import improvise
    from qbdi.settings import ImproviserSettings

    options = parse_options(parse(queries_dir / SHORT, "--out", "x", "--bits", "64",
                                  "--model", tiny_checkpoint, "--seed", "3"))
    bars = notes_to_bars(read_midi(queries_dir / SHORT).notes)
    version = render(bars, 64, options, make_improviser(options))
    plain = Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint))
    expected = improvise(plain, bars, ImproviserSettings(
        stats="query", budget_bits=64, seed=3, threshold=DEFAULT_THRESHOLD, encoding="sample"
    )).bars
    np.testing.assert_array_equal(version.bars, expected)
    assert version.latents.shape == (len(bars), plain.model.latent_size)
    decoded = logits_to_bars(plain.model.decode_logits(version.latents.astype(np.float32)),
                             DEFAULT_THRESHOLD)
    np.testing.assert_array_equal(decoded.reshape(expected.shape), expected)


# -- other layouts -----------------------------------------------------------------------
def test_several_files_chroma_needs_no_model(tmp_path, queries_dir, monkeypatch) -> None:
    import qbdi.models.checkpoint

    def no_model(*_args):
        raise AssertionError("the query's chroma needs no model")

    monkeypatch.setattr(qbdi.models.checkpoint, "load_checkpoint", no_model)
    files = [queries_dir / SHORT, queries_dir / SHORTER]
    assert run(parse(*files, "--out", tmp_path, "--frames-per-bar", "16",
                     "--thresholds", "20")) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [e["version"] for e in report["entries"]] == ["query", "query"]
    for path, e, figs in zip(files, report["entries"], report["figures"], strict=True):
        chroma = e["analyses"]["chroma"]
        assert chroma["n_frames"] == len(chroma["ir_bits_over_time"]) == e["n_bars"] * 16
        assert len(chroma["thresholds"]) == 20
        stem = path.stem
        assert figs == {"file": str(path), "pngs": [
            f"{stem}/{FIG4_NAME}", f"{stem}/{FIG5_NAME}", f"{stem}/fig6_ir_over_time_chroma.png"]}
        for name in figs["pngs"]:
            assert_png(tmp_path / name)
    assert report["settings"]["model"] is None


def test_figure_dirs_one_file_top_level_several_by_stem(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert figure_dirs([Path("a/x.mid")], out) == [out]
    assert figure_dirs([Path("a/x.mid"), Path("b/x.mid"), Path("y.mid")], out) == [
        out / "x", out / "x-2", out / "y"]


def test_a_silent_rendering_is_recorded_not_fatal(tmp_path, queries_dir, tiny_checkpoint,
                                                  capsys) -> None:
    """At a note threshold nothing reaches, the rendering is silent: its chroma analysis
    fails, the rest goes on."""
    assert run(parse(queries_dir / SHORTER, "--out", tmp_path, "--bits", "0",
                     "--feature", "both", "--model", tiny_checkpoint, "--threshold", "0.9999",
                     "--thresholds", "20")) == 0
    entries = json.loads((tmp_path / "report.json").read_text())["entries"]
    rendering = entries[1]
    assert "silent" in rendering["errors"]["chroma"]
    assert "latent" in rendering["analyses"]
    assert f"{queries_dir / SHORTER}: bits-0, chroma" in capsys.readouterr().err
    assert_png(tmp_path / FIG4_NAME)


def test_progress_bar_on_a_terminal(tmp_path, queries_dir, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert run(parse(queries_dir / SHORTER, "--out", tmp_path, "--thresholds", "20")) == 0
    assert "0/1 [" in capsys.readouterr().err  # one file, one version, one feature


def test_help_names_the_options_and_the_experiment() -> None:
    result = analyze_cli("--help")
    assert result.returncode == 0
    for text in ("--out", "--feature", "--bits", "--model", "--seed", "--threshold",
                 "--frames-per-bar", "--min-length", "--min-count", "--bits full,256",
                 FIG4_NAME, FIG5_NAME, FIG6_LATENT, "report.json"):
        assert text in result.stdout, text


# -- bad input -----------------------------------------------------------------------------
def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the message must say)."""
    not_midi = tmp_path / "notes.mid"
    not_midi.write_text("this is not a MIDI file\n")
    empty = tmp_path / "empty.mid"
    write_midi(empty, [Track([])])
    one_bar = tmp_path / "one-bar.mid"
    write_midi(one_bar, [Track([Note(0, 60, 4, 80), Note(4, 64, 16, 80)])])
    drums = tmp_path / "drums.mid"
    write_midi(drums, [Track([Note(s, 36, s + 2, 100) for s in range(0, 64, 4)], channel=9)])
    return {
        "missing": (tmp_path / "missing.mid", "no such file"),
        "not-midi": (not_midi, "not a readable MIDI file"),
        "empty": (empty, "contains no notes"),
        "one-bar": (one_bar, "only 1 bar"),
        "drums-only": (drums, "contains no notes"),
    }


@pytest.mark.parametrize("name", ["missing", "not-midi", "empty", "one-bar", "drums-only"])
def test_bad_file_is_a_clear_error(tmp_path: Path, name: str) -> None:
    path, message = _bad_files(tmp_path)[name]
    with pytest.raises(QbdiError, match=message) as caught:
        run(parse(path, "--out", tmp_path / "out"))
    assert str(path) in str(caught.value)
    assert not (tmp_path / "out" / "report.json").exists()


def test_bad_files_exit_2_without_traceback(tmp_path: Path, queries_dir: Path) -> None:
    """Every file is checked before any work: the first bad one stops the run."""
    for name, (path, message) in _bad_files(tmp_path).items():
        result = analyze_cli(queries_dir / SHORTER, path, "--out", tmp_path / "out")
        assert result.returncode == 2, name
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(f"qbdi analyze: error: {path}: "), result.stderr
        assert message in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bits", ["abc", "-3", ",", "full,1.5"])
def test_bad_bits_exit_2(tmp_path: Path, queries_dir: Path, bits: str) -> None:
    with pytest.raises(QbdiError, match="--bits"):
        run(parse(queries_dir / SHORTER, "--out", tmp_path, "--bits", bits))


@pytest.mark.parametrize("option", [("--min-count", "1"), ("--min-length", "0"),
                                    ("--thresholds", "1"), ("--threshold", "1.5"),
                                    ("--seed", "-1")])
def test_bad_values_are_refused_before_any_work(tmp_path, queries_dir, option) -> None:
    with pytest.raises(QbdiError, match=option[0]):
        run(parse(queries_dir / SHORTER, "--out", tmp_path / "out", *option))
    assert not (tmp_path / "out").exists()


def test_bad_bits_through_the_command(tmp_path: Path, queries_dir: Path) -> None:
    result = analyze_cli(queries_dir / SHORTER, "--out", tmp_path, "--bits", "lots")
    assert result.returncode == 2
    assert result.stderr.startswith("qbdi analyze: error: --bits: "), result.stderr
    assert "'lots'" in result.stderr and "Traceback" not in result.stderr


def test_an_out_folder_that_cannot_be_made_is_refused_before_any_work(tmp_path, queries_dir):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder would go")
    result = analyze_cli(queries_dir / SHORTER, "--out", blocker / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"qbdi analyze: error: --out {blocker / 'out'}: ")
