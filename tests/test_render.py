import subprocess
import sys

import mido
import pytest
from query_data import CHORDS_MELODY, SIX_EIGHT

from qbdi.bars import STEPS_PER_BAR
from qbdi.midifile import read_midi

QUERY = CHORDS_MELODY  # 20 bars of 4/4 with a ritardando: three tempos


def qbdi(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "qbdi.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_render_follows_the_query_bars_and_tempo(tmp_path, queries_dir, tiny_checkpoint):
    out = tmp_path / "out.mid"
    result = qbdi("render", queries_dir / QUERY, "-o", out, "--bits", "32", "--model",
                  tiny_checkpoint, "--threshold", "0.2")
    assert result.returncode == 0, result.stderr
    query, rendered = read_midi(queries_dir / QUERY), read_midi(out)
    assert rendered.notes, "the tiny model at threshold 0.2 plays"
    assert rendered.n_steps <= query.n_bars * STEPS_PER_BAR
    assert len(query.tempos) == 3 and rendered.tempos == query.tempos


def test_with_query_adds_a_second_track_on_channel_2(tmp_path, queries_dir, tiny_checkpoint):
    out = tmp_path / "both.mid"
    assert qbdi("render", queries_dir / QUERY, "-o", out, "--model", tiny_checkpoint,
                "--with-query", "--threshold", "0.2").returncode == 0
    channels = {m.channel for track in mido.MidiFile(out).tracks for m in track
                if m.type == "note_on"}
    assert channels == {0, 1}
    query_notes = read_midi(queries_dir / QUERY).notes
    assert len([n for n in read_midi(out).notes]) >= len(query_notes)


def test_same_seed_gives_an_identical_file(tmp_path, queries_dir, tiny_checkpoint):
    paths = [tmp_path / f"{name}.mid" for name in ("a", "b", "c")]
    for path, seed in zip(paths, (1, 1, 2), strict=True):
        assert qbdi("render", queries_dir / QUERY, "-o", path, "--model", tiny_checkpoint,
                    "--bits", "16", "--seed", seed, "--sampling").returncode == 0
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()


def test_sweep_writes_one_file_per_budget(tmp_path, queries_dir, tiny_checkpoint):
    out = tmp_path / "sweep.mid"
    result = qbdi("render", queries_dir / QUERY, "-o", out, "--model", tiny_checkpoint,
                  "--sweep", "0,64,full")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sweep.bits-0.mid", "sweep.bits-64.mid", "sweep.bits-full.mid"]


def test_six_eight_renders_with_a_warning_and_strict_refuses(tmp_path, queries_dir,
                                                             tiny_checkpoint):
    query = queries_dir / SIX_EIGHT
    result = qbdi("render", query, "-o", tmp_path / "x.mid", "--model", tiny_checkpoint)
    assert result.returncode == 0 and "6/8" in result.stderr and "frames" in result.stderr
    strict = qbdi("render", query, "-o", tmp_path / "y.mid", "--model", tiny_checkpoint,
                  "--metre", "strict")
    assert strict.returncode == 2 and "6/8" in strict.stderr


@pytest.mark.parametrize(("bits", "message"), [("-3", ">= 0"), ("many", "whole number"),
                                               ("1.5", "whole number")])
def test_bad_bits_are_refused(tmp_path, queries_dir, bits, message):
    result = qbdi("render", queries_dir / QUERY, "-o", tmp_path / "x.mid", "--bits", bits)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "x.mid").exists()


def test_missing_and_non_midi_inputs_are_refused(tmp_path):
    missing = qbdi("render", tmp_path / "none.mid", "-o", tmp_path / "x.mid")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    readme = tmp_path / "README.md"
    readme.write_text("# Not a MIDI file\n")
    text = qbdi("render", readme, "-o", tmp_path / "x.mid")
    assert text.returncode == 2 and "not a readable MIDI file" in text.stderr


def test_missing_model_is_named(tmp_path, queries_dir):
    result = qbdi("render", queries_dir / QUERY, "-o", tmp_path / "x.mid", "--model",
                  tmp_path / "absent.safetensors")
    assert result.returncode == 2 and "absent.safetensors" in result.stderr


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, queries_dir):
    absent = qbdi("render", queries_dir / QUERY, "-o", tmp_path / "no" / "x.mid")
    assert absent.returncode == 2, absent.stderr
    assert "--out" in absent.stderr and "does not exist" in absent.stderr
    assert "Traceback" not in absent.stderr
    folder = qbdi("render", queries_dir / QUERY, "-o", tmp_path)
    assert folder.returncode == 2 and "is a folder" in folder.stderr
    plot = qbdi("score", queries_dir / QUERY, "--seeds", "1", "--bits", "0",
                "--plot", tmp_path / "no" / "p.png")
    assert plot.returncode == 2 and "--plot" in plot.stderr and "Traceback" not in plot.stderr


def test_a_long_file_shows_a_bar_progress_bar_on_a_terminal(tmp_path, tiny_checkpoint):
    """stderr on a pseudo-terminal, as in a shell: a 2100-bar file gets a progress bar."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    from qbdi.bars import Note
    from qbdi.midifile import Track, write_midi

    long_query = tmp_path / "long.mid"
    write_midi(long_query, [Track([Note(16 * bar, 60 + bar % 12, 16 * bar + 4, 90)
                                   for bar in range(2100)])])
    leader, follower = pty.openpty()
    # A terminal of 24 x 100 (a fresh pty is 0 x 0, where tqdm draws nothing).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "qbdi.cli", "render", str(long_query), "-o",
             str(tmp_path / "out.mid"), "--model", str(tiny_checkpoint), "--stats", "window",
             "--threshold", "0.95"],
            stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65_536)
            except OSError:  # the pty is drained and closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert result.returncode == 0
    assert "2100 bars" in result.stdout
    assert b"/2100 [" in shown and b"bar/s" in shown, shown[-300:]
