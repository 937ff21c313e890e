"""Reading and writing standard MIDI files as notes on the sixteenth grid.

The only module of the core that touches MIDI files. Reading merges every track, ignores
channel 10 (drums) unless asked, treats a note-on of velocity 0 as a note-off, quantises
onsets and releases to the nearest sixteenth (a note shorter than a sixteenth keeps one
step), and keeps the tempo map and the time signatures so that a rendered file plays at the
query's beats and tempo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mido

from qbdi.bars import STEPS_PER_BAR, STEPS_PER_BEAT, Note
from qbdi.errors import MetreError, MidiFileError

DRUM_CHANNEL = 9  # channel 10 in the 1-based numbering musicians use
DEFAULT_TEMPO_US = 500_000  # 120 BPM, the MIDI default


@dataclass(frozen=True, slots=True)
class TimeSignature:
    step: int
    numerator: int
    denominator: int

    @property
    def bar_steps(self) -> int:
        """Length of one bar of this metre in sixteenths (6/8 -> 12, 3/4 -> 12)."""
        return self.numerator * 16 // self.denominator


@dataclass(slots=True)
class Score:
    """A piece as the codec sees it: notes on the grid plus what is needed to write it back."""

    notes: list[Note]
    tempos: list[tuple[int, int]] = field(default_factory=lambda: [(0, DEFAULT_TEMPO_US)])
    """(step, microseconds per quarter note), sorted, first at step 0."""
    time_signatures: list[TimeSignature] = field(default_factory=list)
    source: str = ""
    dropped_drum_notes: int = 0
    unmatched_note_offs: int = 0

    @property
    def n_steps(self) -> int:
        return max((n.end_step for n in self.notes), default=0)

    @property
    def n_bars(self) -> int:
        """Whole 16-step frames needed to hold every note."""
        return -(-self.n_steps // STEPS_PER_BAR)

    def metres(self) -> set[str]:
        return {f"{t.numerator}/{t.denominator}" for t in self.time_signatures} or {"4/4"}

    def check_metre(self, policy: str) -> None:
        """Apply the metre policy: ``frames`` accepts any metre, ``strict`` only 4/4, 2/2 and 2/4
        (whose bars fill whole frames).

        With ``frames`` every metre is cut into frames of 16 sixteenths (four quarter notes)
        from the start of the piece: a 4/4 bar is one frame; in 3/4 or 6/8 (12 sixteenths a
        bar) frames and barlines drift apart, so three bars of 3/4 fill 2.25 frames.
        """
        if policy == "frames":
            return
        bad = sorted(m for m in self.metres() if m not in {"4/4", "2/2", "2/4"})
        if bad:
            raise MetreError(
                f"{self.source}: metre {', '.join(bad)} is not 4/4; the model works on 4/4 bars "
                "(use --metre frames to cut it into 16-sixteenth frames anyway)"
            )


def read_midi(path: str | Path, include_drums: bool = False, track: str | None = None) -> Score:
    """Read a MIDI file into a :class:`Score`; raise :class:`MidiFileError` naming the file.

    ``track``: take the notes of the tracks of that name alone (e.g. ``player`` of a
    ``qbdi serve --record`` take); the tempo map and metre still come from every track.
    """
    path = Path(path)
    if not path.is_file():
        raise MidiFileError(path, "no such file")
    try:
        midi = mido.MidiFile(path, clip=True)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise MidiFileError(path, f"not a readable MIDI file ({err})") from err
    if midi.type == 2:
        raise MidiFileError(path, "MIDI type 2 (independent sequences) is not supported")
    if midi.ticks_per_beat <= 0:
        raise MidiFileError(path, f"invalid ticks per beat {midi.ticks_per_beat} (SMPTE time?)")
    if track is not None:
        midi.tracks = _notes_of_track_only(midi, track, path)
    score = _score_from_messages(midi, include_drums)
    score.source = str(path)
    if not score.notes:
        raise MidiFileError(path, "contains no notes")
    return score


def _notes_of_track_only(midi: mido.MidiFile, name: str, path: Path) -> list[mido.MidiTrack]:
    """The file's tracks with the channel messages of every track not called ``name``
    left out (their time folded into the next message kept)."""
    names = [track.name for track in midi.tracks]
    if name not in names:
        listing = ", ".join(repr(n) for n in names if n) or "none has a name"
        raise MidiFileError(path, f"no track named {name!r} (tracks: {listing})")
    tracks = []
    for track in midi.tracks:
        if track.name == name:
            tracks.append(track)
            continue
        kept, carried = mido.MidiTrack(), 0
        for message in track:
            if message.is_meta:
                kept.append(message.copy(time=message.time + carried))
                carried = 0
            else:
                carried += message.time
        tracks.append(kept)
    return tracks


def _score_from_messages(midi: mido.MidiFile, include_drums: bool) -> Score:
    ticks_per_step = midi.ticks_per_beat / STEPS_PER_BEAT
    score = Score(notes=[], tempos=[])
    sounding: dict[tuple[int, int], tuple[int, int]] = {}  # (channel, pitch) -> (tick, vel)
    tick = 0
    for message in mido.merge_tracks(midi.tracks):
        tick += message.time
        step = round(tick / ticks_per_step)
        if message.type == "set_tempo":
            score.tempos.append((step, message.tempo))
        elif message.type == "time_signature":
            score.time_signatures.append(
                TimeSignature(step, message.numerator, message.denominator)
            )
        elif message.type in ("note_on", "note_off"):
            if message.channel == DRUM_CHANNEL and not include_drums:
                score.dropped_drum_notes += message.type == "note_on" and message.velocity > 0
                continue
            key = (message.channel, message.note)
            if key in sounding:  # any note event ends the note already sounding there
                start_tick, velocity = sounding.pop(key)
                score.notes.append(_note(start_tick, tick, message.note, velocity, ticks_per_step))
            elif message.type == "note_off" or message.velocity == 0:
                score.unmatched_note_offs += 1
            if message.type == "note_on" and message.velocity > 0:
                sounding[key] = (tick, message.velocity)
    for (_, pitch), (start_tick, velocity) in sounding.items():  # still on at the end
        score.notes.append(_note(start_tick, tick, pitch, velocity, ticks_per_step))
    score.notes.sort()
    score.tempos = _clean_tempos(score.tempos)
    return score


def _note(start_tick: int, end_tick: int, pitch: int, velocity: int, ticks_per_step: float) -> Note:
    start_step = round(start_tick / ticks_per_step)
    end_step = max(round(end_tick / ticks_per_step), start_step + 1)
    return Note(start_step, pitch, end_step, velocity)


def _clean_tempos(tempos: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort, keep the last tempo given at each step, and make sure one starts at step 0."""
    by_step = dict(sorted(tempos, key=lambda t: t[0]))
    if 0 not in by_step:
        by_step[0] = DEFAULT_TEMPO_US
    return sorted(by_step.items())


