"""What the server reports of each bar when there is no live terminal view (headless,
``--quiet``, ``--log-json``, ``--no-view``): log records, which go through the log queue
(:mod:`~qbdi.server.logs`), so reporting never waits on the stream.

* Plain logs: the bar's fields as a log line at most once a second.
* ``--quiet``: nothing per bar (warnings and errors only).
* ``--log-json``: every bar as a JSON record (``event: "bar"``).

On a terminal the live view (:mod:`~qbdi.server.view`) shows the same and more.
"""

from __future__ import annotations

import logging
import time

from qbdi.server.events import AnsweredBar, BarReport, LoopListener

log = logging.getLogger("qbdi.server")
LOG_EVERY_S = 1.0


def status_text(report: BarReport, notes_out_total: int, notes_in_total: int,
                overruns: int) -> str:
    return (f"{report.tempo_bpm:6.1f} bpm | bar {report.bar:5d} | {report.mode:5s} | "
            f"bits {report.budget_bits!s:>4} | {report.compute_ms:6.2f} ms | "
            f"dims {report.dims_with_bits:3d} | notes in {notes_in_total} out "
            f"{notes_out_total} | overruns {overruns}")


class StatusLine(LoopListener):
    """Logs each bar's report (it hears of them on the loop thread)."""

    def __init__(self, quiet: bool, log_json: bool) -> None:
        self.quiet = quiet
        self.log_json = log_json
        self.notes_in = 0
        self.notes_out = 0
        self.overruns = 0
        self._last_log_s = -LOG_EVERY_S

    def answered(self, bar: AnsweredBar) -> None:
        report = bar.report
        self.notes_in += report.notes_in
        self.notes_out += report.notes_out
        self.overruns += report.overrun
        if self.log_json:
            log.info("bar", extra={"event": "bar", **{k: getattr(report, k) for k in
                                                      report.__slots__}})
        elif not self.quiet and time.monotonic() - self._last_log_s >= LOG_EVERY_S:
            self._last_log_s = time.monotonic()
            log.info(status_text(report, self.notes_out, self.notes_in, self.overruns))
