"""Our query files (tests/data/queries): what tests/data/make_queries.py writes, byte for
byte, small, and what the tests take them to be."""

from __future__ import annotations

import subprocess
import sys

import mido
from query_data import CHORDS_MELODY, DYNAMICS_PEDAL, MARCH, POP, QUERIES, SIX_EIGHT

from qbdi.midifile import read_midi

GENERATOR = QUERIES.parent / "make_queries.py"
# name -> (MIDI type, tracks, metres, 16-step frames)
EXPECTED = {
    CHORDS_MELODY: (1, 2, {"4/4"}, 20),
    MARCH: (1, 2, {"2/4"}, 10),
    SIX_EIGHT: (1, 2, {"6/8", "3/4"}, 12),
    DYNAMICS_PEDAL: (1, 3, {"4/4"}, 40),
    POP: (0, 1, {"4/4"}, 16),
}


def test_the_committed_files_are_what_the_generator_writes(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXPECTED)
    assert sorted(p.name for p in QUERIES.iterdir()) == sorted(EXPECTED)
    for name in EXPECTED:
        written = (tmp_path / name).read_bytes()
        assert written == (QUERIES / name).read_bytes(), (
            f"{name} differs from what make_queries.py writes: rerun it and commit")
        assert len(written) < 5_000


def test_each_file_has_its_metre_length_and_tracks() -> None:
    for name, (midi_type, n_tracks, metres, frames) in EXPECTED.items():
        midi = mido.MidiFile(QUERIES / name)
        assert (midi.type, len(midi.tracks)) == (midi_type, n_tracks), name
        score = read_midi(QUERIES / name)
        assert (score.metres(), score.n_bars) == (metres, frames), name


def test_the_dynamics_file_pedals_every_bar() -> None:
    pedal = [m for track in mido.MidiFile(QUERIES / DYNAMICS_PEDAL).tracks for m in track
             if m.type == "control_change" and m.control == 64]
    assert len(pedal) == 2 * 40 + 1  # up and down at each barline, up at the end
    assert {m.value for m in pedal} == {0, 127}
