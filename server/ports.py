"""MIDI ports behind one small interface: real ones (mido + python-rtmidi) and in-memory ones
(:class:`~qbdi.server.memory_ports.MemoryPorts`, for tests).

A :class:`Ports` object opens one input and one output, and optionally a controls input (an
existing port named with ``--controls-in``: a controller's knobs, kept apart from the notes).
The inputs call ``on_message`` (``on_control``) on their reader threads for every message (the
server only enqueues there); ``send`` sends one message or raises
:class:`~qbdi.server.errors.PortLost`.

Port loss. A port we create (virtual, the default) belongs to our own client: it can only
go when the whole backend goes (the JACK server stops), and then ``send`` raises
:class:`~qbdi.server.errors.PortLost` and the server stops. A port named with
``--in/--out/--controls-in`` belongs to another program (the DAW, loopMIDI, a USB controller)
and can close and come back while we serve: ``watch(on_event)`` starts a watcher that looks
for it every ``WATCH_S`` seconds and calls ``on_event(direction, name, "lost" | "back")``
(``direction`` is ``"in"``, ``"out"`` or ``"controls"``). While
the output is gone, ``send`` drops messages (they have nowhere to go, note-offs included:
the DAW ends what was sounding on a port it closes); once it is back the watcher has
reconnected before ``"back"`` is reported.

Backends are chosen by setting (``alsa``, ``jack``, ``coremidi``, ``windows``, ``memory``) or
detected; detection never starts anything (``JACK_NO_START_SERVER`` is set) and when no
backend works it raises :class:`~qbdi.server.errors.BackendUnavailable` saying what to start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import mido

from qbdi.server.backends import (
    check_backend,
    check_names_free,
    resolve_port,
    rtmidi_api,
    rtmidi_backend,
)
from qbdi.server.bounded_log import BoundedLog
from qbdi.server.errors import BackendUnavailable, PortLost, PortNotFound
from qbdi.server.memory_ports import MemoryPorts
from qbdi.server.midi_input import MidiInput

__all__ = ["CLIENT_NAME", "DEFAULT_IN", "DEFAULT_OUT", "MemoryPorts", "MidoPorts", "Ports"]

log = logging.getLogger(__name__)

CLIENT_NAME = "qbdi"  # the default --name
DEFAULT_IN = f"{CLIENT_NAME} in"
DEFAULT_OUT = f"{CLIENT_NAME} out"
OnMessage = Callable[[mido.Message], None]
OnPortEvent = Callable[[str, str, str], None]  # (direction, name, "lost"|"back")
WATCH_S = 0.2  # how often a watcher looks for a named port (reconnect well within 1 s)
OUTPUT_DRAIN_S = 0.2  # JACK periods are 2.7 ms (128 frames, 48 kHz), but a loaded machine
# delays them: under load 6 on 2 cores the last note-offs were lost after 20 ms. Only exit waits.
UNREGISTER_SETTLE_S = 0.2  # after a graph change, before a port closes: libjack 1.9.21 erases
# it from a list its notification thread may be walking (latency update): back to back crashed.


def close_in_turn(*closers: Callable[[], object]) -> None:
    """Call each closer, ``UNREGISTER_SETTLE_S`` after the one before (the race above)."""
    for index, close in enumerate(closers):
        time.sleep(UNREGISTER_SETTLE_S if index else 0.0)
        close()


class Ports(Protocol):
    """One input and one output port."""

    in_name: str
    out_name: str
    controls_name: str | None

    def open(self, on_message: OnMessage, on_control: OnMessage | None = None) -> None:
        """Open them; ``on_message`` (``on_control``) is called on the input's reader thread for
        each message of the input (the controls input)."""

    def watch(self, on_event: OnPortEvent) -> None:
        """Report a port named with --in/--out/--controls-in going (``lost``) and coming
        ``back``; ports we create ourselves cannot go that way, so nothing is reported for
        them."""

    def send(self, message: mido.Message) -> None:
        """Send one message; raises :class:`PortLost` when the backend has gone."""

    def close(self) -> None: ...


class MidoPorts:
    """Real ports through mido and python-rtmidi.

    With no port name the ports are virtual, ``"NAME in"`` and ``"NAME out"`` of the MIDI
    client ``NAME`` (``name``, default "qbdi"); a port name opens the existing port instead
    (Windows and loopMIDI have no virtual ports); the controls input is always an existing
    port, by name. A named port may close and return while serving: see :meth:`watch`.
    Virtual ports are refused (:class:`PortNameTaken`) when ports of those names exist
    already (another server of that name).

    python-rtmidi makes one backend client per port: under JACK the input is
    ``NAME:NAME in`` and the output ``NAME-01:NAME out`` (JACK client names are unique);
    under ALSA both clients are called ``NAME``. Input packets that are not valid MIDI are
    counted (``midi_log``) and logged in bounded amounts.
    """

    def __init__(self, backend: str, in_port: str | None = None,
                 out_port: str | None = None, name: str = CLIENT_NAME,
                 controls_port: str | None = None) -> None:
        check_backend(backend)
        self.backend = backend
        self._rt = rtmidi_backend(backend)
        self._in_port = in_port
        self._out_port = out_port
        self.client_name = name
        self.in_name = in_port or f"{name} in"
        self.out_name = out_port or f"{name} out"
        self.controls_name = controls_port
        self.midi_log = BoundedLog(log, "MIDI input")
        self._input: MidiInput | None = None
        self._output: mido.ports.BaseOutput | None = None
        self._controls: MidiInput | None = None
        self._on_message: OnMessage | None = None
        self._on_control: OnMessage = lambda _: None
        self._send_lock = threading.Lock()
        self._lost: set[str] = set()  # named directions whose port is away
        self.dropped = 0  # messages sent while the named output was away
        self._on_event: OnPortEvent | None = None
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None

    def open(self, on_message: OnMessage, on_control: OnMessage | None = None) -> None:
        if (self._in_port is None or self._out_port is None) and self.backend == "windows":
            raise BackendUnavailable("Windows has no virtual MIDI ports: create two loopMIDI "
                                     "ports and pass them with --in NAME --out NAME")
        self._on_message = on_message
        if on_control is not None:
            self._on_control = on_control
        check_names_free(self.backend, [name for name, given in
                                        ((self.in_name, self._in_port),
                                         (self.out_name, self._out_port)) if given is None])
        try:
            # Input first: under JACK the first client is "NAME", so "NAME:NAME in".
            self._input = self._open_input("in")
            self._output = self._open_output()
            if self.controls_name is not None:
                self._controls = self._open_input("controls")
        except (OSError, PortNotFound) as err:
            self.close()
            if isinstance(err, PortNotFound):
                raise
            raise PortNotFound(f"{self.backend}: cannot open MIDI ports: {err}") from err
        self.in_name, self.out_name = self._input.name, self._output.name
        if self._controls is not None:
            self.controls_name = self._controls.name

    def _open_input(self, direction: str, names: list[str] | None = None) -> MidiInput:
        """Our virtual input, or the named input (``in``) or controls port (``controls``)
        among ``names`` (listed now when None)."""
        api = rtmidi_api(self.backend)
        wanted = self._in_port if direction == "in" else self.controls_name
        callback = self._on_message if direction == "in" else self._on_control
        assert callback is not None
        if wanted is None:
            return MidiInput(api, self.client_name, self.in_name, True, callback,
                             self.midi_log)
        names = self._rt.get_input_names() if names is None else names
        name = resolve_port(wanted, names, "input" if direction == "in" else "controls input")
        return MidiInput(api, self.client_name, name, False, callback, self.midi_log)

    def _open_output(self, names: list[str] | None = None) -> mido.ports.BaseOutput:
        """Our virtual output, or the named one among ``names`` (listed now when None)."""
        if self._out_port is None:
            return self._rt.open_output(self.out_name, virtual=True,
                                        client_name=self.client_name)
        names = self._rt.get_output_names() if names is None else names
        name = resolve_port(self._out_port, names, "output")
        return self._rt.open_output(name)  # (mido names no client for an existing port)

    def send(self, message: mido.Message) -> None:
        """Send, or raise :class:`PortLost` (our virtual port failed). A named output that
        is away drops the message; one that fails on send counts as away."""
        with self._send_lock:
            if "out" in self._lost:
                self.dropped += 1
                return
            if self._output is None:
                raise PortLost(f"{self.out_name}: not open")
            try:
                self._output.send(message)
                return
            except Exception as err:
                if self._out_port is None:
                    raise PortLost(f"{self.out_name}: {err}") from err
                self._lost.add("out")
        self._report("out", "lost")

    # -- named ports: watch for them closing and returning ---------------------------------
    def watch(self, on_event: OnPortEvent) -> None:
        """Start watching the named ports (nothing to do for virtual ones): ``on_event`` is
        called on the watcher thread when one goes away or is back and reconnected."""
        self._on_event = on_event
        if not self._named():
            return
        self._watcher = threading.Thread(target=self._watch_loop, name="qbdi-port-watch",
                                         daemon=True)
        self._watcher.start()

    def _named(self) -> dict[str, str]:
        """``{direction: name wanted}`` of the ports named on the command line."""
        wanted = {"in": self._in_port, "out": self._out_port, "controls": self.controls_name}
        return {direction: name for direction, name in wanted.items() if name is not None}

    def _name(self, direction: str) -> str:
        names = {"in": self.in_name, "out": self.out_name, "controls": self.controls_name}
        return names[direction] or direction

    def _report(self, direction: str, kind: str) -> None:
        if self._on_event is not None:
            self._on_event(direction, self._name(direction), kind)

    def _watch_loop(self) -> None:
        import rtmidi

        api = rtmidi_api(self.backend)
        # One long-lived probe per direction: mido's get_*_names opens a new client per call.
        sources = rtmidi.MidiIn(rtapi=api, name=f"{self.client_name}-watch")
        targets = rtmidi.MidiOut(rtapi=api, name=f"{self.client_name}-watch")
        try:
            while not self._stop_watch.wait(WATCH_S):
                for direction, wanted in self._named().items():
                    names = (targets if direction == "out" else sources).get_ports()
                    self._check(direction, wanted, names)
        except Exception:
            log.exception("the port watcher stopped")
        finally:
            sources.delete()
            targets.delete()

    def _check(self, direction: str, wanted: str, names: list[str]) -> None:
        try:
            resolve_port(wanted, names, "output" if direction == "out" else "input")
            present = True
        except PortNotFound:
            present = False
        if not present and direction not in self._lost:
            self._go_away(direction)
        elif present and direction in self._lost:
            self._come_back(direction, names)

    def _go_away(self, direction: str) -> None:
        with self._send_lock:
            self._lost.add(direction)
        log.warning("MIDI %s port %r went away; waiting for it to return", direction,
                    self._name(direction))
        self._report(direction, "lost")

    def _come_back(self, direction: str, names: list[str]) -> None:
        """Reopen the port found in the watcher's ``names``: listing again through mido
        would make one more backend client, which can take long under JACK."""
        try:
            old: MidiInput | mido.ports.BaseOutput | None
            if direction == "in":
                old, self._input = self._input, self._open_input("in", names)
            elif direction == "controls":
                old, self._controls = self._controls, self._open_input("controls", names)
            else:
                new_out = self._open_output(names)
                with self._send_lock:
                    old, self._output = self._output, new_out
        except (OSError, PortNotFound) as err:
            log.warning("MIDI %s port is back but cannot be opened yet: %s", direction, err)
            return
        if old is not None and not old.closed:
            time.sleep(UNREGISTER_SETTLE_S)  # the new port's connection notifies old's client
            old.close()
        with self._send_lock:
            self._lost.discard(direction)
        log.warning("MIDI %s port %r is back: reconnected", direction, self._name(direction))
        self._report(direction, "back")

    def close(self) -> None:
        """Close every port (idempotent); the output only once what was just sent (the last
        note-offs) has had time to leave: rtmidi's JACK output unregisters its port right
        after the cycle that flushes it, before the receiving client has read that cycle's
        events. A send after close raises :class:`PortLost` (sending to a closed rtmidi JACK
        port crashes the process)."""
        self._stop_watch.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=2.0)
        with self._send_lock:
            output, self._output = self._output, None
        close_in_turn(*(port.close for port in (self._input, self._controls)
                        if port is not None and not port.closed))
        if output is not None and not output.closed:
            time.sleep(OUTPUT_DRAIN_S)
            output.close()
