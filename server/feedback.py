"""OSC feedback about the loop: a report after every bar, overruns, errors, port events, a
tempo the DAW set, and a heartbeat once a second (addresses in :mod:`~qbdi.server.osc`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qbdi.server import osc
from qbdi.server.control import Address, Feedback
from qbdi.server.events import AnsweredBar, LoopListener

HEARTBEAT_S = 1.0


class MemoryFeedback:
    """Feedback kept in a list of ``(address, args, to)``, for tests and headless runs."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any], Address | None]] = []

    def send(self, address: str, args: Sequence[Any], to: Address | None = None) -> None:
        self.sent.append((address, list(args), to))

    def addressed(self, address: str) -> list[list[Any]]:
        return [args for a, args, _ in self.sent if a == address]


class FeedbackListener(LoopListener):
    """Sends what the loop reports to the feedback target."""

    def __init__(self, feedback: Feedback) -> None:
        self.feedback = feedback
        self._started_s: float | None = None
        self._heartbeat_s = 0.0

    def answered(self, bar: AnsweredBar) -> None:
        report = bar.report
        self.feedback.send(osc.BAR, [report.bar, round(report.compute_ms, 3),
                                     report.dims_with_bits, report.notes_in, report.notes_out])
        if report.overrun:
            self.feedback.send(osc.OVERRUN, [report.bar, round(report.compute_ms, 3),
                                             report.overruns])

    def tempo_changed(self, step: float, tempo_bpm: float, by_clock: bool) -> None:
        if by_clock:  # a control's change is replied to by the control
            self.feedback.send(osc.BPM, [round(tempo_bpm, 2)])

    def port_event(self, direction: str, name: str, kind: str) -> None:
        if kind == "lost":
            self.feedback.send(osc.ERROR, [f"port lost: {direction} {name}; waiting for it"])
        self.feedback.send(osc.PORT, [direction, name, kind])

    def error(self, reason: str) -> None:
        self.feedback.send(osc.ERROR, [reason])

    def echo_loop(self, found: bool, latency_ms: float) -> None:
        self.feedback.send(osc.ECHO_LOOP, [int(found), round(latency_ms, 1)])

    def tick(self, now_s: float, next_bar: int) -> None:
        if self._started_s is None:
            self._started_s = self._heartbeat_s = now_s
        if now_s - self._heartbeat_s >= HEARTBEAT_S:
            self._heartbeat_s = now_s
            self.feedback.send(osc.HEARTBEAT, [round(now_s - self._started_s, 3), next_bar])
