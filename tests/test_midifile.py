from pathlib import Path

import mido
import pytest
from query_data import CHORDS_MELODY, DYNAMICS_PEDAL, MARCH, SIX_EIGHT

from qbdi.bars import Note, notes_to_bars
from qbdi.errors import MetreError, MidiFileError
from qbdi.midifile import TimeSignature, Track, read_midi, write_midi


def _save(path: Path, tracks: list[list[mido.Message]], ticks_per_beat: int = 96) -> Path:
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    midi.save(path)
    return path


def test_velocity_zero_note_on_is_a_note_off(tmp_path):
    path = _save(tmp_path / "v0.mid", [[
        mido.Message("note_on", note=60, velocity=70, time=0),
        mido.Message("note_on", note=60, velocity=0, time=48),  # 96 ticks a beat: 2 steps
    ]])
    assert read_midi(path).notes == [Note(0, 60, 2, 70)]


def test_drums_are_ignored_by_default_and_counted(tmp_path):
    path = _save(tmp_path / "drums.mid", [[
        mido.Message("note_on", channel=9, note=36, velocity=100, time=0),
        mido.Message("note_off", channel=9, note=36, time=24),
        mido.Message("note_on", channel=0, note=64, velocity=100, time=0),
        mido.Message("note_off", channel=0, note=64, time=24),
    ]])
    score = read_midi(path)
    assert [n.pitch for n in score.notes] == [64] and score.dropped_drum_notes == 1
    assert sorted(n.pitch for n in read_midi(path, include_drums=True).notes) == [36, 64]


def test_tracks_are_merged_and_tempo_changes_kept(tmp_path):
    path = _save(tmp_path / "multi.mid", [
        [mido.MetaMessage("set_tempo", tempo=400_000, time=0),
         mido.MetaMessage("set_tempo", tempo=600_000, time=384)],
        [mido.Message("note_on", note=60, velocity=80, time=0),
         mido.Message("note_off", note=60, time=96)],
        [mido.Message("note_on", note=67, velocity=80, time=384),
         mido.Message("note_off", note=67, time=96)],
    ])
    score = read_midi(path)
    assert score.notes == [Note(0, 60, 4), Note(16, 67, 20)]
    assert score.tempos == [(0, 400_000), (16, 600_000)]


def test_note_off_times_quantise_to_the_nearest_sixteenth(tmp_path):
    path = _save(tmp_path / "q.mid", [[
        mido.Message("note_on", note=60, velocity=80, time=25),   # 1.04 steps -> 1
        mido.Message("note_off", note=60, time=40),               # 2.7 steps -> 3
    ]])
    assert read_midi(path).notes == [Note(1, 60, 3)]


def test_write_then_read_gives_the_same_notes(tmp_path):
    notes = [Note(0, 60, 4, 90), Note(4, 60, 8, 50), Note(2, 64, 30, 70)]
    path = tmp_path / "out.mid"
    write_midi(path, [Track(notes)], tempos=[(0, 500_000), (16, 300_000)],
               time_signatures=[TimeSignature(0, 4, 4)])
    score = read_midi(path)
    assert score.notes == sorted(notes)
    assert score.tempos == [(0, 500_000), (16, 300_000)]


@pytest.mark.parametrize("content", [b"", b"not a midi file at all", b"MThd\x00\x00\x00\x06\x00"])
def test_garbage_and_truncated_files_give_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(MidiFileError, match="bad.mid"):
        read_midi(path)


def test_a_real_file_cut_in_half_is_read_up_to_the_cut_and_says_so(tmp_path, query_files):
    data = query_files[0].read_bytes()
    path = tmp_path / "cut.mid"
    path.write_bytes(data[: len(data) // 2])
    score = read_midi(path)
    assert score.notes and score.warnings and score.warnings[0].startswith(f"{path}: track ")
    whole = {(n.start_step, n.pitch) for n in read_midi(query_files[0]).notes}
    assert {(n.start_step, n.pitch) for n in score.notes} <= whole


def test_missing_file_names_it(tmp_path):
    with pytest.raises(MidiFileError, match="no such file"):
        read_midi(tmp_path / "missing.mid")


def test_file_without_notes_is_refused(tmp_path):
    path = _save(tmp_path / "empty.mid", [[mido.MetaMessage("set_tempo", tempo=500000)]])
    with pytest.raises(MidiFileError, match="no notes"):
        read_midi(path)


def test_real_queries_read(query_files):
    assert len(query_files) == 5
    for path in query_files:
        score = read_midi(path)
        bars = notes_to_bars(score.notes)
        assert bars.shape[0] == score.n_bars > 5
        assert bars.any()
        assert score.unmatched_note_offs == 0 and score.dropped_drum_notes == 0


def test_velocities_pedal_and_tempo_map_of_a_multi_track_file(queries_dir):
    """Velocities come through as played; the sustain pedal does not lengthen notes (the
    codec has no pedal); a conductor track's tempo map is kept."""
    score = read_midi(queries_dir / DYNAMICS_PEDAL)
    velocities = {n.velocity for n in score.notes}
    assert min(velocities) == 20 and max(velocities) == 127 and len(velocities) > 50
    assert [tempo for _, tempo in score.tempos] == [mido.bpm2tempo(bpm)
                                                   for bpm in (72, 76, 80, 84, 70)]
    assert max(n.duration_steps for n in score.notes) == 16  # the melody's whole notes


def test_six_eight_is_refused_in_strict_and_cut_into_frames_otherwise(queries_dir):
    score = read_midi(queries_dir / SIX_EIGHT)
    assert score.metres() == {"6/8", "3/4"}
    with pytest.raises(MetreError, match="6/8"):
        score.check_metre("strict")
    score.check_metre("frames")
    six_eight = next(t for t in score.time_signatures if (t.numerator, t.denominator) == (6, 8))
    assert six_eight.bar_steps == 12  # so 4 bars of 6/8 fill 3 frames of 16 steps


def test_four_four_and_two_four_queries_pass_strict(queries_dir):
    read_midi(queries_dir / CHORDS_MELODY).check_metre("strict")
    read_midi(queries_dir / MARCH).check_metre("strict")  # two bars of 2/4 fill a frame
