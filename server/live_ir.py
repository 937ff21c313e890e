"""The live information-rate feed: while serving, one oracle over the player's bars and one
over our answers grow by a bar at a time; the IR of each new frame and every motif just
completed go out over OSC (``/qbdi/ir/in``, ``/qbdi/ir/out``, ``/qbdi/motif``).

Choices, and why:

* **Features**: chroma per beat (``frames_per_bar`` 4; 1 gives one frame per bar) from the
  bar arrays, compared with the Tonnetz distance, on both sides. One feature for both
  makes the two curves comparable, and it exists in every mode; the decoder's latent
  (``Answer.z_d``) is None in echo and mute modes and has no counterpart on the input side.
  An output bar is the answer the improviser returned (notes dropped as late are still in
  it); a bar with no answer (mute, silence policy) is a silent bar.
* **Threshold**: an incremental oracle cannot re-threshold its past, so it is fixed:
  ``live_ir.threshold`` in the preset, ``/qbdi/ir/threshold`` live. The default, 0.68, is
  the median of the best thresholds (highest total IR in :func:`qbdi.analysis.analyze`'s
  sweep) of the ten shipped query files at beat chroma (they range from 0.36 to 0.94);
  ``benchmarks/bench_live_ir.py`` prints them. Any change of the settings starts both
  oracles afresh.
* **Never delaying the answer**: the loop thread calls :meth:`LiveIr.feed` only after the
  bar's answer is scheduled, and ``feed`` only copies the two bars and puts them on a
  bounded queue (a few microseconds); a worker thread owns the oracles and sends the
  messages, releasing the GIL between frames so the loop thread never waits long for it.
  When the queue is full the bar is left out of the feed and counted (``dropped_bars``),
  never waited for.
* **Bounded memory**: each oracle holds at most ``window_bars`` bars. From half the window
  on, every frame also goes into a second oracle; when the next bar would not fit, that
  one takes over, holding the last half of the window. So no bar ever pays for a rebuild
  (at most two appends per frame), and a motif can still span the cut.

Guarantees: the IR sent for a frame equals the last value of the offline
:func:`qbdi.analysis.ir_over_time` over the frames the oracle holds up to and including
that frame (Tonnetz distances, chroma normalisation, the same threshold): the IR as known
when the frame arrived. (An offline analysis of a longer stretch can give an earlier frame
a higher IR: inside a repeated block, every frame gets the length of the whole block.)
Bars that the loop skipped or the feed dropped are absent from the oracle.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from qbdi.analysis.features import chroma
from qbdi.analysis.incremental import IncrementalOracle
from qbdi.analysis.motifs import Motif
from qbdi.bars import BAR_SHAPE
from qbdi.server.events import AnsweredBar, LoopListener
from qbdi.server.osc import IR_IN, IR_OUT, MOTIF
from qbdi.settings import LiveIrSettings, Preset

log = logging.getLogger(__name__)

BEATS_PER_BAR = 4
QUEUE_BARS = 16  # bars waiting for the worker before the feed drops one (it never waits)
SILENT_BAR = np.zeros(BAR_SHAPE, dtype=bool)
SILENT_BAR.flags.writeable = False

Send = Callable[[str, list[Any]], None]


def _let_the_loop_run() -> None:
    """Release the GIL between frames: a worker holding it would make the loop thread wait
    up to the interpreter's switch interval (5 ms) to send a due note."""
    time.sleep(0)


@dataclass(frozen=True, slots=True)
class MotifFound:
    """A repeat that just ended: ``length_beats`` beats that first began at
    ``earlier_start_beat`` and again at ``start_beat`` (beats counted from bar 0)."""

    length_beats: int
    earlier_start_beat: int
    start_beat: int