@dataclass(frozen=True, slots=True)
class Track:
    notes: Sequence[Note]
    channel: int = 0
    name: str = ""


def write_midi(
    path: str | Path,
    tracks: Sequence[Track],
    tempos: Sequence[tuple[int, int]] = ((0, DEFAULT_TEMPO_US),),
    time_signatures: Sequence[TimeSignature] = (),
    ticks_per_beat: int = 480,
) -> None:
    """Write a type-1 MIDI file: a conductor track (tempo, metre), then one track per Track.

    Every note-on is followed by its note-off; the result reads back with
    :func:`read_midi` to the same notes.
    """
    ticks_per_step = ticks_per_beat // STEPS_PER_BEAT
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    conductor = [(s * ticks_per_step, mido.MetaMessage("set_tempo", tempo=t)) for s, t in tempos]
    conductor += [
        (
            ts.step * ticks_per_step,
            mido.MetaMessage("time_signature", numerator=ts.numerator, denominator=ts.denominator),
        )
        for ts in time_signatures
    ]
    midi.tracks.append(_to_track(conductor, "qbdi"))
    for track in tracks:
        events = []
        for note in track.notes:
            on = mido.Message("note_on", channel=track.channel, note=note.pitch,
                              velocity=max(1, min(127, note.velocity)))
            off = mido.Message("note_off", channel=track.channel, note=note.pitch, velocity=0)
            events.append((note.start_step * ticks_per_step, on))
            events.append((note.end_step * ticks_per_step, off))
        midi.tracks.append(_to_track(events, track.name))
    midi.save(path)


def _to_track(events: list[tuple[int, mido.Message]], name: str) -> mido.MidiTrack:
    # note-offs sort before note-ons at the same tick so a repeated pitch re-strikes cleanly
    events = sorted(events, key=lambda e: (e[0], e[1].type != "note_off"))
    track = mido.MidiTrack()
    if name:
        track.append(mido.MetaMessage("track_name", name=name))
    last_tick = 0
    for tick, message in events:
        track.append(message.copy(time=tick - last_tick))
        last_tick = tick
    return track
