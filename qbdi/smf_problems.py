"""What reading a damaged MIDI file skipped or changed, described a few at a time and
counted by kind, so a file with 10,000 bad events costs a handful of lines."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

MAX_DETAILED = 5  # problems described one by one; the rest are counted


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
