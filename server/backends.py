"""MIDI backends: which can open ports here, detected without starting anything
(``JACK_NO_START_SERVER`` is set), what to start when none can, the ports each lists, and a
port asked for by name among them."""

from __future__ import annotations

import os
import re
import sys

import mido

from qbdi.server.errors import BackendUnavailable, PortNameTaken, PortNotFound

# Detection must not launch a JACK server behind the user's back.
os.environ.setdefault("JACK_NO_START_SERVER", "1")

RTMIDI_APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE",
               "windows": "WINDOWS_MM"}
BACKENDS = (*RTMIDI_APIS, "memory")
JACKD_LINE = "jackd --no-realtime -d dummy -r 48000 -p 128 &"
WHAT_TO_START = {
    "alsa": "no ALSA sequencer (/dev/snd/seq): load the snd-seq module or use a machine "
            "with sound devices",
    "jack": f"no JACK server is running: start one, e.g. `{JACKD_LINE}`",
    "coremidi": "CoreMIDI is only on macOS",
    "windows": "Windows MultiMedia MIDI is only on Windows",
}

def rtmidi_backend(backend: str) -> mido.Backend:
    return mido.Backend(f"mido.backends.rtmidi/{RTMIDI_APIS[backend]}", load=True)


def rtmidi_api(backend: str) -> int:
    """python-rtmidi's API number for ``backend``."""
    import rtmidi

    return getattr(rtmidi, f"API_{RTMIDI_APIS[backend]}")


def backend_works(backend: str) -> bool:
    """Whether the rtmidi API of ``backend`` can make a client here (nothing is started)."""
    import rtmidi

    api = getattr(rtmidi, f"API_{RTMIDI_APIS[backend]}")
    if api not in rtmidi.get_compiled_api():
        return False
    try:
        rtmidi.MidiIn(rtapi=api, name="qbdi-probe").delete()
    except rtmidi.RtMidiError:
        return False
    return True


def detect_backend() -> str:
    """The first backend that works on this platform, or :class:`BackendUnavailable`."""
    candidates = {"linux": ("alsa", "jack"), "darwin": ("coremidi", "jack"),
                  "win32": ("windows",)}.get(sys.platform, ("alsa", "jack"))
    for backend in candidates:
        if backend_works(backend):
            return backend
    reasons = "; ".join(f"{b}: {WHAT_TO_START[b]}" for b in candidates)
    raise BackendUnavailable(f"no MIDI backend works here ({reasons}); or use --backend memory "
                             "for a smoke test without MIDI")


def check_backend(backend: str) -> None:
    """Raise :class:`BackendUnavailable` with what to start when ``backend`` cannot work."""
    if backend != "memory" and not backend_works(backend):
        raise BackendUnavailable(f"--backend {backend}: {WHAT_TO_START[backend]}")


def _plain(name: str) -> str:
    """A port name without ALSA's trailing client:port numbers ("x:y 128:0" -> "x:y")."""
    return re.sub(r"\s+\d+:\d+$", "", name)


def resolve_port(wanted: str, names: list[str], direction: str) -> str:
    """The one existing port called ``wanted``: exact name, then the name after its
    ``client:`` prefix, then a unique substring. Raises :class:`PortNotFound` listing ports."""
    for match in (lambda n: n == wanted, lambda n: _plain(n) == wanted,
                  lambda n: _plain(n).split(":", 1)[-1] == wanted):
        found = [name for name in names if match(name)]
        if len(found) == 1:
            return found[0]
    found = [name for name in names if wanted.lower() in name.lower()]
    if len(found) == 1:
        return found[0]
    listing = ", ".join(repr(n) for n in names) or "none"
    problem = "is ambiguous" if found else "does not exist"
    raise PortNotFound(f"{direction} port {wanted!r} {problem}; {direction} ports: {listing}")


def check_names_free(backend: str, wanted: list[str]) -> None:
    """Refuse (:class:`PortNameTaken`) to create ports called as one that ``backend``
    lists already, whatever its client: two servers of one ``--name`` would be
    indistinguishable to a DAW (JACK would even let the second in, as client "NAME-01")."""
    if not wanted:
        return
    inputs, outputs = list_ports(backend)
    taken = sorted({name for name in inputs + outputs
                    if _plain(name).split(":", 1)[-1] in wanted})
    if taken:
        listing = ", ".join(repr(name) for name in taken)
        raise PortNameTaken(f"MIDI ports named {' and '.join(repr(w) for w in wanted)} exist "
                            f"already ({listing}): is another qbdi serve of that name "
                            "running? Give this one another name with --name NAME")


def list_ports(backend: str) -> tuple[list[str], list[str]]:
    """``(inputs, outputs)`` that ``backend`` can see right now."""
    check_backend(backend)
    if backend == "memory":
        return [], []
    rt = rtmidi_backend(backend)
    return rt.get_input_names(), rt.get_output_names()


