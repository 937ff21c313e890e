"""Small MIDI files of our own, built byte by byte, clean and damaged (not collected).

``python tests/smf_bytes.py`` writes :data:`FILES` to ``tests/data/``; a test checks that the
committed files are exactly these bytes. Every file is the same short piece, "two hands":
8 bars of 4/4 at 100 BPM, 96 ticks a quarter note, in three tracks as a DAW writes them:

* ``conductor``: track name, tempo, time signature, key signature (G major), a marker, a
  copyright notice and a system exclusive message (GM on);
* ``left``: a two-note chord a bar on channel 2, with note-off events, the sustain pedal
  and a pitch bend;
* ``right``: 32 quarter notes on channel 1 written with running status and note-ons of
  velocity 0 as note-offs, each held 90 ticks (3.75 sixteenths, so 4 on the grid).

The damaged ones change one thing each (see :data:`FILES`).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
TICKS_PER_BEAT = 96
SCALE = [60, 62, 64, 65, 67, 69, 71, 72]
MELODY = SCALE + SCALE[::-1] + SCALE + SCALE[::-1]  # 32 quarter notes
CHORDS = [(48, 55), (53, 57), (55, 59), (48, 55)] * 2  # one a bar
HELD_TICKS = 90


def varint(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    return kind + struct.pack(">L", len(body) if length is None else length) + body


def header(n_tracks: int, fmt: int = 1, division: int = TICKS_PER_BEAT) -> bytes:
    return chunk(b"MThd", struct.pack(">HHH", fmt, n_tracks, division))


def event(delta: int, *data: int) -> bytes:
    return varint(delta) + bytes(data)


def meta(delta: int, kind: int, payload: bytes) -> bytes:
    return varint(delta) + bytes([0xFF, kind]) + varint(len(payload)) + payload


END = meta(0, 0x2F, b"")


def track(*events: bytes, length: int | None = None) -> bytes:
    return chunk(b"MTrk", b"".join(events) + END, length)


def conductor(key: bytes = b"\x01\x00", tempo: bytes = b"\x09\x27\xc0",
              time_signature: bytes = b"\x04\x02\x18\x08") -> list[bytes]:
    return [
        meta(0, 0x03, b"two hands"),
        meta(0, 0x02, b"(c) qbdi tests, CC0"),
        meta(0, 0x51, tempo),  # 600,000 us a quarter note: 100 BPM
        meta(0, 0x58, time_signature),
        meta(0, 0x59, key),
        event(0, 0xF0, 5, 0x7E, 0x7F, 0x09, 0x01, 0xF7),  # GM on
        meta(4 * 4 * TICKS_PER_BEAT, 0x06, b"B section"),
    ]


def left() -> list[bytes]:
    events = [meta(0, 0x03, b"left"), event(0, 0xB1, 64, 127)]
    bar_ticks, last = 4 * TICKS_PER_BEAT, 0
    for bar, (low, high) in enumerate(CHORDS):
        start = bar * bar_ticks
        events += [event(start - last, 0x91, low, 70), event(0, 0x91, high, 70)]
        if bar == 3:
            events.append(event(0, 0xE1, 0x00, 0x50))  # a pitch bend
        events += [event(bar_ticks - 1, 0x81, low, 64), event(0, 0x81, high, 64)]
        last = start + bar_ticks - 1
    return [*events, event(1, 0xB1, 64, 0)]


def right(extras: dict[int, bytes] | None = None) -> list[bytes]:
    """The melody; ``extras[i]`` (an event with its own delta time) goes in after note i."""
    events = [meta(0, 0x03, b"right")]
    for index, pitch in enumerate(MELODY):
        gap = TICKS_PER_BEAT - HELD_TICKS if index else 0
        on = event(gap, 0x90, pitch, 90) if index == 0 else event(gap, pitch, 90)
        events += [on, event(HELD_TICKS, pitch, 0)]  # running status from the first note
        if extras and index in extras:
            events.append(extras[index])
    return events


def two_hands(conductor_events=None, left_events=None, right_events=None, n_tracks=3,
              left_length=None) -> bytes:
    return (header(n_tracks) + track(*(conductor_events or conductor()))
            + track(*(left_events or left()), length=left_length)
            + track(*(right_events or right())))


def smpte() -> bytes:
    """Format 0 in SMPTE time, 25 frames a second of 40 ticks (1 ms a tick): a quarter note
    a beat for 8 beats at 100 BPM (600 ms), then a tempo of 150 BPM and 8 more at 400 ms."""
    events = [meta(0, 0x51, (600_000).to_bytes(3, "big"))]
    tick, last = 0, 0
    for index, pitch in enumerate(SCALE + SCALE[::-1]):
        beat_ms = 600 if index < 8 else 400
        if index == 8:
            events.append(meta(tick - last, 0x51, (400_000).to_bytes(3, "big")))
            last = tick
        events += [event(tick - last, 0x90, pitch, 80), event(beat_ms // 2, 0x80, pitch, 0)]
        last = tick + beat_ms // 2
        tick += beat_ms
    return header(1, fmt=0, division=(256 - 25) << 8 | 40) + track(*events)


def many_bad_events(n: int = 10_000) -> bytes:
    """The right hand alone (format 0) with ``n`` undefined status bytes between its notes."""
    per_note, extra = divmod(n, len(MELODY))
    events = [meta(0, 0x03, b"right")]
    for index, pitch in enumerate(MELODY):
        gap = TICKS_PER_BEAT - HELD_TICKS if index else 0
        events += [event(gap, 0x90, pitch, 90), event(HELD_TICKS, 0x80, pitch, 0),
                   event(0, 0xF4) * (per_note + (index < extra))]
    return header(1, fmt=0) + track(*events)


def cut_in_last_track(note: int = 19, keep_bytes: int = 2) -> bytes:
    """The piece cut ``keep_bytes`` into the note-off of the right hand's note ``note``."""
    before = header(3) + track(*conductor()) + track(*left())
    events = right()
    on_and_before = b"".join(events[: 2 + 2 * note])  # the name, then an on and an off each
    return before + b"MTrk" + struct.pack(">L", len(b"".join(events) + END)) + \
        on_and_before + events[2 + 2 * note][:keep_bytes]


