"""Training corpora: a folder of MIDI files, or a corpus that ships inside an installed package.

A corpus is a list of :class:`Piece` (a name and its bars). Only pieces in 4/4, 2/2 or 2/4
are used for training (their bars fill whole 16-step frames); other metres are skipped and
counted, because the model learns bar structure and 3/4 cut into 4/4 frames would teach it
a wrong one. Names: ``music21:NAME`` for a composer or collection of the music21 corpus, read
offline (needs the ``train`` extra): ``music21:bach`` (the Bach chorales),
``music21:ryansMammoth`` (Ryan's Mammoth Collection of fiddle tunes), ... A file holding
several works (an ABC tune book) gives one piece per work.

:func:`load_reference_music` reads a bounded, seeded sample of *other* music21 collections:
the negatives of a corpus's style measure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qbdi.bars import STEPS_PER_BEAT, Note, notes_to_bars
from qbdi.errors import CorpusError, MetreError, MidiFileError
from qbdi.midifile import read_midi

TRAINABLE_METRES = {"4/4", "2/2", "2/4"}
MIDI_SUFFIXES = {".mid", ".midi", ".smf"}


@dataclass(frozen=True, slots=True)
class Piece:
    name: str
    bars: np.ndarray  # (n_bars, 16, 2, 78) bool


@dataclass(slots=True)
class Corpus:
    name: str
    pieces: list[Piece]
    skipped: dict[str, str]  # piece name -> why it was left out

    @property
    def n_bars(self) -> int:
        return sum(len(p.bars) for p in self.pieces)


def load_corpus(spec: str, progress: Callable[[int, int], None] | None = None, *,
                max_files: int | None = None, seed: int = 0) -> Corpus:
    """Load ``spec``: a folder (searched recursively for MIDI files) or ``music21:NAME``.

    ``max_files``: read at most that many files of a music21 collection, a sample drawn with
    ``seed`` (None: all)."""
    if spec.startswith("music21:"):
        return _load_music21(spec.split(":", 1)[1], progress, max_files, seed)
    folder = Path(spec)
    if not folder.is_dir():
        raise CorpusError(f"corpus {spec!r}: not a folder and not a known name (try music21:bach)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES)
    if not files:
        raise CorpusError(f"corpus {spec!r}: no MIDI files found")
    pieces, skipped = [], {}
    for index, path in enumerate(files):
        try:
            score = read_midi(path)
            score.check_metre("strict")
        except (MidiFileError, MetreError) as err:
            skipped[path.name] = str(err)
            continue
        pieces.append(Piece(path.stem, notes_to_bars(score.notes)))
        if progress:
            progress(index + 1, len(files))
    return _checked(Corpus(spec, pieces, skipped))


def load_queries(folder: str | Path) -> dict[str, np.ndarray]:
    """Every MIDI file of ``folder`` as query bars, by file stem, sorted: any metre, cut into
    16-step frames (the improviser answers frames, whatever the metre). Unreadable files
    raise :class:`CorpusError`."""
    files = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in MIDI_SUFFIXES)
    if not files:
        raise CorpusError(f"queries {str(folder)!r}: no MIDI files found")
    try:
        return {path.stem: notes_to_bars(read_midi(path).notes) for path in files}
    except MidiFileError as err:
        raise CorpusError(f"queries: {err}") from err


def _checked(corpus: Corpus) -> Corpus:
    if corpus.n_bars == 0:
        raise CorpusError(f"corpus {corpus.name!r}: no usable bars ({len(corpus.skipped)} skipped)")
    return corpus


def _load_music21(name: str, progress: Callable[[int, int], None] | None,
                  max_files: int | None = None, seed: int = 0) -> Corpus:
    try:
        from music21 import converter
        from music21 import corpus as m21corpus
    except ImportError as err:
        raise CorpusError(
            "music21 corpora need the 'train' extra: pip install 'qbdi[train]'"
        ) from err
    paths = sorted(str(p) for p in m21corpus.getComposer(name))
    if not paths:
        raise CorpusError(f"music21 corpus has no works for {name!r}")
    if max_files is not None and len(paths) > max_files:
        chosen = np.random.default_rng(seed).choice(len(paths), size=max_files, replace=False)
        paths = [paths[i] for i in sorted(chosen)]
    pieces, skipped = [], {}
    for index, path in enumerate(paths):
        works = _works(converter.parse(path))
        for number, work in enumerate(works):
            piece_name = Path(path).name + (f"#{number + 1}" if len(works) > 1 else "")
            try:
                pieces.append(Piece(piece_name, notes_to_bars(_music21_notes(work,
                                                                              piece_name))))
            except MetreError as err:
                skipped[piece_name] = str(err)
        if progress:
            progress(index + 1, len(paths))
    return _checked(Corpus(f"music21:{name}", pieces, skipped))


def _works(parsed) -> list:
    """The scores of a parsed file: several for an opus (an ABC tune book), else one."""
    from music21 import stream

    return list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]


def _music21_notes(score, name: str) -> list[Note]:
    """Notes of one music21 work, shifted so barlines fall on multiples of 16 steps."""
    from music21 import meter, stream

    metres = {ts.ratioString for ts in score.recurse().getElementsByClass(meter.TimeSignature)}
    if not metres or not metres <= TRAINABLE_METRES:
        raise MetreError(f"{name}: metre {sorted(metres)} is not 4/4")
    score = score.stripTies()
    first_part = score.parts[0] if score.parts else score
    measures = list(first_part.getElementsByClass(stream.Measure))
    # A pickup bar (anacrusis) is shorter than a full bar: shift everything so the first
    # full bar starts on a frame boundary.
    has_pickup = bool(measures) and measures[0].number == 0
    pickup_quarters = measures[0].duration.quarterLength if has_pickup else 0.0
    shift_quarters = (4.0 - pickup_quarters) % 4.0 if pickup_quarters % 4 else 0.0
    notes = []
    for element in score.flatten().notes:
        start_quarters = float(element.offset) + shift_quarters
        start_step = round(start_quarters * STEPS_PER_BEAT)
        end_step = max(
            round((start_quarters + float(element.duration.quarterLength)) * STEPS_PER_BEAT),
            start_step + 1,
        )
        velocity = element.volume.velocity or 80
        for pitch in element.pitches:
            notes.append(Note(start_step, int(pitch.midi), end_step, int(velocity)))
    return sorted(set(notes))


REFERENCE_COLLECTIONS: dict[str, int] = {
    "bach": 60, "ryansMammoth": 80, "oneills1850": 2, "essenFolksong": 1, "airdsAirs": 1,
    "miscFolk": 1, "josquin": 8, "trecento": 40, "monteverdi": 25, "palestrina": 0,
    "haydn": 3, "mozart": 4, "schumann_robert": 3,
}
"""Other music for a style measure's negatives: music21 collection -> files read (a seeded
sample). Folk tunes and songs, Renaissance and medieval polyphony, chorales, quartets and
songs; chosen to parse in a few minutes. Palestrina is in 4/2, which the bar frames do not
take, so it reads no file."""


def load_reference_music(exclude: set[str], seed: int = 0,
                         progress: Callable[[str], None] | None = None
                         ) -> dict[str, list[Piece]]:
    """The pieces of each collection of :data:`REFERENCE_COLLECTIONS` not in ``exclude``
    (collection names, e.g. the corpus's own and those of the same genre); collections with
    no usable piece are left out. ``progress(name)`` as each collection starts."""
    pieces: dict[str, list[Piece]] = {}
    for name, files in REFERENCE_COLLECTIONS.items():
        if name in exclude or files == 0:
            continue
        if progress:
            progress(name)
        try:
            pieces[name] = load_corpus(f"music21:{name}", max_files=files, seed=seed).pieces
        except CorpusError:  # no 4/4 work among the files drawn
            continue
    return pieces
