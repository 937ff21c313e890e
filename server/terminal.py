"""The terminal as the view uses it: a file that writes with ``os.write`` (so only the
writing thread can block on a stopped terminal, and no Python-level lock is held while it
does), and a key reader on a thread of its own with the terminal in cbreak mode.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import threading
import tty
from collections.abc import Callable

KEY_POLL_S = 0.1  # how often the key reader looks whether it should stop

# Escape sequences of the arrow keys, as cbreak mode delivers them.
ARROWS = {b"\x1b[A": "up", b"\x1b[B": "down", b"\x1b[C": "right", b"\x1b[D": "left",
          b"\x1bOA": "up", b"\x1bOB": "down", b"\x1bOC": "right", b"\x1bOD": "left"}


class FdFile:
    """A text file on a duplicate of ``fd`` for rich's console: ``write`` collects,
    ``flush`` writes it all with ``os.write`` (blocking the calling thread only)."""

    def __init__(self, fd: int) -> None:
        self._fd = os.dup(fd)
        self._parts: list[str] = []
        self.closed = False

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        if not self._parts or self.closed:
            return
        data = memoryview("".join(self._parts).encode("utf-8", "replace"))
        self._parts.clear()
        with contextlib.suppress(OSError):
            while data:
                data = data[os.write(self._fd, data):]

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                os.close(self._fd)


def split_keys(data: bytes) -> list[str]:
    """Key names in ``data`` as read in cbreak mode: arrows as ``up``/``down``/...,
    other printable bytes as themselves; anything else is skipped."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        arrow = next((seq for seq in ARROWS if data.startswith(seq, i)), None)
        if arrow is not None:
            keys.append(ARROWS[arrow])
            i += len(arrow)
            continue
        byte = data[i : i + 1]
        if byte.isascii() and (byte.decode().isprintable()):
            keys.append(byte.decode())
        i += 1
    return keys


def in_foreground(fd: int) -> bool:
    """Whether this process may read terminal ``fd`` and change its mode without being
    stopped: true unless ``fd`` is our controlling terminal and we are a background job
    (``qbdi serve &``), where reading would stop us (SIGTTIN, SIGTTOU)."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:  # not our controlling terminal: no job control applies to it
        return True


class KeyReader:
    """Reads keys from terminal ``fd`` on its own thread and hands each to ``on_key``.

    The terminal is put in cbreak mode (keys arrive at once, unechoed; Ctrl-C still sends
    SIGINT) and restored by :meth:`close` with ``TCSANOW``, which never waits for output to
    drain (a stopped terminal would never drain)."""

    def __init__(self, fd: int, on_key: Callable[[str], None]) -> None:
        self._fd = fd
        self._on_key = on_key
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd, termios.TCSANOW)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qbdi-keys", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._fd], [], [], KEY_POLL_S)
            if not readable:
                continue
            try:
                data = os.read(self._fd, 64)
            except OSError:
                return
            if not data:
                return
            for key in split_keys(data):
                self._on_key(key)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(KEY_POLL_S * 3)
        with contextlib.suppress(termios.error):
            termios.tcsetattr(self._fd, termios.TCSANOW, self._saved)
