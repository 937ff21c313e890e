"""Fuzzing MIDI files at the byte level: every reader reads or refuses, never crashes.

Mutations of our own small files (``tests/data``, clean and damaged): bits flipped, bytes
overwritten, inserted, deleted or repeated, the file cut short, several at once. For each:

* :func:`read_midi` returns a score whose notes are on the grid within the bar limit, with
  a bounded number of warning lines, or raises :class:`MidiFileError` naming the file;
* ``qbdi render``, ``qbdi score`` and ``qbdi analyze`` exit 0 or 2 and never raise (a raise
  out of ``main`` is the traceback a user would see); one process per command on a few
  damaged files checks the same from outside.

CI runs a fixed sample (``derandomize``); ``--run-slow`` runs thousands of random ones.
"""

from __future__ import annotations

import contextlib
import io
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smf_bytes import DATA, FILES

from qbdi.cli import main
from qbdi.errors import MidiFileError
from qbdi.midifile import MAX_STEPS, read_midi
from qbdi.smf_problems import MAX_DETAILED

SEEDS = sorted(FILES)
MAX_WARNING_LINES = 2 + MAX_DETAILED + 1 + 1  # timing notes, problems and their count, limit
CI = settings(max_examples=400, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
CI_COMMANDS = settings(CI, max_examples=25)
SLOW = settings(max_examples=20_000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """One of our files with one to four byte-level mutations, anywhere in it (positions
    and bytes from a seeded generator: hypothesis's own draws favour zero, the header)."""
    data = bytearray(FILES[draw(st.sampled_from(SEEDS))])
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "repeat", "cut"]))
        at = rng.randrange(max(len(data), 1))
        if kind == "flip" and data:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == "overwrite":
            data[at:at + 1] = bytes([rng.randrange(256)])
        elif kind == "insert":
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif kind == "delete":
            del data[at:at + rng.randint(1, 16)]
        elif kind == "repeat":
            data[at:at] = data[at:at + rng.randint(1, 64)]
        else:
            del data[at:]
    return bytes(data)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory(prefix="qbdi-fuzz-midi-") as name:
        yield Path(name)


def _check_read(folder: Path, data: bytes) -> None:
    path = folder / "mutant.mid"
    path.write_bytes(data)
    try:
        score = read_midi(path)
    except MidiFileError as err:
        assert str(err).startswith(f"{path}: "), err
        return
    assert score.notes, "a score is returned only with notes"
    for note in score.notes:
        assert 0 <= note.start_step < note.end_step <= MAX_STEPS, note
        assert 0 <= note.pitch <= 127 and 1 <= note.velocity <= 127, note
    assert score.tempos[0][0] == 0 and all(tempo > 0 for _, tempo in score.tempos)
    assert len(score.warnings) <= MAX_WARNING_LINES, score.warnings
    assert all(line.startswith(f"{path}: ") for line in score.warnings)


@CI
@given(data=mutated())
def test_any_mutation_is_read_or_refused_naming_the_file(folder, data):
    _check_read(folder, data)


@pytest.mark.slow
@SLOW
@given(data=mutated())
def test_many_random_mutations_are_read_or_refused(folder, data):
    _check_read(folder, data)


def _command_line(command: str, path: Path, checkpoint: Path, out: Path) -> list[str]:
    model = ["--model", str(checkpoint)]
    return {
        # a high threshold: the tiny test model plays nearly every note at the default
        "render": ["render", str(path), "-o", str(out / "r.mid"), "--threshold", "0.99",
                   *model],
        "score": ["score", str(path), "--bits", "0,full", "--seeds", "1", *model],
        "analyze": ["analyze", str(path), "--out", str(out / "analysis"), "--thresholds",
                    "10", "--frames-per-bar", "1"],
    }[command]


def _run_in_process(argv: list[str]) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        code = main(argv)  # anything but QbdiError raises here: the traceback a user sees
    return code, stderr.getvalue()


@pytest.mark.parametrize("command", ["render", "score", "analyze"])
def test_every_reader_command_exits_0_or_2_on_mutated_files(command, folder, tiny_checkpoint):
    @CI_COMMANDS
    @given(data=mutated())
    def run(data: bytes) -> None:
        path = folder / f"{command}.mid"
        path.write_bytes(data)
        code, stderr = _run_in_process(_command_line(command, path, tiny_checkpoint, folder))
        assert code in (0, 2), stderr
        if code == 2:  # after any warnings, one error line
            assert stderr.splitlines()[-1].startswith(f"qbdi {command}: error: "), stderr

    run()


@pytest.mark.parametrize("command", ["render", "score", "analyze"])
def test_the_commands_read_damaged_files_without_a_traceback(command, tmp_path,
                                                             tiny_checkpoint):
    damaged = [DATA / "undefined-status.mid", DATA / "cut-in-last-track.mid"]
    cut_header = tmp_path / "cut-header.mid"
    cut_header.write_bytes(FILES["two-hands.mid"][:11])
    for path in [*damaged, cut_header]:
        result = subprocess.run(
            [sys.executable, "-m", "qbdi.cli",
             *_command_line(command, path, tiny_checkpoint, tmp_path)],
            capture_output=True, text=True, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        expected = 2 if path == cut_header else 0
        assert result.returncode == expected, result.stderr
        assert f"qbdi {command}: {'error' if expected else 'warning'}: {path}: " in \
            result.stderr
