"""One improvisation session, assembled: the bar loop, its control surface, and what watches
it (OSC feedback, the live information rate, and whatever else is subscribed: a take, the
status line)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import mido

from qbdi.improviser import Improviser
from qbdi.presets import load_named_preset
from qbdi.server.bounded_log import LogTicker
from qbdi.server.clocks import Clock
from qbdi.server.control import Address, Control, Feedback
from qbdi.server.events import Listeners, LoopListener
from qbdi.server.feedback import FeedbackListener
from qbdi.server.live_ir import LiveIr
from qbdi.server.loop import CLOSE_AHEAD_S, Loop
from qbdi.server.ports import Ports
from qbdi.settings import Preset


class NoFeedback:
    """Feedback to nowhere (no OSC peer to tell)."""

    def send(self, address: str, args: Sequence[Any], to: Address | None = None) -> None:
        pass


class Server:
    """A session built from injected parts. Other threads reach it only through
    :meth:`post_midi` and :meth:`post_osc`; everything else is for the loop thread."""

    def __init__(self, ports: Ports, clock: Clock, improviser: Improviser, state: Preset, *,
                 models: Mapping[str, Improviser] | None = None,
                 feedback: Feedback | None = None, listeners: Iterable[LoopListener] = (),
                 preset_loader: Callable[[str], Preset] = load_named_preset,
                 status_counts: Callable[[], list[Any]] = list,
                 ir_taps: Iterable[Callable[[str, list[Any]], None]] = (),
                 close_ahead_steps: float = 0.5, close_ahead_s: float = CLOSE_AHEAD_S,
                 echo_window_s: float = 0.05) -> None:
        self.feedback = feedback if feedback is not None else NoFeedback()
        self._ir_taps = list(ir_taps)  # also hear the live IR feed (the terminal view)
        self.live_ir = LiveIr(self._send_ir if self._ir_taps else self.feedback.send,
                              state.live_ir)
        self.listeners = Listeners(FeedbackListener(self.feedback), self.live_ir, *listeners)
        self.loop = Loop(ports, clock, improviser, state, models=models,
                         listeners=self.listeners,
                         close_ahead_steps=close_ahead_steps, close_ahead_s=close_ahead_s,
                         echo_window_s=echo_window_s)
        self.control = Control(self.loop, self.feedback, preset_loader, status_counts,
                               separate_controls_port=ports.controls_name is not None)
        self.loop.on_osc = self.control.handle_osc
        self.loop.player.controls = self.control.midi
        self.listeners.add(LogTicker(self.control.log))

    def _send_ir(self, address: str, args: list[Any]) -> None:
        """The live IR feed's messages (its worker thread): to feedback, and each tap."""
        self.feedback.send(address, args)
        for tap in self._ir_taps:
            tap(address, args)

    @property
    def state(self) -> Preset:
        return self.loop.state

    def post_midi(self, message: mido.Message) -> None:
        self.loop.inbox.post_midi(message)

    def post_control(self, message: mido.Message) -> None:
        """A message from the controls port (``--controls-in``), as its backend thread would."""
        self.loop.inbox.post_control(message)

    def post_osc(self, address: str, args: list[Any], sender: Address | None) -> None:
        self.loop.inbox.post_osc(address, args, sender)

    def wake(self) -> None:
        self.loop.inbox.wake()

    def start(self) -> None:
        self.loop.start()

    def step(self) -> None:
        self.loop.step()

    def serve(self, stop: threading.Event) -> None:
        self.loop.serve(stop)

    def shutdown(self) -> None:
        self.loop.shutdown()
