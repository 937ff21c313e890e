"""What the server shows while it runs: a one-line terminal status, or structured logs.

* On a terminal: one line rewritten in place (tempo, bar, mode, bits, compute ms, notes
  in/out, overruns).
* Not on a terminal (CI, Docker): the same fields as a log line at most once a second.
* ``--quiet``: warnings and errors only; ``--log-json``: every log record as one JSON
  object per line on stderr, bar reports included (``event: "bar"``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from qbdi.server.events import AnsweredBar, BarReport, LoopListener

log = logging.getLogger("qbdi.server")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and any ``extra`` fields."""

    _plain = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        data = {"t": round(record.created, 6), "level": record.levelname.lower(),
                "logger": record.name, "message": record.getMessage()}
        data.update({k: v for k, v in record.__dict__.items() if k not in self._plain})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(quiet: bool, log_json: bool, stream: TextIO = sys.stderr) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_json else
                         logging.Formatter("qbdi serve: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)


def status_text(report: BarReport, notes_out_total: int, notes_in_total: int,
                overruns: int) -> str:
    return (f"{report.tempo_bpm:6.1f} bpm | bar {report.bar:5d} | {report.mode:5s} | "
            f"bits {report.budget_bits!s:>4} | {report.compute_ms:6.2f} ms | "
            f"dims {report.dims_with_bits:3d} | notes in {notes_in_total} out "
            f"{notes_out_total} | overruns {overruns}")


class StatusLine(LoopListener):
    """Shows or logs each bar's report (it hears of them on the loop thread)."""

    def __init__(self, quiet: bool, log_json: bool, stream: TextIO = sys.stderr) -> None:
        self.quiet = quiet
        self.log_json = log_json
        self.stream = stream
        self.tty = stream.isatty() and not log_json
        self.notes_in = 0
        self.notes_out = 0
        self.overruns = 0
        self._last_log_s = 0.0

    def answered(self, bar: AnsweredBar) -> None:
        report = bar.report
        self.notes_in += report.notes_in
        self.notes_out += report.notes_out
        self.overruns += report.overrun
        if self.log_json:
            log.info("bar", extra={"event": "bar", **{k: getattr(report, k) for k in
                                                      report.__slots__}})
            return
        if self.quiet:
            return
        text = status_text(report, self.notes_out, self.notes_in, self.overruns)
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
        elif time.monotonic() - self._last_log_s >= 1.0:
            self._last_log_s = time.monotonic()
            log.info(text)

    def stopped(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
