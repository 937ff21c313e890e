"""Output that never makes its caller wait: log records and the server's own lines (the
``ready`` line) go through bounded queues to one writer thread per stream.

Guarantees:

* Logging from any thread (the loop thread included) only merges the record's message
  and appends it to a bounded queue; when the queue is full the record is dropped and
  counted (:attr:`LineWriter.dropped`), never waited for. No lock is held while it does.
* A writer thread alone writes to its stream, with ``os.write`` on a duplicate of the file
  descriptor: only it can block on a pipe nobody reads or a stopped terminal. Once it can
  write again, its next line says how many lines were dropped meanwhile.
* :meth:`LineWriter.close` writes what it can within its timeout and returns; a writer
  still blocked then is a daemon thread left behind, so the process exits all the same.
  Python's own ``sys.stdout``/``sys.stderr`` are left unused while serving, so the
  interpreter's exit has nothing to flush into a blocked stream.
* A failing write (the reader closed its end) counts the line as dropped; nothing raises
  into the code that logged.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import logging
import os
import queue
import select
import sys
import threading
from collections.abc import Callable
from typing import Any

QUEUE_LINES = 1_000  # lines waiting for a writer before the newest are dropped
CLOSE_TIMEOUT_S = 0.3  # how long shutdown waits for a writer to empty its queue
_PLAIN = logging.Formatter()  # formats exceptions where the record is made

Sink = Callable[[str], None]


class LineWriter:
    """A daemon thread writing lines to file descriptor ``fd`` (duplicated, so closing
    ours never closes the process's). ``render`` turns a queued item that is not already a
    line (a log record) into its line."""

    def __init__(self, fd: int, name: str, render: Callable[[Any], str] = str,
                 capacity: int = QUEUE_LINES) -> None:
        self._fd = os.dup(fd)
        self._render = render
        self._queue: queue.Queue[Any] = queue.Queue(capacity)
        self._closing = threading.Event()
        self._drop_lock = threading.Lock()
        self.dropped = 0
        self._told_dropped = 0
        self.written = 0
        self.sink: Sink | None = None  # when set, lines go there instead (the terminal view)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        """Queue ``item`` for writing; drop and count it when the queue is full."""
        if self._closing.is_set():
            self._drop()
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._drop()

    def _drop(self) -> None:
        with self._drop_lock:
            self.dropped += 1

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Write what is queued within ``timeout_s``; True when everything was written."""
        self._closing.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # -- writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.05 if self._closing.is_set() else 0.5)
            except queue.Empty:
                if self._closing.is_set():
                    break
                continue
            try:
                line = item if isinstance(item, str) else self._render(item)
            except Exception as err:  # a record that cannot be formatted: say so, go on
                line = f"(a log line could not be formatted: {type(err).__name__}: {err})"
            self._emit(line)
        self._emit_dropped()
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _emit(self, line: str) -> None:
        self._emit_dropped()
        self._deliver(line)

    def _emit_dropped(self) -> None:
        dropped = self.dropped
        if dropped > self._told_dropped:
            self._deliver(f"qbdi: {dropped - self._told_dropped} output lines dropped: the "
                          f"output was not read fast enough ({dropped} in all)")
            self._told_dropped = dropped

    def _deliver(self, line: str) -> None:
        sink = self.sink
        if sink is not None:
            try:
                sink(line)
                self.written += 1
            except Exception:
                self._drop()
            return
        if self._write((line + "\n").encode("utf-8", "replace")):
            self.written += 1
        else:
            self._drop()

    def _write(self, data: bytes) -> bool:
        """Write all of ``data`` (blocking this thread only); False when the stream failed
        or stayed unwritable while closing."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view):]
            except BlockingIOError:  # someone set O_NONBLOCK on the stream: wait for room
                _, writable, _ = select.select([], [self._fd], [], 0.5)
                if not writable and self._closing.is_set():
                    return False
            except InterruptedError:
                continue
            except OSError as err:
                return err.errno == errno.EINTR
        return True


class QueueLogHandler(logging.Handler):
    """Hands records to a :class:`LineWriter`; the writer formats them on its thread."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def handle(self, record: logging.LogRecord) -> bool:
        # Without the handler's lock: the queue is thread-safe, and a caller must never wait
        # for another thread that is formatting a long traceback.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.put(prepare(record))
        except Exception:
            self.writer._drop()


def prepare(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of ``record`` safe to format later on another thread: its message merged
    with its arguments, its exception as text."""
    record = copy.copy(record)
    record.message = record.getMessage()
    record.msg, record.args = record.message, None
    if record.exc_info:
        record.exc_text = _PLAIN.formatException(record.exc_info)
        record.exc_info = None
    return record


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and any ``extra`` fields."""

    _plain = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def __init__(self, server: str | None = None) -> None:
        super().__init__()
        self.server = server

    def format(self, record: logging.LogRecord) -> str:
        data = {"t": round(record.created, 6), "level": record.levelname.lower(),
                "logger": record.name, "message": record.getMessage()}
        if self.server is not None:
            data["server"] = self.server
        data.update({k: v for k, v in record.__dict__.items() if k not in self._plain})
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, default=str)


class Output:
    """The server's two streams, each behind its own :class:`LineWriter`: log records on
    stderr (also Python warnings and exceptions escaping threads) and the server's own
    lines on stdout (:meth:`say`)."""

    def __init__(self, quiet: bool, log_json: bool, prefix: str = "qbdi serve",
                 server: str | None = None, err_fd: int | None = None,
                 out_fd: int | None = None) -> None:
        formatter = (JsonFormatter(server) if log_json else
                     logging.Formatter(f"{prefix}: %(levelname)s: %(message)s"))
        self.log = LineWriter(sys.stderr.fileno() if err_fd is None else err_fd, "qbdi-log",
                              formatter.format)
        self.out = LineWriter(sys.stdout.fileno() if out_fd is None else out_fd, "qbdi-out")
        root = logging.getLogger()
        root.handlers[:] = [QueueLogHandler(self.log)]
        root.setLevel(logging.WARNING if quiet else logging.INFO)
        logging.captureWarnings(True)  # shown warnings become records too
        threading.excepthook = _log_thread_exception

    def say(self, line: str) -> None:
        """One line on stdout (never waits)."""
        self.out.put(line)

    @property
    def dropped(self) -> int:
        return self.log.dropped + self.out.dropped

    def status_counts(self) -> list[Any]:
        """``/qbdi/status`` name, value pairs."""
        return ["log_dropped", self.dropped]

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Write what can be written within ``timeout_s`` in all, then stop logging there
        (later records are dropped)."""
        self.out.close(timeout_s / 2)
        self.log.close(timeout_s / 2)


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """An exception that ends a thread is logged (not printed to stderr, which may block)."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("qbdi").error("%s stopped: %s", name, args.exc_value,
                                    exc_info=(args.exc_type, args.exc_value,
                                              args.exc_traceback))