FILES: dict[str, bytes] = {
    "two-hands.mid": two_hands(),
    # the crash of issue 12: a key signature of 8 flats
    "key-of-eight-flats.mid": two_hands(conductor(key=b"\xf8\x00")),
    # a tempo of 2 bytes, a time signature of 3, a key signature in mode 5
    "bad-meta-lengths.mid": two_hands(conductor(key=b"\x00\x05", tempo=b"\x09\x27",
                                                time_signature=b"\x04\x02\x18")),
    # an undefined status byte (0xF4) after the 8th note, a song select (0xF3 0x01: system
    # common, no place in a file) after the 20th; running status goes on after both
    "undefined-status.mid": two_hands(right_events=right({7: event(0, 0xF4),
                                                          19: event(0, 0xF3, 0x01)})),
    # the right hand starts with two data bytes and no status; a text event between two
    # running-status notes (running status continues over it)
    "running-status.mid": two_hands(right_events=[
        meta(0, 0x03, b"right"), event(0, 0x3C, 0x40),
        *right({3: meta(0, 0x01, b"over a meta event")})[1:]]),
    # the file ends in the middle of the right hand's 20th note-off
    "cut-in-last-track.mid": cut_in_last_track(),
    # the left hand's chunk announces far more bytes than the file has
    "chunk-past-the-end.mid": two_hands(left_length=0xFFFF_FF00),
    "smpte.mid": smpte(),
}


def main() -> int:
    DATA.mkdir(exist_ok=True)
    for name, data in FILES.items():
        (DATA / name).write_bytes(data)
        print(f"{DATA / name}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
