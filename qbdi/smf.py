"""A tolerant reader of standard MIDI files: the chunks, and the events qbdi reads.

Written from the Standard MIDI File 1.0 specification. It reads what can be read, the way
DAWs do, and keeps a record of what it skipped or changed (:class:`Problems`):

* the header chunk ``MThd`` comes first (a RIFF ``RMID`` wrapper is opened, up to 128
  bytes before it are skipped); formats 0 and 1 are read as written, format 2 (independent
  sequences) one sequence after another, an unknown format as format 1;
* every ``MTrk`` chunk (or one whose name is a byte off) is a track, whatever number of
  tracks the header announces; other chunks are skipped as the specification asks; bytes
  that are no chunk at all are skipped up to the next ``MTrk``;
* a track's chunk length is trusted where another chunk or the end of the file follows it;
  otherwise (a length past the end of the file, or cut short) the track is read to its
  end-of-track event. A track ends there, at the end of its chunk, or where an event is cut
  short (the notes before the damage are kept);
* running status continues across meta and system exclusive events (some writers rely on
  it); a data byte with no status before it, a status byte that has no place in a file
  (system common, real-time, undefined), a meta event of a known type with an impossible
  length or value (a key of 8 flats, a tempo of 0) are skipped; a data byte above 127 in a
  channel message is clipped to 127;
* SMPTE time (frames a second and ticks a frame) is converted to seconds, then to beats at
  the file's tempo map (120 BPM where it has none), so the notes land on the grid of that
  tempo like those of any other file.

Guarantee: :func:`parse_smf` returns for any bytes that start with a MIDI header, and raises
:class:`SmfError` (with the reason) for any other. It keeps only what :mod:`qbdi.midifile`
needs: notes, tempo changes, time signatures, track names and markers. Pure: no file I/O.
"""

from __future__ import annotations

import bisect
import struct

from qbdi.smf_problems import Problems
from qbdi.smf_track import read_track
from qbdi.smf_types import Smf, SmfTrack

SMPTE_TICKS_PER_BEAT = 960  # the resolution SMPTE times are converted to
DEFAULT_TICKS_PER_BEAT = 480  # read a file with an unusable time division as this
DEFAULT_TEMPO_US = 500_000  # 120 BPM, the MIDI default
MAX_BYTES_BEFORE_HEADER = 128  # a MacBinary header; a RIFF wrapper is opened whatever its size

SMPTE_FRAMES_PER_S = {24: 24.0, 25: 25.0, 29: 30_000 / 1001, 30: 30.0}  # 29: 30 drop-frame


class SmfError(Exception):
    """Bytes that are not a MIDI file at all (no header to start from)."""


def parse_smf(data: bytes) -> Smf:
    """Read ``data`` as a standard MIDI file; :class:`SmfError` only when it has no header."""
    problems = Problems()
    start = data.find(b"MThd", 0, MAX_BYTES_BEFORE_HEADER + 4)
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":  # RIFF MIDI: the SMF is inside
        start = data.find(b"MThd", 12)
    elif start > 0:  # e.g. a MacBinary header of 128 bytes
        problems.add("bad chunks", f"{start:,} bytes before the MThd header: skipped")
    elif start < 0 and _one_byte_off(data[:4], b"MThd") and data[4:8] == b"\0\0\0\x06":
        problems.add("bad chunks", f"header {data[:4].decode('latin-1')!r} read as MThd (a "
                                   "damaged one?)")
        start = 0
    if start < 0:
        raise SmfError("not a readable MIDI file (it does not start with an MThd header)")
    data = data[start:]
    if len(data) < 14:
        raise SmfError(f"not a readable MIDI file (cut short in its header: {len(data)} "
                       "bytes)")
    header_length, fmt, n_tracks, division = struct.unpack(">LHHH", data[4:14])
    pos = 8 + header_length
    if header_length != 6 and not _starts_chunk(data, pos):
        problems.add("bad chunks", f"header chunk of {header_length:,} bytes, not 6: tracks "
                                   "looked for after 6")
        pos = 14
    if fmt > 2:
        problems.add("bad chunks", f"unknown format {fmt}: read as format 1")
    tracks = _read_chunks(data, pos, problems)
    if len(tracks) != n_tracks:
        problems.add("bad chunks", f"the header announces {n_tracks} tracks; the file holds "
                                   f"{len(tracks)}")
    smf = Smf(fmt, DEFAULT_TICKS_PER_BEAT, tracks, problems)
    _apply_division(smf, division)
    if fmt == 2 and len(tracks) > 1:
        _one_after_another(tracks)
        smf.notes_on_timing.append(f"format 2 (independent sequences): its {len(tracks)} "
                                   "sequences are read one after another")
    return smf


def _one_byte_off(chunk_id: bytes, name: bytes) -> bool:
    return len(chunk_id) == 4 and sum(a != b for a, b in zip(chunk_id, name, strict=True)) <= 1


def _is_track_id(chunk_id: bytes) -> bool:
    """``MTrk``, or a damaged one: one byte off (no other chunk type is that close)."""
    return _one_byte_off(chunk_id, b"MTrk")


def _starts_chunk(data: bytes, pos: int) -> bool:
    """Whether a chunk (a track, or another kind whose length fits the file) starts at
    ``pos``."""
    if pos + 8 > len(data):
        return False
    chunk_id = data[pos:pos + 4]
    (length,) = struct.unpack(">L", data[pos + 4:pos + 8])
    return _is_track_id(chunk_id) or (chunk_id.isalpha() and pos + 8 + length <= len(data))


