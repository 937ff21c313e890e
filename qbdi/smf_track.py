"""The events of one track of a standard MIDI file, read tolerantly (see :mod:`qbdi.smf` for
what is skipped and why): notes, tempos, time signatures, names and markers, at absolute
ticks, and a :class:`~qbdi.smf_problems.Problems` entry for everything skipped or changed."""

from __future__ import annotations

from qbdi import smf_write
from qbdi.smf_problems import Problems
from qbdi.smf_types import SmfTrack

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


def read_track(data: bytes, pos: int, end: int, index: int,
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
        shown = bytes([0xFF, kind]) + smf_write.variable_length(length) + body[:8]
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


