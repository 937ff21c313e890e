"""Write the small query MIDI files the tests use (``tests/data/queries/*.mid``).

Our own short pieces, simple and deterministic (no random numbers), each a few KB, so that
a clean clone runs the whole suite without ``../shared``. They cover what the tests need:

========================  =====  ======  ==================================================
file                      metre  frames  what it is for
========================  =====  ======  ==================================================
chords-melody-4-4.mid     4/4    20      a melody over block chords, phrases AABA + coda;
                                         two tracks; a ritardando (three tempos)
march-2-4.mid             2/4    10      20 bars of 2/4 (two fill one 16-step frame);
                                         oom-pah bass under a line of eighths
barcarolle-6-8.mid        6/8    12      12 bars of 6/8, then 4 of 3/4, two tempos: a
                                         metre that is not 4/4 (warned, refused by strict)
dynamics-pedal-4-4.mid    4/4    40      velocities from 20 to 127 (a long crescendo and
                                         diminuendo, accents), sustain pedal every bar, a
                                         conductor track with five tempos
pop-piano-4-4.mid         4/4    16      a pop piano loop (I-V-vi-IV, syncopated block
                                         chords at one loudness): out of the corpus' style;
                                         a type-0 file
========================  =====  ======  ==================================================

Run ``python tests/data/make_queries.py`` to rewrite them (``--out DIR`` elsewhere);
``tests/test_data_files.py`` checks that the committed files are what this script writes.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import mido

TICKS_PER_BEAT = 480  # a beat is a quarter note
OUT = Path(__file__).resolve().parent / "queries"


@dataclass(frozen=True)
class N:
    """A note in quarter-note beats from the start of the piece."""

    start_beats: float
    length_beats: float
    pitch: int
    velocity: int


def ticks(beats: float) -> int:
    return round(beats * TICKS_PER_BEAT)


def tempo(bpm: float) -> int:
    return round(60_000_000 / bpm)


def track(name: str, notes: Iterable[N] = (), metas: Iterable[tuple[float, mido.MetaMessage]] = (),
          controls: Iterable[tuple[float, int, int]] = (), channel: int = 0) -> mido.MidiTrack:
    """A track from notes, meta messages and control changes ``(beats, control, value)``.

    At one tick: meta messages, then note-offs, then control changes, then note-ons.
    """
    events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []
    for beats, meta in metas:
        events.append((ticks(beats), 0, meta))
    for n in notes:
        events.append((ticks(n.start_beats + n.length_beats), 1,
                       mido.Message("note_off", channel=channel, note=n.pitch, velocity=64)))
        events.append((ticks(n.start_beats), 3, mido.Message(
            "note_on", channel=channel, note=n.pitch, velocity=n.velocity)))
    for beats, control, value in controls:
        events.append((ticks(beats), 2, mido.Message(
            "control_change", channel=channel, control=control, value=value)))
    events.sort(key=lambda e: (e[0], e[1], getattr(e[2], "note", -1)))
    out = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
    last = 0
    for tick, _, message in events:
        out.append(message.copy(time=tick - last))
        last = tick
    out.append(mido.MetaMessage("end_of_track", time=0))
    return out


def time_signature(numerator: int, denominator: int) -> mido.MetaMessage:
    return mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator)


def save(path: Path, tracks: list[mido.MidiTrack], midi_type: int = 1) -> None:
    midi = mido.MidiFile(type=midi_type, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.extend(tracks)
    midi.save(path)


# -- chords-melody-4-4: a melody over block chords ------------------------------------------
# chord name -> (bass, the three notes of the block chord)
CHORDS = {"C": (48, (55, 60, 64)), "Am": (45, (57, 60, 64)), "F": (41, (57, 60, 65)),
          "G": (43, (55, 59, 62)), "Em": (40, (55, 59, 64)), "Dm": (38, (57, 62, 65)),
          "G7": (43, (55, 59, 65))}
# One bar of melody: (beat in the bar, length in beats, pitch).
A_PHRASE = [
    [(0, 1, 76), (1, 1, 79), (2, 1.5, 84), (3.5, 0.5, 83)],
    [(0, 1, 81), (1, 0.5, 79), (1.5, 0.5, 77), (2, 2, 76)],
    [(0, 1, 77), (1, 1, 81), (2, 1, 79), (3, 1, 77)],
    [(0, 1.5, 74), (1.5, 0.5, 76), (2, 2, 79)],
]
CADENCE = [(0, 1, 74), (1, 1, 71), (2, 2, 72)]
B_PHRASE = [
    [(0, 0.5, 79), (0.5, 0.5, 78), (1, 1, 79), (2, 2, 83)],
    [(0, 0.5, 84), (0.5, 0.5, 83), (1, 1, 81), (2, 2, 76)],
    [(0, 1, 77), (1, 1, 81), (2, 1, 86), (3, 1, 84)],
    [(0, 2, 83), (2, 1, 79), (3, 1, 77)],
]
CODA = [[(0, 1, 81), (1, 1, 77), (2, 2, 72)], [(0, 1, 79), (1, 1, 74), (2, 2, 71)],
        [(0, 4, 72)], [(0, 4, 84)]]
FORM = (  # (harmony, melody) per bar: A A B A coda
    list(zip(["C", "Am", "F", "G"], A_PHRASE, strict=True))
    + list(zip(["C", "Am", "F", "G"], [*A_PHRASE[:3], CADENCE], strict=True))
    + list(zip(["Em", "Am", "Dm", "G7"], B_PHRASE, strict=True))
    + list(zip(["C", "Am", "F", "G"], [*A_PHRASE[:3], CADENCE], strict=True))
    + list(zip(["F", "G", "C", "C"], CODA, strict=True))
)


def chords_melody() -> list[mido.MidiTrack]:
    right, left = [], []
    for bar, (harmony, melody) in enumerate(FORM):
        lift = 8 if 8 <= bar < 12 else (-10 if bar >= 16 else 0)  # louder B, softer coda
        for beat, length, pitch in melody:
            right.append(N(4 * bar + beat, length, pitch, (84 if beat == 0 else 74) + lift))
        bass, block = CHORDS[harmony]
        left.append(N(4 * bar, 4, bass, 66 + lift))
        for beat in (0, 2):
            left += [N(4 * bar + beat, 2, p, (60 if beat == 0 else 54) + lift) for p in block]
    metas = [(0, time_signature(4, 4)), (0, mido.MetaMessage("set_tempo", tempo=tempo(120))),
             (64, mido.MetaMessage("set_tempo", tempo=tempo(108))),
             (72, mido.MetaMessage("set_tempo", tempo=tempo(92)))]
    return [track("right hand", right, metas), track("left hand", left)]


# -- march-2-4: oom-pah under eighths --------------------------------------------------------
MARCH_CHORDS = {"G": (43, (59, 62, 67)), "D7": (38, (57, 60, 66)), "C": (48, (60, 64, 67)),
                "D": (50, (57, 62, 66))}
MARCH_LINES = {"G": (79, 74, 71, 74), "D7": (78, 74, 72, 69), "C": (76, 72, 79, 76),
               "D": (78, 81, 78, 74)}
MARCH_FORM = ["G", "D7", "G", "D7", "G", "C", "D", "G"] * 2 + ["C", "G", "D7", "G"]


def march() -> list[mido.MidiTrack]:
    right, left = [], []
    for bar, harmony in enumerate(MARCH_FORM):  # a 2/4 bar is two beats
        line = MARCH_LINES[harmony]
        if bar == len(MARCH_FORM) - 1:
            line = (line[0],)  # the last bar ends on one long note
        for i, pitch in enumerate(line):
            length = 0.5 if len(line) > 1 else 2
            right.append(N(2 * bar + 0.5 * i, length, pitch, 88 if i % 2 == 0 else 72))
        bass, block = MARCH_CHORDS[harmony]
        left.append(N(2 * bar, 0.5, bass, 80))
        left += [N(2 * bar + 1, 0.5, p, 62) for p in block]
    metas = [(0, time_signature(2, 4)), (0, mido.MetaMessage("set_tempo", tempo=tempo(120)))]
    return [track("right hand", right, metas), track("left hand", left)]


# -- barcarolle-6-8: a rocking bass, then a turn to 3/4 ---------------------------------------
# chord -> (root, fifth, octave, tenth) of the rocking figure
ROCK = {"Am": (45, 52, 57, 60), "Dm": (38, 45, 50, 53), "E": (40, 47, 52, 56),
        "E7": (40, 47, 50, 56), "F": (41, 48, 53, 57)}
SIX_EIGHT_FORM = ["Am", "Dm", "E", "Am", "F", "Dm", "E", "Am", "Am", "Dm", "E7", "Am"]
SIX_EIGHT_TUNE = [(76, 74), (77, 74), (71, 74), (72, 76), (77, 81), (77, 74), (76, 71),
                  (69, 72), (81, 79), (77, 81), (80, 76), (81, 81)]
THREE_FOUR_FORM = ["F", "E", "Am", "Am"]
THREE_FOUR_TUNE = [(77, 76, 74), (76, 74, 71), (72, 71, 69), (69, 69, 69)]


def barcarolle() -> list[mido.MidiTrack]:
    right, left = [], []
    for bar, (harmony, (first, second)) in enumerate(
            zip(SIX_EIGHT_FORM, SIX_EIGHT_TUNE, strict=True)):
        start = 3 * bar  # a 6/8 bar is three quarter-note beats: six eighths
        root, fifth, octave, tenth = ROCK[harmony]
        for i, pitch in enumerate((root, fifth, octave, tenth, octave, fifth)):
            left.append(N(start + 0.5 * i, 0.5, pitch, 58 if i % 3 == 0 else 48))
        right.append(N(start, 1.5, first, 80))  # two dotted quarters
        right.append(N(start + 1.5, 1.5, second, 70))
    for bar, (harmony, tune) in enumerate(zip(THREE_FOUR_FORM, THREE_FOUR_TUNE, strict=True)):
        start = 36 + 3 * bar
        root, fifth, octave, _ = ROCK[harmony]
        left.append(N(start, 1, root, 60))
        left += [N(start + beat, 1, p, 50) for beat in (1, 2) for p in (fifth, octave)]
        right += [N(start + beat, 1, pitch, 76 - 4 * beat) for beat, pitch in enumerate(tune)]
    metas = [(0, time_signature(6, 8)), (0, mido.MetaMessage("set_tempo", tempo=tempo(90))),
             (36, time_signature(3, 4)), (36, mido.MetaMessage("set_tempo", tempo=tempo(100)))]
    return [track("right hand", right, metas), track("left hand", left)]


# -- dynamics-pedal-4-4: velocities and the sustain pedal -----------------------------------
# chord -> the eight eighths of the left hand's broken chord
BROKEN = {"Dm": (38, 45, 50, 53, 57, 53, 50, 45), "Gm": (43, 50, 55, 58, 62, 58, 55, 50),
          "C7": (36, 43, 48, 52, 58, 52, 48, 43), "F": (41, 48, 53, 57, 60, 57, 53, 48),
          "Bb": (46, 53, 58, 62, 65, 62, 58, 53), "A7": (45, 52, 57, 61, 67, 61, 57, 52)}
PEDAL_FORM = ["Dm", "Gm", "C7", "F", "Bb", "Gm", "A7", "Dm"]  # five times: 40 bars
PEDAL_TUNES = [  # two melodies over the cycle, in turn
    [[(0, 2, 74), (2, 2, 77)], [(0, 3, 79), (3, 1, 77)], [(0, 2, 76), (2, 2, 72)],
     [(0, 4, 77)], [(0, 2, 74), (2, 1, 77), (3, 1, 82)], [(0, 2, 81), (2, 2, 79)],
     [(0, 2, 76), (2, 1, 73), (3, 1, 76)], [(0, 4, 74)]],
    [[(0, 1, 81), (1, 1, 77), (2, 2, 74)], [(0, 2, 74), (2, 2, 79)], [(0, 2, 82), (2, 2, 79)],
     [(0, 2, 81), (2, 2, 77)], [(0, 1, 77), (1, 1, 74), (2, 2, 82)], [(0, 4, 79)],
     [(0, 1, 73), (1, 1, 76), (2, 2, 79)], [(0, 4, 74)]],
]
PEDAL_BARS = 40


def loudness(bar: float) -> int:
    """A crescendo from pp over the first half, a diminuendo back over the second."""
    rise = bar / (PEDAL_BARS / 2) if bar < PEDAL_BARS / 2 else (PEDAL_BARS - bar) / (
        PEDAL_BARS / 2)
    return round(24 + 90 * rise)


def dynamics_pedal() -> tuple[list[mido.MidiTrack], int]:
    right, left, pedal = [], [], []
    for bar in range(PEDAL_BARS):
        harmony = PEDAL_FORM[bar % 8]
        for i, pitch in enumerate(BROKEN[harmony]):
            accent = 10 if i == 0 else (4 if i == 4 else -(i % 2) * 6)
            left.append(N(4 * bar + 0.5 * i, 0.5, pitch,
                          max(20, loudness(bar + i / 8) - 14 + accent)))
        for beat, length, pitch in PEDAL_TUNES[(bar // 8) % 2][bar % 8]:
            right.append(N(4 * bar + beat, length, pitch,
                           min(127, loudness(bar + beat / 4) + 12 + (4 if beat == 0 else 0))))
        pedal += [(4 * bar, 64, 0), (4 * bar + 0.0625, 64, 127)]  # change the pedal each bar
    pedal.append((4 * PEDAL_BARS, 64, 0))
    metas = [(0, time_signature(4, 4))] + [
        (4 * bar, mido.MetaMessage("set_tempo", tempo=tempo(bpm)))
        for bar, bpm in ((0, 72), (8, 76), (16, 80), (24, 84), (36, 70))]
    conductor = track("tempo", metas=metas)
    return [conductor, track("right hand", right), track("left hand", left, controls=pedal)], 1


# -- pop-piano-4-4: out of style -------------------------------------------------------------
POP_CHORDS = {"G": (43, (67, 71, 74)), "D": (38, (66, 69, 74)), "Em": (40, (67, 71, 76)),
              "C": (36, (67, 72, 76))}
POP_FORM = ["G", "D", "Em", "C"] * 4


def pop_piano() -> tuple[list[mido.MidiTrack], int]:
    notes = []
    for bar, harmony in enumerate(POP_FORM):
        bass, block = POP_CHORDS[harmony]
        for beat, length in ((0, 1.5), (1.5, 1.5), (3, 1)):  # 3 + 3 + 2 eighths
            notes += [N(4 * bar + beat, length, p, 100) for p in block]
        for beat, length in ((0, 2.5), (2.5, 1.5)):
            notes += [N(4 * bar + beat, length, p, 100) for p in (bass, bass + 12)]
    metas = [(0, time_signature(4, 4)), (0, mido.MetaMessage("set_tempo", tempo=tempo(100)))]
    return [track("piano", notes, metas)], 0


PIECES = {
    "chords-melody-4-4.mid": lambda: (chords_melody(), 1),
    "march-2-4.mid": lambda: (march(), 1),
    "barcarolle-6-8.mid": lambda: (barcarolle(), 1),
    "dynamics-pedal-4-4.mid": dynamics_pedal,
    "pop-piano-4-4.mid": pop_piano,
}


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in PIECES.items():
        tracks, midi_type = make()
        save(out / name, tracks, midi_type)
        paths.append(out / name)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder (default {OUT})")
    for path in write_all(parser.parse_args().out):
        print(f"{path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
