"""The live terminal view of ``qbdi serve`` (rich), drawn on a thread of its own.

Guarantees:

* It costs the loop only the snapshot copies of :class:`~qbdi.server.view_feed.ViewFeed`:
  the view thread draws from snapshots, a few times a second, and is the only thread that
  writes to the terminal (with ``os.write``: a stopped terminal blocks it alone). Log lines
  reach it through the log writer's sink and are printed above the view.
* Keys go through the same validated control path as OSC: each becomes an OSC message
  posted to the loop's inbox (``/qbdi/panic``, ``/qbdi/mode``, ``/qbdi/bits``,
  ``/qbdi/learn``); the key thread never touches the state. Refusals come back as they do
  for OSC (the last error line).
* :meth:`TerminalView.close` waits at most its timeout for the view to stop, restores the
  terminal's mode without waiting for output to drain, and returns.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.live import Live
from rich.text import Text

from qbdi.server import osc
from qbdi.server.terminal import FdFile, KeyReader, in_foreground
from qbdi.server.view_feed import ViewFeed
from qbdi.server.view_render import next_mode, render

log = logging.getLogger(__name__)

REFRESH_S = 0.25  # four frames a second: a frame costs a few ms of interpreter time
LOG_LINES_KEPT = 200  # log lines waiting to be printed above the view
# The ladder the bits keys climb: musically spaced (roughly doubling), then full rate.
BITS_LADDER: tuple[int | str, ...] = (0, 4, 8, 16, 32, 64, 128, 192, 256, 384, 512, 768,
                                      1024, 2048, "full")
# MIDI learn (issue 14.1) adds osc.LEARN to the OSC table; until it is there the key says
# so. The view asks to learn the bits knob, the setting that defines the instrument.
LEARN_ADDRESS = osc.LEARN
LEARN_SETTING = "bits"
ADDRESSES = {"mode": osc.MODE, "bits": osc.BITS}

Post = Callable[[str, list], None]


def next_budget(budget: int | str, direction: int) -> int | str:
    """The next rung of :data:`BITS_LADDER` above (``direction`` 1) or below (-1)
    ``budget``; the end rungs stay where they are."""
    value = float("inf") if budget == "full" else int(budget)
    rungs = [float("inf") if r == "full" else float(r) for r in BITS_LADDER]
    if direction > 0:
        index = next((i for i, r in enumerate(rungs) if r > value), len(rungs) - 1)
    else:
        index = next((i for i in reversed(range(len(rungs))) if rungs[i] < value), 0)
    return BITS_LADDER[index]


class Keys:
    """What each key does: an OSC message into the loop's inbox (any thread)."""

    def __init__(self, feed: ViewFeed, post: Post, on_quit: Callable[[], None]) -> None:
        self.feed = feed
        self.post = post
        self.on_quit = on_quit
        self.note = ""  # what the last key did, shown in the view
        # What the last key asked for, and the state it was asked from: keys pressed before
        # the loop has applied it step on from what was asked, not from the old state.
        self._asked: tuple[object, str, object] | None = None

    def press(self, key: str) -> None:
        if key in ("p", " "):
            self._send(osc.PANIC, [], "panic")
        elif key == "m":
            mode = next_mode(self._current("mode"))
            self._ask("mode", mode)
        elif key in ("up", "+", "="):
            self._ask("bits", next_budget(self._current("bits"), 1))
        elif key in ("down", "-", "_"):
            self._ask("bits", next_budget(self._current("bits"), -1))
        elif key == "l":
            self.learn()
        elif key == "q":
            self.note = "quitting"
            self.on_quit()

    def learn(self) -> None:
        """The learn key's hook: bind the next moving CC to the bits, once MIDI learn
        (``/qbdi/learn``) is in the OSC table."""
        if LEARN_ADDRESS in osc.BY_ADDRESS:
            self._send(LEARN_ADDRESS, [LEARN_SETTING], f"learn {LEARN_SETTING}: move a knob")
        else:
            self.note = "learn: this build has no MIDI controls"

    def _current(self, setting: str) -> object:
        state = self.feed.state
        asked = self._asked
        if asked is not None and asked[0] is state and asked[1] == setting:
            return asked[2]
        settings = state.improviser
        return settings.mode if setting == "mode" else settings.budget_bits

    def _ask(self, setting: str, value: object) -> None:
        self._asked = (self.feed.state, setting, value)
        self._send(ADDRESSES[setting], [value], f"{setting} {value}")

    def _send(self, address: str, args: list, note: str) -> None:
        self.post(address, args)
        self.note = note


class TerminalView:
    """Draws the view on stdout (``out_fd``) and reads keys on stdin (``in_fd``, None for
    no keys) until :meth:`close`."""

    def __init__(self, feed: ViewFeed, post: Post, title: str, *,
                 counts: Callable[[], Sequence[object]] = list,
                 on_quit: Callable[[], None] = lambda: None, out_fd: int = 1,
                 in_fd: int | None = 0, refresh_s: float = REFRESH_S) -> None:
        self.feed = feed
        self.title = title
        self.keys = Keys(feed, post, on_quit)
        self._counts = counts
        self._out_fd = out_fd
        # Keys need a terminal we may read: not a pipe, not ours while we run in background.
        self._in_fd = (in_fd if in_fd is not None and os.isatty(in_fd) and in_foreground(in_fd)
                       else None)
        self.refresh_s = refresh_s
        self._log_lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qbdi-view", daemon=True)
        self._key_reader: KeyReader | None = None
        self.frames = 0

    def start(self) -> None:
        if self._in_fd is not None:
            self._key_reader = KeyReader(self._in_fd, self.keys.press)
        self._thread.start()

    def add_log_line(self, line: str) -> None:
        """A log line to print above the view (the log writer's thread; never waits)."""
        self._log_lines.append(line)

    def unprinted_lines(self) -> list[str]:
        """Log lines the view did not print (it stopped first), oldest first."""
        lines = list(self._log_lines)
        self._log_lines.clear()
        return lines

    def close(self, timeout_s: float = 0.3) -> bool:
        """Stop drawing and reading keys; True when the view stopped within ``timeout_s``."""
        self._stop.set()
        if self._key_reader is not None:
            self._key_reader.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # -- the view's thread ----------------------------------------------------------------
    def _run(self) -> None:
        out = FdFile(self._out_fd)
        console = Console(file=out, force_terminal=True, highlight=False)
        live = Live(console=console, auto_refresh=False, redirect_stdout=False,
                    redirect_stderr=False, transient=False)
        try:
            with live:
                while True:
                    self._print_logs(live)
                    live.update(self._frame(), refresh=True)
                    self.frames += 1
                    if self._stop.wait(self.refresh_s):
                        break
                self._print_logs(live)
        except Exception:
            log.exception("the terminal view stopped")
        finally:
            with contextlib.suppress(Exception):
                out.flush()
            out.close()

    def _frame(self):
        return render(self.feed, self.title, self._counts(), self.keys.note, time.monotonic())

    def _print_logs(self, live: Live) -> None:
        while self._log_lines:
            live.console.print(Text(self._log_lines.popleft()), soft_wrap=True)