class IrStream:
    """One side's oracle over a stream of bars, windowed. Owned by one thread."""

    def __init__(self, settings: LiveIrSettings,
                 between_frames: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self._between_frames = between_frames
        self.frames_per_bar = settings.frames_per_bar
        self.beats_per_frame = BEATS_PER_BAR // settings.frames_per_bar
        self.window_frames = settings.window_bars * settings.frames_per_bar
        # A motif must last at least a bar, and at least two frames.
        self.min_motif_frames = max(2, settings.frames_per_bar)
        self.frames: list[np.ndarray] = []  # (12,) chroma of each frame the oracle holds
        self.beats: list[int] = []  # the beat each of those frames starts on
        self.restarts = 0
        self._oracle = self._new_oracle()
        # Frames from this index on also go into the shadow oracle, which takes over when
        # the window is full.
        self._shadow_from = self.window_frames - self.window_frames // 2
        self._shadow: IncrementalOracle | None = None

    def _new_oracle(self) -> IncrementalOracle:
        return IncrementalOracle(self.settings.threshold, metric="tonnetz",
                                 min_length_frames=self.min_motif_frames)

    def add(self, bar_index: int, bar: np.ndarray) -> tuple[list[float], list[MotifFound]]:
        """Add bar ``bar_index`` (``(16, 2, 78)``): the IR in bits of each of its frames,
        and the motifs its frames completed."""
        frames = chroma(bar[None], self.frames_per_bar)  # (frames_per_bar, 12)
        if len(self.frames) + len(frames) > self.window_frames:
            self._take_over()
        ir_bits, motifs = [], []
        for k, frame in enumerate(frames):
            if self._between_frames is not None:
                self._between_frames()
            if len(self.frames) == self._shadow_from:
                self._shadow = self._new_oracle()
            self.frames.append(frame)
            self.beats.append(bar_index * BEATS_PER_BAR + k * self.beats_per_frame)
            if self._shadow is not None:
                self._shadow.append(frame)
            step = self._oracle.append(frame)
            ir_bits.append(step.ir_bits)
            if step.motif is not None:
                motifs.append(self._in_beats(step.motif))
        return ir_bits, motifs

    def _in_beats(self, motif: Motif) -> MotifFound:
        earlier, start = motif.start_frames
        return MotifFound(motif.length_frames * self.beats_per_frame, self.beats[earlier],
                          self.beats[start])

    def _take_over(self) -> None:
        """The shadow oracle, fed every frame from ``_shadow_from`` on, becomes the oracle."""
        assert self._shadow is not None  # window_bars >= 8: the shadow has started
        start = self._shadow_from
        self.frames, self.beats = self.frames[start:], self.beats[start:]
        self._oracle, self._shadow = self._shadow, None
        self.restarts += 1


@dataclass(frozen=True, slots=True)
class _Bar:
    generation: int
    settings: LiveIrSettings
    index: int
    played: np.ndarray  # (16, 2, 78) bool, the input bar ``index``
    answered: np.ndarray  # (16, 2, 78) bool, the answer that sounds in bar ``index + 1``


@dataclass(slots=True)
class LiveIrCounters:
    bars: int = 0  # bars analysed (worker)
    dropped_bars: int = 0  # bars left out because the queue was full (loop thread)
    errors: int = 0  # bars whose analysis failed (worker)
    last_ms: float = 0.0  # analysis time of the last bar, both sides, without sending
    max_ms: float = 0.0


class LiveIr(LoopListener):
    """The feed, listening to the loop. :meth:`feed` and :meth:`configure` are for the loop
    thread; a worker thread, started with the first bar fed, owns the two
    :class:`IrStream` and calls ``send`` (which must be callable from another thread)."""

    def __init__(self, send: Send, settings: LiveIrSettings,
                 queue_bars: int = QUEUE_BARS) -> None:
        self._send = send
        self.settings = settings
        self.counters = LiveIrCounters()
        self._generation = 0
        self._queue: queue.Queue[_Bar | None] = queue.Queue(maxsize=queue_bars)
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        # Worker-owned: (input, output) streams and the generation they were built for.
        self._streams: tuple[IrStream, IrStream] | None = None
        self._streams_generation = -1

    # -- loop thread ----------------------------------------------------------------------
    def answered(self, bar: AnsweredBar) -> None:
        self.feed(bar.report.bar, bar.query, bar.answer)

    def state_changed(self, old: Preset, new: Preset) -> None:
        self.configure(new.live_ir)

    def stopped(self) -> None:
        self.close()

    def configure(self, settings: LiveIrSettings) -> None:
        """Use ``settings`` from the next bar on; any change starts both oracles afresh."""
        if settings != self.settings:
            self.settings = settings
            self._generation += 1

    def feed(self, index: int, played: np.ndarray, answered: np.ndarray | None) -> bool:
        """Hand over input bar ``index`` and the answer to it (None: silence); copies both
        and never blocks. False when the feed is off or its queue is full (counted)."""
        if not self.settings.enabled or self._closed:
            return False
        self._start_worker()
        item = _Bar(self._generation, self.settings, index, np.array(played, dtype=bool),
                    SILENT_BAR if answered is None else np.array(answered, dtype=bool))
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._done_one()
            self.counters.dropped_bars += 1
            log.warning("live IR: bar %d left out, the analysis is %d bars behind", index,
                        self._queue.maxsize)
            return False
        return True

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop the worker after the bars already queued. Idempotent."""
        self._closed = True
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("live IR: worker still busy at shutdown; leaving it (daemon thread)")
            return
        self._thread.join(timeout_s)

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until every bar fed so far is analysed and sent; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _start_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="qbdi-live-ir", daemon=True)
            self._thread.start()

    def _done_one(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    # -- worker thread --------------------------------------------------------------------
    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._analyse(item)
            finally:
                self._done_one()

    def _analyse(self, item: _Bar) -> None:
        try:
            start_s = time.perf_counter()
            played, answered = self._streams_for(item)
            ir_in, motifs_in = played.add(item.index, item.played)
            ir_out, motifs_out = answered.add(item.index + 1, item.answered)
            self._count(time.perf_counter() - start_s)
            self._send(IR_IN, [item.index, *ir_in])
            self._send(IR_OUT, [item.index + 1, *ir_out])
            for side, motifs in (("in", motifs_in), ("out", motifs_out)):
                for m in motifs:
                    self._send(MOTIF, [side, m.length_beats, m.earlier_start_beat,
                                       m.start_beat])
        except Exception as err:  # per bar: log with context, start afresh, keep serving
            self.counters.errors += 1
            self._streams = None
            log.error("live IR: bar %d failed: %s: %s", item.index, type(err).__name__, err,
                      exc_info=err)

    def _streams_for(self, item: _Bar) -> tuple[IrStream, IrStream]:
        if self._streams is None or self._streams_generation != item.generation:
            self._streams = (IrStream(item.settings, _let_the_loop_run),
                             IrStream(item.settings, _let_the_loop_run))
            self._streams_generation = item.generation
        return self._streams

    def _count(self, elapsed_s: float) -> None:
        c = self.counters
        c.bars += 1
        c.last_ms = elapsed_s * 1e3
        c.max_ms = max(c.max_ms, c.last_ms)
