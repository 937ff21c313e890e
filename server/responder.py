"""From a closed bar of input to the notes of its answer: the silence and velocity rules
around the one improviser."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qbdi.bars import STEPS_PER_BAR, Note, bars_to_notes
from qbdi.improviser import Improviser
from qbdi.server.collector import CollectedBar
from qbdi.settings import Preset


@dataclass(frozen=True, slots=True)
class Response:
    """A bar's answer: the notes to schedule (absolute steps), the bar the improviser
    returned (None when it was not asked: mute, or silence answered with silence), its
    compute time and the latent dimensions given bits."""

    notes: list[Note]
    bar: np.ndarray | None
    compute_ms: float
    dims_with_bits: int


class Responder:
    """Answers closed bars; remembers the last bar played (for ``silence = "repeat"``) and
    the player's last velocity (for ``velocity = "follow"``)."""

    def __init__(self, improviser: Improviser) -> None:
        self.improviser = improviser
        self._last_query: CollectedBar | None = None
        self._last_velocity: int | None = None

    def respond(self, collected: CollectedBar, state: Preset) -> Response:
        """The answer to bar ``collected.index``, to sound during the next bar."""
        if not collected.empty:
            self._last_query = collected
        if collected.velocity is not None:
            self._last_velocity = collected.velocity
        query = self._query_for(collected, state)
        if query is None:
            return Response([], None, 0.0, 0)
        answer = self.improviser.step(query.bar, state.improviser)
        first_step = (collected.index + 1) * STEPS_PER_BAR
        notes = bars_to_notes(answer.bar, self._velocity(state), first_step=first_step)
        return Response(notes, answer.bar, answer.compute_s * 1e3, answer.dims_with_bits)

    def _query_for(self, collected: CollectedBar, state: Preset) -> CollectedBar | None:
        """The bar to answer under the mode and the silence policy (None: no answer)."""
        mode = state.improviser.mode
        if mode == "mute":
            return None
        if mode != "query" or not collected.empty:
            return collected
        if state.playing.silence == "repeat":
            return self._last_query
        return None

    def _velocity(self, state: Preset) -> int:
        play = state.playing
        if play.velocity == "follow" and self._last_velocity is not None:
            return self._last_velocity
        return play.fixed_velocity
