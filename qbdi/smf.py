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
from collections import Counter
from dataclasses import dataclass, field

SMPTE_TICKS_PER_BEAT = 960  # the resolution SMPTE times are converted to
DEFAULT_TICKS_PER_BEAT = 480  # read a file with an unusable time division as this
DEFAULT_TEMPO_US = 500_000  # 120 BPM, the MIDI default
MAX_DETAILED = 5  # problems described one by one; the rest are counted
MAX_BYTES_BEFORE_HEADER = 128  # a MacBinary header; a RIFF wrapper is opened whatever its size

END_OF_TRACK, SET_TEMPO, TIME_SIGNATURE, KEY_SIGNATURE = 0x2F, 0x51, 0x58, 0x59
TRACK_NAME, MARKER = 0x03, 0x06
# Meta events with a fixed length in the specification: type -> (name, allowed lengths)
META_LENGTHS = {
    0x00: ("sequence number", (0, 2)),
    0x20: ("channel prefix", (1,)),
    0x21: ("MIDI port", (0, 1)),
    END_OF_TRACK: ("end of track", (0,)),
    SET_TEMPO: ("tempo", (3,)),
    0x54: ("SMPTE offset", (5,)),
    TIME_SIGNATURE: ("time signature", (4,)),
    KEY_SIGNATURE: ("key signature", (2,)),
}
# Data bytes after a status byte that has no place in a file: system common and real-time
SYSTEM_LENGTHS = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0,
                  0xFE: 0}
SMPTE_FRAMES_PER_S = {24: 24.0, 25: 25.0, 29: 30_000 / 1001, 30: 30.0}  # 29: 30 drop-frame


class SmfError(Exception):
    """Bytes that are not a MIDI file at all (no header to start from)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing skipped or changed; ``track`` is 0-based, None for the file as a whole."""

    what: str
    track: int | None = None
    tick: int | None = None


@dataclass(slots=True)
class Problems:
    """What a reading skipped or changed: the first :data:`MAX_DETAILED` described, every
    one counted by kind (so a file with 10,000 bad events costs a handful of lines)."""

    detailed: list[Problem] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def add(self, kind: str, what: str, track: int | None = None,
            tick: int | None = None) -> None:
        self.counts[kind] += 1
        if len(self.detailed) < MAX_DETAILED:
            self.detailed.append(Problem(what, track, tick))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self, source: str, track_names: list[str]) -> list[str]:
        """One line per described problem, naming ``source`` and the track, then one line
        with the count of the others by kind."""
        lines = [f"{source}: {_where(p, track_names)}{p.what}" for p in self.detailed]
        hidden = self.total - len(self.detailed)
        if hidden:
            kinds = ", ".join(f"{n:,} {kind}" for kind, n in self.counts.most_common())
            lines.append(f"{source}: {hidden:,} more problems not shown ({self.total:,} in all: "
                         f"{kinds})")
        return lines


def _where(problem: Problem, track_names: list[str]) -> str:
    if problem.track is None:
        return ""
    name = track_names[problem.track] if problem.track < len(track_names) else ""
    named = f" {name!r}" if name else ""
    tick = f", tick {problem.tick}" if problem.tick is not None else ""
    return f"track {problem.track + 1}{named}{tick}: "


@dataclass(slots=True)
class SmfTrack:
    """The events of one track that qbdi reads, at absolute ticks from the track's start."""

    name: str = ""  # its first track name event
    notes: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(tick, channel, pitch, velocity) in file order; velocity 0 ends a note (note-off)."""
    tempos: list[tuple[int, int]] = field(default_factory=list)  # (tick, us per quarter)
    time_signatures: list[tuple[int, int, int]] = field(default_factory=list)  # (tick, n, d)
    markers: list[tuple[int, str]] = field(default_factory=list)
    end_tick: int = 0  # the tick of its last event
    damaged: bool = False  # it ends where an event was cut short or could not be followed


@dataclass(slots=True)
class Smf:
    """A MIDI file as read: its tracks on a timeline of ``ticks_per_beat`` a quarter note."""

    format: int
    ticks_per_beat: int
    tracks: list[SmfTrack]
    problems: Problems
    notes_on_timing: list[str] = field(default_factory=list)
    """What the reading assumed about time (SMPTE conversion, a replaced division)."""

    def problem_lines(self, source: str) -> list[str]:
        return self.problems.lines(source, [t.name for t in self.tracks])


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
            track, used = _read_track(data, body, end, index, problems)
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


class _Cut(Exception):
    """The track's bytes end inside an event."""


