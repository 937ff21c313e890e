"""A MIDI file as read by :mod:`qbdi.smf`: its tracks' events on a timeline of ticks."""

from __future__ import annotations

from dataclasses import dataclass, field

from qbdi.smf_problems import Problems


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


