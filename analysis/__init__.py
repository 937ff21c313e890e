"""Music information dynamics: Variable Markov Oracle, information rate and motifs.

Pure numpy (matplotlib only in :mod:`qbdi.analysis.figures`, imported lazily); no MIDI or
OSC. The oracle reproduces vmo's (``vmo.find_threshold`` defaults) exactly, faster.
"""

from qbdi.analysis.distances import cosine_distance, cosine_matrix, distance_matrix
from qbdi.analysis.errors import AnalysisInputError
from qbdi.analysis.features import chroma
from qbdi.analysis.incremental import IncrementalOracle, Step
from qbdi.analysis.motifs import Motif, find_motifs
from qbdi.analysis.oracle import Oracle, OracleBuilder, build_oracle, information_rate
from qbdi.analysis.report import AnalysisReport, MotifReport, analyze
from qbdi.analysis.sweep import best_threshold, default_thresholds, ir_over_time, ir_sweep
from qbdi.analysis.tonnetz import project, tonnetz_distance, tonnetz_matrix

__all__ = [
    "AnalysisInputError",
    "AnalysisReport",
    "IncrementalOracle",
    "Motif",
    "MotifReport",
    "Oracle",
    "OracleBuilder",
    "Step",
    "analyze",
    "best_threshold",
    "build_oracle",
    "chroma",
    "cosine_distance",
    "cosine_matrix",
    "default_thresholds",
    "distance_matrix",
    "find_motifs",
    "information_rate",
    "ir_over_time",
    "ir_sweep",
    "project",
    "tonnetz_distance",
    "tonnetz_matrix",
]
