"""Reading and writing standard MIDI files as notes on the sixteenth grid.

The only module of the core that touches MIDI files. Reading goes through the tolerant
reader of :mod:`qbdi.smf` (a damaged file is read as far as it can be, and what was skipped
is listed in ``Score.warnings``), merges every track, ignores channel 10 (drums) unless
asked, treats a note-on of velocity 0 as a note-off, quantises onsets and releases to the
nearest sixteenth (a note shorter than a sixteenth keeps one step), and keeps the tempo
map and the time signatures so that a rendered file plays at the query's beats and tempo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qbdi import smf_write
from qbdi.bars import STEPS_PER_BAR, STEPS_PER_BEAT, Note
from qbdi.errors import MetreError, MidiFileError
from qbdi.smf import SmfError, parse_smf
from qbdi.smf_types import Smf, SmfTrack

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
    warnings: list[str] = field(default_factory=list)
    """What reading skipped or assumed, one line each, naming the file (bounded: a file with
    thousands of bad events gives a handful of lines and a count)."""

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


MAX_BARS = 10_000
"""Notes that start later are dropped (with a warning): 10,000 bars of 4/4 last 5.5 hours at
120 BPM, so a note that far is almost always a damaged delta time, and reading it would
build millions of empty bars."""
MAX_STEPS = MAX_BARS * STEPS_PER_BAR


def read_midi(path: str | Path, include_drums: bool = False, track: str | None = None) -> Score:
    """Read a MIDI file into a :class:`Score`; raise :class:`MidiFileError` naming the file.

    Damaged files are read as far as they can be (:mod:`qbdi.smf`); what was skipped is in
    ``Score.warnings``. Refused: a missing file, bytes that are not MIDI, a file with no
    notes to read (drums aside, unless ``include_drums``).

    ``track``: take the notes of the tracks of that name alone (e.g. ``player`` of a
    ``qbdi serve --record`` take); the tempo map and metre still come from every track.
    """
    return score_of(load_smf(path), path, include_drums, track)


def load_smf(path: str | Path) -> Smf:
    """The file at ``path`` as read by the tolerant reader; :class:`MidiFileError` if it
    is missing, unreadable, or not a MIDI file."""
    path = Path(path)
    if not path.is_file():
        raise MidiFileError(path, "no such file")
    try:
        return parse_smf(path.read_bytes())
    except OSError as err:
        raise MidiFileError(path, f"cannot be read ({err.strerror or err})") from err
    except SmfError as err:
        raise MidiFileError(path, str(err)) from err


def score_of(smf: Smf, path: str | Path, include_drums: bool = False,
             track: str | None = None) -> Score:
    """The :class:`Score` of a file read by :func:`load_smf` (see :func:`read_midi`)."""
    names = [t.name for t in smf.tracks]
    if track is not None and track not in names:
        listing = ", ".join(repr(n) for n in names if n) or "none has a name"
        raise MidiFileError(path, f"no track named {track!r} (tracks: {listing})")
    note_tracks = [t for t in smf.tracks if track is None or t.name == track]
    score = _score_from_tracks(smf, note_tracks, include_drums)
    score.source = str(path)
    score.warnings = [*(f"{path}: {line}" for line in smf.notes_on_timing),
                      *smf.problem_lines(str(path)),
                      *(f"{path}: {line}" for line in score.warnings)]
    if not score.notes:
        raise MidiFileError(path, f"contains no notes{_why_no_notes(smf, score)}")
    return score


def _why_no_notes(smf: Smf, score: Score) -> str:
    if score.dropped_drum_notes:
        return f" but {score.dropped_drum_notes} drum notes on channel 10, which are ignored"
    if smf.problems.total:
        first = smf.problems.detailed[0]
        where = f"track {first.track + 1}: " if first.track is not None else ""
        return (f" it could read ({smf.problems.total:,} problems while reading; first: "
                f"{where}{first.what})")
    return ""


def _score_from_tracks(smf: Smf, note_tracks: list[SmfTrack], include_drums: bool) -> Score:
    ticks_per_step = smf.ticks_per_beat / STEPS_PER_BEAT
    score = Score(notes=[], tempos=[])
    for track in smf.tracks:
        score.tempos += [(round(tick / ticks_per_step), tempo) for tick, tempo in track.tempos]
        score.time_signatures += [TimeSignature(round(tick / ticks_per_step), n, d)
                                  for tick, n, d in track.time_signatures]
    score.time_signatures.sort(key=lambda t: t.step)
    # A note still sounding at the end lasts to the last event of the piece, or, in a track
    # cut short by damage, to the damage (its note-off was lost there).
    piece_end_tick = max((t.end_tick for t in smf.tracks), default=0)
    end_ticks = [t.end_tick if t.damaged else piece_end_tick for t in note_tracks]
    # one timeline, in time order, tracks in file order at equal ticks (a stable sort)
    events = sorted(((*e, i) for i, t in enumerate(note_tracks) for e in t.notes),
                    key=lambda e: e[0])
    sounding: dict[tuple[int, int], tuple[int, int, int]] = {}  # (channel, pitch) ->
    for tick, channel, pitch, velocity, track in events:  # (tick, velocity, track)
        if channel == DRUM_CHANNEL and not include_drums:
            score.dropped_drum_notes += velocity > 0
            continue
        key = (channel, pitch)
        if key in sounding:  # any note event ends the note already sounding there
            start_tick, start_velocity, _ = sounding.pop(key)
            score.notes.append(_note(start_tick, tick, pitch, start_velocity, ticks_per_step))
        elif velocity == 0:
            score.unmatched_note_offs += 1
        if velocity > 0:
            sounding[key] = (tick, velocity, track)
    for (_, pitch), (start_tick, velocity, track) in sounding.items():  # still on at the end
        score.notes.append(_note(start_tick, max(end_ticks[track], start_tick), pitch, velocity,
                                 ticks_per_step))
    score.notes = _within_limit(sorted(score.notes), score)
    score.tempos = _clean_tempos(score.tempos)
    return score


def _within_limit(notes: list[Note], score: Score) -> list[Note]:
    """The notes that start before :data:`MAX_STEPS`, each ending by then."""
    kept = [n if n.end_step <= MAX_STEPS else Note(n.start_step, n.pitch, MAX_STEPS, n.velocity)
            for n in notes if n.start_step < MAX_STEPS]
    if len(kept) < len(notes):
        score.warnings.append(f"{len(notes) - len(kept):,} notes after bar {MAX_BARS:,} dropped "
                              "(a damaged delta time?)")
    return kept


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

    Every note-on is followed by its note-off; at one tick note-offs come first, so a
    repeated pitch is struck again cleanly. The result reads back with :func:`read_midi` to
    the same notes.
    """
    ticks_per_step = ticks_per_beat // STEPS_PER_BEAT
    conductor = [(step * ticks_per_step, 1, smf_write.set_tempo(tempo)) for step, tempo in tempos]
    conductor += [(ts.step * ticks_per_step, 1,
                   smf_write.time_signature(ts.numerator, ts.denominator))
                  for ts in time_signatures]
    chunks = [_chunk("qbdi", conductor)]
    for track in tracks:
        events = []
        for note in track.notes:
            velocity = max(1, min(127, note.velocity))
            events.append((note.start_step * ticks_per_step, 1,
                           bytes((0x90 | track.channel, note.pitch, velocity))))
            events.append((note.end_step * ticks_per_step, 0,
                           bytes((0x80 | track.channel, note.pitch, 0))))
        chunks.append(_chunk(track.name, events))
    header = smf_write.header_chunk(len(chunks), ticks_per_beat)
    Path(path).write_bytes(header + b"".join(chunks))


def _chunk(name: str, events: list[tuple[int, int, bytes]]) -> bytes:
    """A track chunk from ``(tick, order, bytes)``: by tick, then order (note-offs are 0)."""
    ordered = sorted(events, key=lambda event: (event[0], event[1]))
    return smf_write.track_chunk(smf_write.events_body(name, [(t, e) for t, _, e in ordered]))
