"""Standard MIDI File bytes, written: the one writer behind :func:`qbdi.midifile.write_midi`
and the live take (:mod:`qbdi.server.take`), which appends a message's bytes as it happens and
wraps them into chunks at each save."""

from __future__ import annotations

from collections.abc import Iterable

END_OF_TRACK = b"\xff\x2f\x00"
_ONE_BYTE = [bytes((value,)) for value in range(0x80)]


def variable_length(value: int) -> bytes:
    """A MIDI variable-length quantity: 7 bits a byte, the high bit set on all but the last.
    ``value`` is 0 to 2^28 - 1."""
    if value < 0x80:
        return _ONE_BYTE[value]
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def meta_event(kind: int, data: bytes) -> bytes:
    """A meta event as it stands in a file: FF, its type, its length, its data."""
    return b"\xff" + bytes((kind,)) + variable_length(len(data)) + data


def track_name(name: str) -> bytes:
    return meta_event(0x03, name.encode("latin-1", "replace"))


def set_tempo(tempo_us: int) -> bytes:
    """Microseconds per quarter note."""
    return meta_event(0x51, tempo_us.to_bytes(3, "big"))


def time_signature(numerator: int, denominator: int) -> bytes:
    """``numerator/denominator`` (a power of two), 24 MIDI clocks a click, 8 32nds a beat."""
    return meta_event(0x58, bytes((numerator, denominator.bit_length() - 1, 24, 8)))


def header_chunk(n_tracks: int, ticks_per_beat: int) -> bytes:
    """``MThd`` of a type-1 file of ``n_tracks`` tracks."""
    return (b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big")
            + n_tracks.to_bytes(2, "big") + ticks_per_beat.to_bytes(2, "big"))


def track_chunk(body: bytes) -> bytes:
    """``MTrk`` around a track's events (delta times included, end of track excluded)."""
    return b"".join(track_chunk_parts(body))


def track_chunk_parts(*bodies: bytes | bytearray) -> list[bytes | bytearray]:
    """:func:`track_chunk` of the bodies one after the other, as parts to write in turn:
    a long track is written without a joined copy of it."""
    parts = [*bodies, b"\x00" + END_OF_TRACK]
    size = sum(len(part) for part in parts)
    return [b"MTrk" + size.to_bytes(4, "big"), *parts]


def events_body(name: str, events: Iterable[tuple[int, bytes]]) -> bytes:
    """A track's events with their delta times: its name at tick 0, then ``(tick, bytes)``
    in the order given (ticks must not decrease)."""
    body = bytearray(b"\x00" + track_name(name)) if name else bytearray()
    last_tick = 0
    for tick, event in events:
        body += variable_length(tick - last_tick) + event
        last_tick = tick
    return bytes(body)
