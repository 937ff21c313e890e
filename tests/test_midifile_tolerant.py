"""Reading real-world MIDI files: damaged ones are read as far as they can be, and what was
skipped is said, naming the file, the track and the event (issue 12).

The files are ours (``tests/data``, made by ``tests/smf_bytes.py``): one short piece, clean
and with one kind of damage each.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from smf_bytes import (
    CHORDS,
    DATA,
    END,
    FILES,
    MELODY,
    chunk,
    event,
    header,
    many_bad_events,
    meta,
    track,
)
from smf_bytes import conductor as conductor_events
from smf_bytes import left as left_events
from smf_bytes import right as right_events

from qbdi.bars import Note
from qbdi.errors import MidiFileError
from qbdi.midifile import MAX_BARS, read_midi
from qbdi.smf_problems import MAX_DETAILED

CLEAN = DATA / "two-hands.mid"
RIGHT = [Note(4 * i, pitch, 4 * i + 4, 90) for i, pitch in enumerate(MELODY)]
LEFT = [Note(16 * bar, pitch, 16 * bar + 16, 70) for bar, chord in enumerate(CHORDS)
        for pitch in chord]
PIECE = sorted(RIGHT + LEFT)


def _file(tmp_path: Path, data: bytes, name: str = "damaged.mid") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_the_committed_files_are_the_ones_the_script_makes():
    committed = {p.name: p.read_bytes() for p in DATA.glob("*.mid")}
    assert committed == FILES, "run python tests/smf_bytes.py and commit tests/data"


def test_the_clean_piece_reads_exactly_and_without_a_warning():
    score = read_midi(CLEAN)
    assert score.notes == PIECE
    assert score.tempos == [(0, 600_000)] and score.metres() == {"4/4"}
    assert score.warnings == [] and score.unmatched_note_offs == 0


def test_a_key_of_eight_flats_is_skipped_with_a_warning_naming_file_track_and_event():
    path = DATA / "key-of-eight-flats.mid"
    score = read_midi(path)
    assert score.notes == PIECE and score.tempos == [(0, 600_000)]
    assert score.warnings == [f"{path}: track 1 'two hands', tick 0: key signature with 8 "
                              "flats (FF 59 02 F8 00): skipped"]


def test_meta_events_of_impossible_lengths_are_skipped_and_named():
    path = DATA / "bad-meta-lengths.mid"
    score = read_midi(path)
    assert score.notes == PIECE
    assert score.tempos == [(0, 500_000)], "the 2-byte tempo is skipped: 120 BPM"
    assert score.time_signatures == []
    where = f"{path}: track 1 'two hands', tick 0:"
    assert score.warnings == [
        f"{where} tempo event of 2 bytes, not 3 (FF 51 02 09 27): skipped",
        f"{where} time signature event of 3 bytes, not 4 (FF 58 03 04 02 18): skipped",
        f"{where} key signature in mode 5 (0 major, 1 minor) (FF 59 02 00 05): skipped",
    ]


def test_an_undefined_status_byte_inside_a_track_is_skipped_and_the_rest_read():
    path = DATA / "undefined-status.mid"
    score = read_midi(path)
    assert score.notes == PIECE, "running status goes on after the skipped bytes"
    assert score.warnings == [
        f"{path}: track 3 'right', tick 762: undefined status byte 0xF4: skipped",
        f"{path}: track 3 'right', tick 1914: system message 0xF3 (no place in a file): "
        "skipped",
    ]


def test_data_bytes_with_no_status_are_skipped_and_running_status_crosses_meta_events():
    path = DATA / "running-status.mid"
    score = read_midi(path)
    assert score.notes == PIECE
    assert score.warnings == [f"{path}: track 3 'right', tick 0: 2 data bytes with no status "
                              "before them: skipped"]


def test_a_file_cut_inside_its_last_track_keeps_the_notes_before_the_damage():
    path = DATA / "cut-in-last-track.mid"
    score = read_midi(path)
    sounding_at_the_cut = Note(76, MELODY[19], 77, 90)  # ends at the last event: one step
    assert score.notes == sorted(LEFT + RIGHT[:19] + [sounding_at_the_cut])
    assert score.warnings == [
        f"{path}: track 3 'right': its chunk announces 206 bytes, more than the 129 left in "
        "the file",
        f"{path}: track 3 'right', tick 1914: an event is cut short at the end of the track: "
        "read up to there",
    ]


def test_a_track_chunk_longer_than_the_file_is_read_to_its_end_and_the_next_track_found():
    path = DATA / "chunk-past-the-end.mid"
    score = read_midi(path)
    assert score.notes == PIECE
    assert score.warnings == [f"{path}: track 2 'left': its chunk announces 4,294,967,040 "
                              "bytes, more than the 374 left in the file"]


def test_smpte_time_is_converted_to_seconds_and_quantised_at_the_tempo_map():
    path = DATA / "smpte.mid"
    score = read_midi(path)
    # a quarter note a beat: 600 ms at 100 BPM, then 400 ms at 150 BPM, each held half
    assert [(n.start_step, n.end_step) for n in score.notes] == \
        [(4 * i, 4 * i + 2) for i in range(16)]
    assert score.tempos == [(0, 600_000), (32, 400_000)]
    assert score.warnings == [f"{path}: SMPTE time (25 frames a second, 40 ticks a frame): "
                              "times converted to seconds, then quantised at its tempo map, "
                              "from 100 BPM"]


def test_smpte_time_without_a_tempo_is_quantised_at_120_bpm(tmp_path):
    # 30 frames a second of 10 ticks: 300 ticks a second, a quarter note at 120 BPM is 150
    data = header(1, fmt=0, division=(256 - 30) << 8 | 10) + track(
        event(0, 0x90, 60, 80), event(150, 0x80, 60, 0), event(150, 0x90, 62, 80),
        event(75, 0x80, 62, 0))
    score = read_midi(_file(tmp_path, data))
    assert score.notes == [Note(0, 60, 4, 80), Note(8, 62, 10, 80)]
    assert score.tempos == [(0, 500_000)]
    assert "at 120 BPM (it has no tempo event)" in score.warnings[0]


def test_ten_thousand_bad_events_give_a_handful_of_lines_and_a_count(tmp_path):
    path = _file(tmp_path, many_bad_events(10_000))
    score = read_midi(path)
    assert score.notes == RIGHT
    assert len(score.warnings) == MAX_DETAILED + 1
    assert score.warnings[-1] == (f"{path}: 9,995 more problems not shown (10,000 in all: "
                                  "10,000 undefined status bytes)")


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "not a readable MIDI file (it does not start with an MThd header)"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "not a readable MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00", "not a readable MIDI file (cut short in its header: 9 "
                                    "bytes)"),
    (header(1), "contains no notes"),
    (header(1) + track(meta(0, 0x51, b"\x07\xa1\x20")), "contains no notes"),
    (header(1) + track(event(0, 0x99, 36, 100), event(10, 0x89, 36, 0)),
     "contains no notes but 1 drum notes on channel 10, which are ignored"),
    (header(1) + track(meta(0, 0x59, b"\x09\x00"))[:-3],
     "contains no notes it could read (3 problems while reading; first: track 1: its chunk "
     "announces 10 bytes, more than the 7 left in the file)"),
])
def test_what_has_no_notes_to_read_is_refused_naming_the_file_and_why(tmp_path, data, reason):
    with pytest.raises(MidiFileError, match="bad.mid: " + _escaped(reason)):
        read_midi(_file(tmp_path, data, "bad.mid"))


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


def test_format_2_sequences_are_read_one_after_another(tmp_path):
    one = track(event(0, 0x90, 60, 80), event(96, 0x80, 60, 0))
    two = track(event(0, 0x90, 64, 80), event(96, 0x80, 64, 0))
    score = read_midi(_file(tmp_path, header(2, fmt=2) + one + two))
    assert score.notes == [Note(0, 60, 4, 80), Note(4, 64, 8, 80)]
    assert "format 2 (independent sequences): its 2 sequences are read one after another" \
        in score.warnings[0]


def test_chunks_of_other_kinds_are_skipped_and_garbage_between_tracks_named(tmp_path):
    def notes(pitch: int) -> bytes:
        return track(event(0, 0x90, pitch, 80), event(96, 0x80, pitch, 0))

    data = header(2) + chunk(b"XFIH", b"yamaha") + notes(60) + b"\x00\x13\x37" + notes(64)
    score = read_midi(_file(tmp_path, data))
    assert score.notes == [Note(0, 60, 4, 80), Note(0, 64, 4, 80)]
    assert score.warnings == [f"{tmp_path / 'damaged.mid'}: 3 bytes before track 2 are not a "
                              "chunk: skipped"]


def test_a_riff_midi_file_is_opened(tmp_path):
    smf = FILES["two-hands.mid"]
    data = b"RIFF" + (len(smf) + 12).to_bytes(4, "little") + b"RMIDdata" + \
        len(smf).to_bytes(4, "little") + smf
    assert read_midi(_file(tmp_path, data)).notes == PIECE


def test_a_wrong_header_length_and_track_count_are_named_and_read_past(tmp_path):
    smf = bytearray(FILES["two-hands.mid"])
    smf[4:8] = (9).to_bytes(4, "big")  # header length 9, tracks still after 6
    smf[10:12] = (5).to_bytes(2, "big")  # 5 tracks announced, 3 there
    score = read_midi(_file(tmp_path, bytes(smf)))
    assert score.notes == PIECE
    assert [w.split(": ", 1)[1] for w in score.warnings] == [
        "header chunk of 9 bytes, not 6: tracks looked for after 6",
        "the header announces 5 tracks; the file holds 3"]


def test_data_bytes_above_127_are_clipped_and_said(tmp_path):
    data = header(1) + track(event(0, 0x90, 60, 0xC8), event(96, 0x80, 60, 0))
    score = read_midi(_file(tmp_path, data))
    assert score.notes == [Note(0, 60, 4, 127)]
    assert score.warnings[0].endswith("track 1, tick 0: data byte 0xC8 above 127 in a 0x90 "
                                      "message: clipped to 127")


def test_a_delta_time_longer_than_4_bytes_ends_the_track_keeping_what_came_before(tmp_path):
    data = header(1) + track(event(0, 0x90, 60, 80), event(96, 0x80, 60, 0),
                             b"\x81\x82\x83\x84\x05", event(0, 0x90, 62, 80))
    score = read_midi(_file(tmp_path, data))
    assert score.notes == [Note(0, 60, 4, 80)]
    assert score.warnings[0].endswith("track 1, tick 96: a variable-length number longer than "
                                      "4 bytes: the rest of the track is skipped")


def test_notes_past_the_bar_limit_are_dropped_with_a_warning(tmp_path):
    bar_ticks = 4 * 96
    data = header(1) + track(event(0, 0x90, 60, 80), event(bar_ticks * (MAX_BARS + 5), 0x90,
                                                            62, 80))
    score = read_midi(_file(tmp_path, data))
    assert score.notes == [Note(0, 60, MAX_BARS * 16, 80)]
    assert score.n_bars == MAX_BARS
    assert score.warnings[0].endswith(f"1 notes after bar {MAX_BARS:,} dropped (a damaged "
                                      "delta time?)")


def test_a_track_ending_without_its_end_of_track_event_is_read_silently(tmp_path):
    body = event(0, 0x90, 60, 80) + event(96, 0x80, 60, 0)
    score = read_midi(_file(tmp_path, header(1) + chunk(b"MTrk", body)))
    assert score.notes == [Note(0, 60, 4, 80)] and score.warnings == []
    assert END not in body


def test_render_reads_a_key_of_eight_flats_with_a_warning_not_a_traceback(tmp_path,
                                                                        tiny_checkpoint):
    """The crash of issue 12, through the command a user types."""
    path = DATA / "key-of-eight-flats.mid"
    result = subprocess.run(
        [sys.executable, "-m", "qbdi.cli", "render", str(path), "-o", str(tmp_path / "a.mid"),
         "--model", str(tiny_checkpoint)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (f"qbdi render: warning: {path}: track 1 'two hands', tick 0: key "
                             "signature with 8 flats (FF 59 02 F8 00): skipped\n")
    assert read_midi(tmp_path / "a.mid").n_bars == 8


def test_a_macbinary_header_before_the_midi_header_is_skipped(tmp_path):
    score = read_midi(_file(tmp_path, bytes(128) + FILES["two-hands.mid"]))
    assert score.notes == PIECE
    assert [w.split(": ", 1)[1] for w in score.warnings] == [
        "128 bytes before the MThd header: skipped"]


def test_chunk_names_a_byte_off_are_read_as_the_header_and_a_track(tmp_path):
    data = bytearray(FILES["two-hands.mid"])
    data[0:4] = b"MThe"
    right_at = data.rindex(b"MTrk")
    data[right_at:right_at + 4] = b"MTrj"
    score = read_midi(_file(tmp_path, bytes(data)))
    assert score.notes == PIECE
    assert [w.split(": ", 1)[1] for w in score.warnings] == [
        "header 'MThe' read as MThd (a damaged one?)",
        "track 3 'right': chunk 'MTrj' read as a track (a damaged MTrk?)"]


@pytest.mark.parametrize("length", [0, 10], ids=["left-at-0", "cut-short"])
def test_a_wrong_track_length_inside_the_file_is_read_to_the_end_of_track_event(tmp_path,
                                                                               length):
    """Some writers stream a track and never fill in its length."""
    score = read_midi(_file(tmp_path, header(3) + track(*conductor_events())
                            + track(*left_events(), length=length) + track(*right_events())))
    assert score.notes == PIECE
    left_bytes = len(track(*left_events())) - 8
    assert [w.split(": ", 1)[1] for w in score.warnings] == [
        f"track 2 'left': its chunk announces {length} bytes; its events take {left_bytes}"]
