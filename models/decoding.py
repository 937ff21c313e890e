"""From the decoder's note probabilities to bars: decide notes, not cells.

The decoder gives, per step and pitch, the log-odds that the pitch *sounds* and that it is
*articulated* there (:mod:`qbdi.bars`). Deciding each of the 2496 cells by its own threshold
(:func:`qbdi.models.runtime.logits_to_bars`) lets the two disagree from step to step and
fragments notes into sixteenth-note jitter that no corpus has. :func:`decode_notes` instead
chooses, for each pitch, the most probable *path* over the bar's 16 steps through three
states, ``off``, ``onset`` (a note starts) and ``held`` (it continues), under the
decoder's own cell probabilities, with costs for note starts:

* the score of a path is the sum over steps of the log-probabilities of the cells it implies
  (``onset``: sounding and articulated; ``held``: sounding, not articulated; ``off``: neither),
  the sounding cells' log-odds shifted by ``sounding_bias`` and the articulated cells' by
  ``onset_bias`` (calibrations: positive = more voices, more note starts);
* a note can only continue (``held``) after ``onset`` or ``held``; at step 0 ``held`` means a
  note tied in from the bar before, at a cost of ``tie_cost``;
* starting a note costs ``start_cost`` nats and re-striking a sounding pitch ``restrike_cost``.

The best path per pitch is exact (Viterbi), computed for all bars and pitches at once: 15
vectorised max-plus steps and a backward pass, over the pitches that could sound at all. The
result is a valid bar: every sounding run starts with an articulation (or is tied in at step
0), and articulations always sound.

:func:`~qbdi.models.density.calibrate_biases` finds the two biases at which decoded bars
are as dense as a reference; ``qbdi train`` stores them in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qbdi.bars import ARTICULATED, BAR_SHAPE, N_PITCHES, SOUNDING, STEPS_PER_BAR
from qbdi.models.config import AnswerConfig

OFF, ONSET, HELD = 0, 1, 2
_BLOCKED = -1e9  # log-score of a forbidden transition (finite: no inf - inf = nan)


@dataclass(frozen=True, slots=True)
class NoteDecoding:
    """Parameters of :func:`decode`: ``method`` ``"notes"`` (:func:`decode_notes`),
    ``"voices"`` (:func:`decode_voices`) or ``"cells"`` (:func:`decode_cells`); the biases in
    nats (log-odds added to the cells), the costs in nats (>= 0, ``notes`` alone), the
    voices per sounding step and the steps a bar that must sound gets when nothing in it is
    likely (``voices`` alone: the corpus's sounding steps a bar)."""

    method: str = "notes"
    sounding_bias: float = 0.0
    onset_bias: float = 0.0
    start_cost: float = 1.0
    restrike_cost: float = 2.0
    tie_cost: float = 2.0
    min_voices: int = 1
    max_voices: int = 4
    sounding_steps: int = STEPS_PER_BAR

    def transitions(self) -> np.ndarray:
        """``(3, 3)`` log-score of moving from state ``i`` (row) to state ``j`` (column)."""
        table = np.zeros((3, 3), dtype=np.float32)
        table[OFF, ONSET] = -self.start_cost
        table[ONSET, ONSET] = table[HELD, ONSET] = -self.restrike_cost
        table[OFF, HELD] = _BLOCKED
        return table


def _state_scores(logits: np.ndarray, params: NoteDecoding) -> np.ndarray:
    """``(n, 2496)`` logits -> ``(16, 3, n * 78)`` per-step emission scores of the states,
    relative to ``off`` (log p(cells | state) - log p(cells | off)): onset ``ls + la``, held
    ``ls`` (``log sigmoid(x) - log sigmoid(-x) = x``), biases added."""
    n = len(logits)
    cells = logits.reshape(n, STEPS_PER_BAR, 2, N_PITCHES).transpose(1, 2, 0, 3)
    cells = cells.reshape(STEPS_PER_BAR, 2, n * N_PITCHES)
    scores = np.empty((STEPS_PER_BAR, 3, n * N_PITCHES), dtype=np.float32)
    scores[:, OFF] = 0.0
    np.add(cells[:, SOUNDING], params.sounding_bias, out=scores[:, HELD])
    np.add(cells[:, ARTICULATED], params.onset_bias, out=scores[:, ONSET])
    scores[:, ONSET] += scores[:, HELD]
    return scores


def decode_notes(logits: np.ndarray, params: NoteDecoding = NoteDecoding(),
                 out: np.ndarray | None = None) -> np.ndarray:
    """The best note path of every pitch of every bar: ``(n, 2496)`` logits ->
    ``(n, 16, 2, 78)`` bool bars (into ``out`` if given, of that shape).

    Guarantees: the exact best path of every pitch (ties broken towards ``off``);
    deterministic; every articulated cell sounds; every sounding run starts with an
    articulated cell or at step 0. Pitches where no note can beat silence are not searched:
    the cost is in the few pitches that may sound."""
    logits = np.asarray(logits, dtype=np.float32)
    n = len(logits)
    if out is None:
        out = np.zeros((n, *BAR_SHAPE), dtype=bool)
    else:
        out[:] = False
    if n == 0:
        return out
    emissions = _state_scores(logits, params)  # (16, 3, n * 78)
    # A silent path scores 0; a run of notes scores its onset cells minus a start or
    # re-strike cost each plus its held cells (a tied-in note: minus the tie cost), so a pitch
    # whose held cells are all <= 0 and whose onset cells pay no start or re-strike cannot
    # beat silence.
    cheapest = min(params.start_cost, params.restrike_cost)
    live = np.flatnonzero((emissions[:, HELD].max(axis=0) > 0)
                          | (emissions[:, ONSET].max(axis=0) > cheapest))
    if len(live) == 0:
        return out
    states = _best_paths(emissions[:, :, live], params)  # (16, m)
    bar, pitch = np.divmod(live, N_PITCHES)
    out[bar, :, SOUNDING, pitch] = (states != OFF).T
    out[bar, :, ARTICULATED, pitch] = (states == ONSET).T
    return out


def decode_cells(logits: np.ndarray, params: NoteDecoding = NoteDecoding(method="cells"),
                 out: np.ndarray | None = None) -> np.ndarray:
    """Each cell on its own, with the two calibrated biases: a pitch sounds where its
    sounding log-odds plus ``sounding_bias`` is positive, and is articulated where it sounds
    and its articulation log-odds plus ``onset_bias`` is positive. ``(n, 2496)`` logits ->
    ``(n, 16, 2, 78)`` bool (into ``out`` if given). Cheap (four vectorised operations);
    notes may fragment where the sounding cells flicker."""
    logits = np.asarray(logits, dtype=np.float32)
    n = len(logits)
    if out is None:
        out = np.empty((n, *BAR_SHAPE), dtype=bool)
    cells = logits.reshape(n, STEPS_PER_BAR, 2, N_PITCHES)
    np.greater(cells[:, :, SOUNDING], -params.sounding_bias, out=out[:, :, SOUNDING])
    np.greater(cells[:, :, ARTICULATED], -params.onset_bias, out=out[:, :, ARTICULATED])
    out[:, :, ARTICULATED] &= out[:, :, SOUNDING]
    return out


def decode_voices(logits: np.ndarray, params: NoteDecoding = NoteDecoding(method="voices"),
                  out: np.ndarray | None = None) -> np.ndarray:
    """The corpus's number of voices at every step: ``(n, 2496)`` logits ->
    ``(n, 16, 2, 78)`` bool (into ``out`` if given); :func:`voices` with every cell's
    logits at hand."""
    logits = np.asarray(logits, dtype=np.float32)
    cells = logits.reshape(len(logits), STEPS_PER_BAR, 2, N_PITCHES)

    def articulated_at(bar: np.ndarray, step: np.ndarray, pitch: np.ndarray) -> np.ndarray:
        return cells[bar, step, ARTICULATED, pitch]

    return voices(cells[:, :, SOUNDING], articulated_at, params, out)


ArticulatedAt = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(bar, step, pitch)`` index arrays -> the articulated cells' logits there, ``(m,)``."""


def voices(sounding_logits: np.ndarray, articulated_at: ArticulatedAt,
           params: NoteDecoding = NoteDecoding(method="voices"),
           out: np.ndarray | None = None, must_sound: np.ndarray | None = None) -> np.ndarray:
    """The corpus's number of voices at every step, from the sounding cells' logits
    ``(n, 16, 78)`` and the articulated cells' logits of the notes held on, which
    ``articulated_at`` gives where asked -> ``(n, 16, 2, 78)`` bool (into ``out`` if given).

    At each step the pitches whose sounding log-odds plus ``sounding_bias`` are positive are
    counted; where none is, the step is silent; elsewhere the count is clipped to
    ``[min_voices, max_voices]`` (the corpus's range, measured by ``qbdi train``) and that
    many of the most probable pitches sound. A sounding pitch is articulated where it was not
    sounding the step before, or where its articulation log-odds plus ``onset_bias`` are
    positive (a re-strike). A decoder unsure between voicings spreads its probability over
    more pitches than the corpus has voices, and a threshold then sounds them all (over-full
    chords) or none (gaps); this keeps the model's pitch choices and the corpus's texture.
    A bar flagged in ``must_sound`` (``(n,)`` bool: say, the player played in it) where no
    pitch is likely at any step is not left silent: its ``sounding_steps`` steps whose most
    probable pitch comes nearest sound (a dropout is not the corpus's texture).

    Guarantees: deterministic; articulated cells sound; at most ``max_voices`` sounding
    pitches per step (unless logits tie exactly), and at least ``min_voices`` at steps that
    sound; no bar flagged in ``must_sound`` is silent; ``articulated_at`` is asked only
    about cells that sound at a step and the step before."""
    n = len(sounding_logits)
    if out is None:
        out = np.empty((n, *BAR_SHAPE), dtype=bool)
    likely = sounding_logits > -params.sounding_bias  # (n, 16, 78)
    step_sounds = likely.any(axis=2)  # (n, 16)
    if must_sound is not None:
        _sound_silent_bars(step_sounds, sounding_logits, must_sound, params.sounding_steps)
    sounding = out[:, :, SOUNDING]
    if params.min_voices == params.max_voices:  # the usual case: one count, no ranking
        _mark_top(sounding_logits, params.max_voices, out=sounding)
        sounding &= step_sounds[:, :, None]
    else:  # the pitch ranked k-th most probable at a step sounds when k < its count there
        count = np.count_nonzero(likely, axis=2)  # (n, 16)
        voice_count = np.where(step_sounds,
                               np.clip(count, params.min_voices, params.max_voices), 0)
        rank = np.argsort(np.argsort(-sounding_logits, axis=2, kind="stable"), axis=2)
        np.less(rank, voice_count[:, :, None], out=sounding)
    articulated = out[:, :, ARTICULATED]
    articulated[:, 0] = sounding[:, 0]  # nothing is tied in: each bar is decided on its own
    np.greater(sounding[:, 1:], sounding[:, :-1], out=articulated[:, 1:])  # a new note
    bar, step, pitch = np.nonzero(sounding[:, 1:] & sounding[:, :-1])  # held on: re-struck?
    step += 1
    articulated[bar, step, pitch] = articulated_at(bar, step, pitch) > -params.onset_bias
    return out


def _sound_silent_bars(step_sounds: np.ndarray, sounding_logits: np.ndarray,
                       must_sound: np.ndarray, steps: int) -> None:
    """In place: in each bar of ``must_sound`` where no step sounds, the ``steps`` steps with
    the highest most-probable pitch sound (ties to the earliest step), at least one and at
    most all 16."""
    silent = np.flatnonzero(np.asarray(must_sound, dtype=bool) & ~step_sounds.any(axis=1))
    if len(silent) == 0:
        return
    nearest = np.argsort(-sounding_logits[silent].max(axis=2), axis=1, kind="stable")
    chosen = nearest[:, : max(1, min(steps, STEPS_PER_BAR))]
    step_sounds[silent[:, None], chosen] = True


def _mark_top(logits: np.ndarray, k: int, out: np.ndarray) -> None:
    """``out`` (bool, the shape of ``logits``) True at the ``k`` largest values of each row
    of the last axis: those at least its ``k``-th largest (a value tied with that one too;
    the decoder's float logits do not tie in practice)."""
    k = min(k, logits.shape[-1])
    kth_largest = np.partition(logits, -k, axis=-1)[..., -k, None]
    np.greater_equal(logits, kth_largest, out=out)


def note_decoding(answer: AnswerConfig) -> NoteDecoding:
    """The :func:`decode` parameters an :class:`AnswerConfig` stores (its ``threshold``
    method has none: see :func:`answer_bars`)."""
    voices = (answer.min_voices + answer.max_voices) / 2
    steps = (STEPS_PER_BAR if answer.corpus_sounding_per_bar is None
             else round(answer.corpus_sounding_per_bar / voices))
    return NoteDecoding(answer.method, answer.sounding_bias, answer.onset_bias,
                        answer.start_cost, answer.restrike_cost, answer.tie_cost,
                        answer.min_voices, answer.max_voices, steps)


def answer_bars(logits: np.ndarray, answer: AnswerConfig) -> np.ndarray:
    """``(n, 2496)`` logits -> ``(n, 16, 2, 78)`` bool bars, decoded as ``answer`` says:
    its method with its calibrated parameters, or each cell ``p > threshold``."""
    if answer.method == "threshold":
        threshold = np.float32(np.log(answer.threshold / (1.0 - answer.threshold)))
        return (np.asarray(logits) > threshold).reshape(len(logits), *BAR_SHAPE)
    return decode(logits, note_decoding(answer))


def decode(logits: np.ndarray, params: NoteDecoding, out: np.ndarray | None = None
           ) -> np.ndarray:
    """:func:`decode_notes`, :func:`decode_voices` or :func:`decode_cells`, by
    ``params.method``."""
    if params.method == "notes":
        return decode_notes(logits, params, out)
    if params.method == "voices":
        return decode_voices(logits, params, out)
    if params.method == "cells":
        return decode_cells(logits, params, out)
    raise ValueError("decoding method must be 'notes', 'voices' or 'cells', "
                     f"got {params.method!r}")


def _best_paths(emissions: np.ndarray, params: NoteDecoding) -> np.ndarray:
    """Viterbi over ``(16, 3, m)`` emission scores -> ``(16, m)`` int8 states.

    The transitions are few enough to write out: ``off`` follows anything (free), ``held``
    follows ``onset`` or ``held`` (free), ``onset`` follows ``off`` (start cost) or a
    sounding state (re-strike cost)."""
    off, onset, held = (emissions[0, k].copy() for k in (OFF, ONSET, HELD))
    held -= params.tie_cost
    m = off.shape[0]
    # back-pointers per step: was the better sounding state held? did off / onset come
    # from off rather than from the better sounding state?
    sounding_was_held = np.empty((STEPS_PER_BAR, m), dtype=bool)
    off_from_off = np.empty((STEPS_PER_BAR, m), dtype=bool)
    onset_from_off = np.empty((STEPS_PER_BAR, m), dtype=bool)
    restrike_gap = params.restrike_cost - params.start_cost
    for step in range(1, STEPS_PER_BAR):
        held_better = np.greater(held, onset, out=sounding_was_held[step])
        sounding = np.where(held_better, held, onset)
        np.greater_equal(off, sounding, out=off_from_off[step])
        # onset from off scores off - start; from sounding, sounding - restrike
        from_off = np.greater_equal(off, sounding - restrike_gap, out=onset_from_off[step])
        new_onset = np.where(from_off, off - params.start_cost,
                             sounding - params.restrike_cost)
        new_onset += emissions[step, ONSET]
        off = np.maximum(off, sounding)
        held = sounding + emissions[step, HELD]
        onset = new_onset
    final = np.argmax(np.stack([off, onset, held]), axis=0).astype(np.int8)
    states = np.empty((STEPS_PER_BAR, m), dtype=np.int8)
    state = final
    for step in range(STEPS_PER_BAR - 1, 0, -1):
        states[step] = state
        prev_sounding = np.where(sounding_was_held[step], HELD, ONSET)
        state = np.where(state == HELD, prev_sounding,
                         np.where(state == OFF,
                                  np.where(off_from_off[step], OFF, prev_sounding),
                                  np.where(onset_from_off[step], OFF, prev_sounding)))
    states[0] = state
    return states