def _read_chunks(data: bytes, pos: int, problems: Problems) -> list[SmfTrack]:
    """Every track chunk from ``pos`` on, as tracks.

    A track's chunk length is trusted when another chunk (or the end of the file) follows
    where it says; otherwise (a length cut short, or one past the end of the file, as some
    writers leave it) the track is read to its end-of-track event, up to the next ``MTrk``
    at most."""
    tracks: list[SmfTrack] = []
    while pos + 8 <= len(data):
        chunk_id = data[pos:pos + 4]
        (length,) = struct.unpack(">L", data[pos + 4:pos + 8])
        body, index = pos + 8, len(tracks)
        declared_end = body + length
        if _is_track_id(chunk_id):
            if chunk_id != b"MTrk":
                problems.add("bad chunks", f"chunk {chunk_id.decode('latin-1')!r} read as a "
                                           "track (a damaged MTrk?)", index)
            trusted = declared_end == len(data) or _starts_chunk(data, declared_end)
            if declared_end > len(data):  # noted before the problems that it explains
                problems.add("cut tracks", f"its chunk announces {length:,} bytes, more than "
                                           f"the {len(data) - body:,} left in the file", index)
            next_track = data.find(b"MTrk", body)
            end = declared_end if trusted else next_track if next_track >= 0 else len(data)
            track, used = read_track(data, body, end, index, problems)
            tracks.append(track)
            if not trusted and declared_end <= len(data) and body + used != declared_end:
                problems.add("bad chunks", f"its chunk announces {length:,} bytes; its events "
                                           f"take {used:,}", index)
            pos = declared_end if trusted else body + used
        elif chunk_id.isalpha() and declared_end <= len(data):
            pos = declared_end  # a chunk of another kind: skipped, as the specification asks
        else:
            found = data.find(b"MTrk", pos + 1)
            if found < 0:
                if any(data[pos:]):
                    problems.add("bad chunks", f"{len(data) - pos:,} bytes after the last "
                                               "track are not a chunk: ignored")
                return tracks
            problems.add("bad chunks", f"{found - pos:,} bytes before track {len(tracks) + 1} "
                                       "are not a chunk: skipped")
            pos = found
    return tracks


def _apply_division(smf: Smf, division: int) -> None:
    """Set the file's ticks a quarter note; convert SMPTE times to that timeline."""
    if not division & 0x8000:
        if division:
            smf.ticks_per_beat = division
            return
        smf.problems.add("bad chunks", f"time division 0: read as {DEFAULT_TICKS_PER_BEAT} "
                                       "ticks a quarter note")
        return
    fps_code, ticks_per_frame = 256 - (division >> 8), division & 0xFF
    if fps_code not in SMPTE_FRAMES_PER_S or ticks_per_frame == 0:
        smf.problems.add("bad chunks", f"SMPTE time division 0x{division:04X} ({fps_code} "
                                       f"frames a second, {ticks_per_frame} ticks a frame) is "
                                       f"not valid: read as {DEFAULT_TICKS_PER_BEAT} ticks a "
                                       "quarter note")
        return
    ticks_per_s = SMPTE_FRAMES_PER_S[fps_code] * ticks_per_frame
    tempos = sorted(t for track in smf.tracks for t in track.tempos)
    _smpte_to_beats(smf.tracks, ticks_per_s, tempos)
    smf.ticks_per_beat = SMPTE_TICKS_PER_BEAT
    drop = " drop-frame" if fps_code == 29 else ""
    bpm = (f"at its tempo map, from {60e6 / tempos[0][1]:.4g} BPM" if tempos
           else "at 120 BPM (it has no tempo event)")
    smf.notes_on_timing.append(f"SMPTE time ({fps_code}{drop} frames a second, "
                               f"{ticks_per_frame} ticks a frame): times converted to seconds, "
                               f"then quantised {bpm}")


def _smpte_to_beats(tracks: list[SmfTrack], ticks_per_s: float,
                    tempos: list[tuple[int, int]]) -> None:
    """Rewrite every tick (SMPTE, ``ticks_per_s`` a second) as a tick of
    :data:`SMPTE_TICKS_PER_BEAT` a quarter note under the tempo map ``tempos``."""
    # each tempo segment: (SMPTE tick where it starts, quarter notes before it, us/quarter)
    segments: list[tuple[int, float, int]] = [(0, 0.0, DEFAULT_TEMPO_US)]
    for tick, tempo_us in tempos:
        start, beats, previous_us = segments[-1]
        beats += (tick - start) / ticks_per_s * 1e6 / previous_us
        segments.append((tick, beats, tempo_us))
    starts = [s[0] for s in segments]

    def convert(tick: int) -> int:
        start, beats, tempo_us = segments[bisect.bisect_right(starts, tick) - 1]
        beats += (tick - start) / ticks_per_s * 1e6 / tempo_us
        return round(beats * SMPTE_TICKS_PER_BEAT)

    for track in tracks:
        track.notes = [(convert(t), *rest) for t, *rest in track.notes]
        track.tempos = [(convert(t), tempo) for t, tempo in track.tempos]
        track.time_signatures = [(convert(t), *rest) for t, *rest in track.time_signatures]
        track.markers = [(convert(t), text) for t, text in track.markers]
        track.end_tick = convert(track.end_tick)


def _one_after_another(tracks: list[SmfTrack]) -> None:
    """Format 2: each sequence starts where the one before it ended."""
    offset = 0
    for track in tracks:
        track.notes = [(t + offset, *rest) for t, *rest in track.notes]
        track.tempos = [(t + offset, tempo) for t, tempo in track.tempos]
        track.time_signatures = [(t + offset, *rest) for t, *rest in track.time_signatures]
        track.markers = [(t + offset, text) for t, text in track.markers]
        track.end_tick += offset
        offset = track.end_tick