class _Damaged(Exception):
    """The track's bytes cannot be followed any further."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A variable-length quantity (at most 4 bytes) at ``pos``; (value, next position)."""
    value = 0
    for i in range(4):
        if pos + i >= end:
            raise _Cut
        byte = data[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    raise _Damaged("a variable-length number longer than 4 bytes")


def _read_track(data: bytes, pos: int, end: int, index: int,
                problems: Problems) -> tuple[SmfTrack, int]:
    """The track in ``data[pos:end]``; also how many bytes its events used."""
    start, track, tick, running = pos, SmfTrack(), 0, None
    status_next = False  # after stray data bytes, a status byte may come with no delta time
    try:
        while pos < end:
            if not status_next:
                delta, pos = _varint(data, pos, end)
                tick += delta
            status_next = False
            if pos >= end:
                raise _Cut
            status = data[pos]
            if status < 0x80:  # running status: the data byte belongs to the last status
                if running is None:
                    pos, status_next = _skip_stray_data(data, pos, end, tick, index, problems)
                    continue
                status = running
            else:
                pos += 1
            if status == 0xFF:
                pos, ended = _meta(data, pos, end, track, tick, index, problems)
                track.end_tick = tick
                if ended:
                    break
            elif status in (0xF0, 0xF7):  # system exclusive: length, then bytes we skip
                length, pos = _varint(data, pos, end)
                if pos + length > end:
                    raise _Cut
                pos += length
                track.end_tick = tick
            elif status >= 0xF0:
                pos = _misplaced_system_message(data, pos, end, status, tick, index, problems)
            else:
                running = status
                pos = _channel_message(data, pos, end, status, track, tick, index, problems)
                track.end_tick = tick
    except _Cut:
        track.damaged = True
        problems.add("cut tracks", "an event is cut short at the end of the track: read up "
                                   "to there", index, tick)
    except _Damaged as err:
        track.damaged = True
        problems.add("cut tracks", f"{err}: the rest of the track is skipped", index, tick)
    return track, pos - start


def _skip_stray_data(data: bytes, pos: int, end: int, tick: int, index: int,
                     problems: Problems) -> tuple[int, bool]:
    """Skip data bytes that have no status to belong to, up to the next status byte; the
    byte just before it, if it is not the only one, is taken as that event's delta time.
    Returns where to read on, and whether a status byte (no delta time) comes next."""
    status_at = pos
    while status_at < end and data[status_at] < 0x80:
        status_at += 1
    delta_follows = status_at < end and status_at - pos > 1
    skipped = status_at - pos - delta_follows
    problems.add("stray data bytes", f"{skipped} data byte{'s' if skipped > 1 else ''} with no "
                                     "status before them: skipped", index, tick)
    if delta_follows:
        return status_at - 1, False
    return status_at, status_at < end


def _channel_message(data: bytes, pos: int, end: int, status: int, track: SmfTrack,
                     tick: int, index: int, problems: Problems) -> int:
    n_data = 1 if status & 0xF0 in (0xC0, 0xD0) else 2
    if pos + n_data > end:
        raise _Cut
    values = list(data[pos:pos + n_data])
    if max(values) > 127:
        problems.add("clipped data bytes", f"data byte 0x{max(values):02X} above 127 in a "
                                           f"0x{status:02X} message: clipped to 127", index, tick)
        values = [min(v, 127) for v in values]
    kind, channel = status & 0xF0, status & 0x0F
    if kind == 0x90:
        track.notes.append((tick, channel, values[0], values[1]))
    elif kind == 0x80:
        track.notes.append((tick, channel, values[0], 0))
    return pos + n_data


def _misplaced_system_message(data: bytes, pos: int, end: int, status: int, tick: int,
                              index: int, problems: Problems) -> int:
    """Skip a status byte that has no place in a file, with the data bytes it is known to
    take (none for an undefined one)."""
    known = SYSTEM_LENGTHS.get(status)
    if known is None:
        problems.add("undefined status bytes", f"undefined status byte 0x{status:02X}: "
                                               "skipped", index, tick)
    else:
        problems.add("system messages", f"system message 0x{status:02X} (no place in a "
                                        "file): skipped", index, tick)
    for _ in range(known or 0):
        if pos < end and data[pos] < 0x80:
            pos += 1
    return pos


def _meta(data: bytes, pos: int, end: int, track: SmfTrack, tick: int, index: int,
          problems: Problems) -> tuple[int, bool]:
    """Read the meta event after its 0xFF; (next position, whether the track ended)."""
    if pos >= end:
        raise _Cut
    kind = data[pos]
    length, pos = _varint(data, pos + 1, end)
    if pos + length > end:
        raise _Cut
    body = data[pos:pos + length]
    pos += length
    if kind == END_OF_TRACK:
        return pos, True
    fault = _meta_fault(kind, body)
    if fault:
        shown = bytes([0xFF, kind]) + _varint_bytes(length) + body[:8]
        problems.add("invalid meta events", f"{fault} ({shown.hex(' ').upper()}"
                     f"{' ...' if length > 8 else ''}): skipped", index, tick)
    elif kind == SET_TEMPO:
        track.tempos.append((tick, int.from_bytes(body, "big")))
    elif kind == TIME_SIGNATURE:
        track.time_signatures.append((tick, body[0], 2 ** body[1]))
    elif kind == TRACK_NAME and not track.name:
        track.name = body.decode("latin-1")
    elif kind == MARKER:
        track.markers.append((tick, body.decode("latin-1")))
    return pos, False


def _varint_bytes(value: int) -> bytes:
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def _meta_fault(kind: int, body: bytes) -> str:
    """Why a meta event of a known type is impossible ('' when it is fine)."""
    if kind not in META_LENGTHS:
        return ""  # text events, sequencer-specific, unknown types: any length
    name, lengths = META_LENGTHS[kind]
    if len(body) not in lengths:
        return f"{name} event of {len(body)} bytes, not {' or '.join(map(str, lengths))}"
    if kind == SET_TEMPO and int.from_bytes(body, "big") == 0:
        return "tempo of 0 microseconds a quarter note"
    if kind == TIME_SIGNATURE and (body[0] == 0 or body[1] > 6):
        return f"time signature {body[0]}/2^{body[1]}"
    if kind == KEY_SIGNATURE:
        sharps = body[0] - 256 if body[0] > 127 else body[0]
        if not -7 <= sharps <= 7:
            return f"key signature with {abs(sharps)} {'sharps' if sharps > 0 else 'flats'}"
        if body[1] > 1:
            return f"key signature in mode {body[1]} (0 major, 1 minor)"
    if kind == 0x20 and body[0] > 15:
        return f"channel prefix {body[0]}"
    return ""


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
