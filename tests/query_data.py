"""Where the tests' query MIDI files are.

Ours, in ``tests/data/queries`` (written by ``tests/data/make_queries.py``), serve every
test. The real queries (Prokofiev, in ``../shared/data/queries`` beside the repository, or
wherever ``QBDI_SHARED_QUERIES`` points) are not part of the repository: only
``tests/test_analysis_realdata.py`` adds them, and skips them, saying why, where absent.
"""

from __future__ import annotations

import os
from pathlib import Path

QUERIES = Path(__file__).resolve().parent / "data" / "queries"
CHORDS_MELODY = "chords-melody-4-4.mid"  # 20 bars of 4/4, two tracks, three tempos
MARCH = "march-2-4.mid"  # 20 bars of 2/4: 10 frames of 16 sixteenths
SIX_EIGHT = "barcarolle-6-8.mid"  # 12 bars of 6/8 then 4 of 3/4: 12 frames
DYNAMICS_PEDAL = "dynamics-pedal-4-4.mid"  # 40 bars of 4/4, velocities 20-127, pedal
POP = "pop-piano-4-4.mid"  # 16 bars of a pop piano loop, a type-0 file

SHARED_QUERIES = Path(os.environ.get(
    "QBDI_SHARED_QUERIES",
    Path(__file__).resolve().parents[2] / "shared" / "data" / "queries"))


def shared_query_files() -> list[Path]:
    """The real query files, sorted; empty where the folder is absent."""
    return sorted(SHARED_QUERIES.glob("*.mid")) if SHARED_QUERIES.is_dir() else []
