"""Fuzzing the OSC interface of a running server over real UDP on 127.0.0.1.

Datagrams: random bytes, well-formed messages to known, unknown and pattern addresses with
arguments of every OSC type (NaN, inf, huge ints, blobs, wrong counts), the same with bad
type tags, truncated or with flipped bytes, bundles with past and far-future timetags,
nested bundles, bundles whose element sizes lie, and datagrams near the UDP size limit.

After every batch the server must be alive and answer ``/qbdi/status``; its state must equal
a model that applies only the valid messages (the model below is written from the protocol
table, independently of the handlers); its transport counters must account for every
datagram (so no packet was lost on the way and the model saw what the server saw); and after
``/qbdi/mode mute`` no note may be left sounding on the output.

CI runs a few thousand datagrams; ``--run-slow`` runs over 100k.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from stress_rig import live_server

from qbdi.presets import list_presets, load_preset
from qbdi.server import osc
from qbdi.server.osc_transport import check_bundle
from qbdi.settings import (
    CHANNELS,
    ECHO_GUARDS,
    MODES,
    SILENCE_POLICIES,
    STATS_SOURCES,
    Preset,
    changed,
)

MAX_UDP_BYTES = 65_507
SYNC_SEED = 7_000_000_000_000
SOCKET_BUFFER_BYTES = 200_000  # about Linux's default receive buffer: pace to stay below it
MAX_BITS = 2**31 - 1
MAX_SEED = 2**63 - 1
CI_EXAMPLES, SLOW_EXAMPLES = 100, 2_600  # batches of 20-48 (CI) or 40-48 (slow) datagrams


# -- the model: what a valid message does, from the protocol table -----------------------

def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _whole(value: Any, low: int, high: int) -> int | None:
    if not _is_number(value) or value != int(value) or not low <= int(value) <= high:
        return None
    return int(value)


def _switch(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if _is_number(value) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("on", "off", "true", "false"):
        return value.lower() in ("on", "true")
    return None


def expected_after(state: Preset, address: str, args: list[Any]) -> Preset:
    """The state after one message to a table address (unchanged when it is refused)."""
    if address in ("/qbdi/panic", "/qbdi/status"):
        return state
    if len(args) != 1:
        return state
    value = args[0]
    new: dict[str, Any] | None = None
    if address == "/qbdi/bits":
        bits = "full" if value == "full" else _whole(value, 0, MAX_BITS)
        new = None if bits is None else {"improviser": {"budget_bits": bits}}
    elif address == "/qbdi/mode" and value in MODES and isinstance(value, str):
        new = {"improviser": {"mode": value}}
    elif address == "/qbdi/bpm" and _is_number(value) and 20 <= value <= 960:
        new = {"tempo_bpm": float(value)}
    elif address == "/qbdi/threshold" and _is_number(value) and 0 < value < 1:
        new = {"improviser": {"threshold": float(value)}}
    elif address == "/qbdi/sampling" and _switch(value) is not None:
        new = {"improviser": {"sampling": _switch(value)}}
    elif address == "/qbdi/stats" and isinstance(value, str) and value in STATS_SOURCES:
        new = {"improviser": {"stats": value}}
    elif address == "/qbdi/channel" and isinstance(value, str) and value in CHANNELS:
        new = {"improviser": {"channel": value}}
    elif address == "/qbdi/seed" and _whole(value, 0, MAX_SEED) is not None:
        new = {"improviser": {"seed": _whole(value, 0, MAX_SEED)}}
    elif address == "/qbdi/silence" and isinstance(value, str) and value in SILENCE_POLICIES:
        new = {"playing": {"silence": value}}
    elif address == "/qbdi/velocity":
        if value == "follow":
            new = {"playing": {"velocity": "follow"}}
        elif _whole(value, 1, 127) is not None:
            new = {"playing": {"velocity": "fixed", "fixed_velocity": _whole(value, 1, 127)}}
    elif address == "/qbdi/echo/guard" and isinstance(value, str) and value in ECHO_GUARDS:
        new = {"playing": {"echo_guard": value}}
    elif address == "/qbdi/ir/enable" and _switch(value) is not None:
        new = {"live_ir": {"enabled": _switch(value)}}
    elif address == "/qbdi/ir/threshold" and _is_number(value) and 0 < value <= 3:
        new = {"live_ir": {"threshold": float(value)}}
    elif address == "/qbdi/preset" and isinstance(value, str) and value in list_presets():
        return load_preset(value)
    if new is None:
        return state
    return changed(state, **new)


class Model:
    """Parses each datagram as the server's transport does and applies valid messages."""

    def __init__(self, state: Preset) -> None:
        self.state = state
        self.dispatcher = osc.build_dispatcher()
        self.malformed = 0
        self.messages = 0

    def feed(self, data: bytes) -> None:
        try:
            check_bundle(data)  # python-osc alone loops forever on a negative element size
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception:
            self.malformed += 1
            return
        for msg in messages:
            self.messages += 1
            for row in osc.rows_for(self.dispatcher, msg.address):
                self.state = expected_after(self.state, row.address, list(msg.params))


# -- datagrams ----------------------------------------------------------------------------

ADDRESSES = st.one_of(
    st.sampled_from([row.address for row in osc.TABLE]),
    st.sampled_from(["/qbdi/*", "/qbdi/{bits,seed}", "/qbdi/[bs]*", "/*/mode", "/qbdi/bit?",
                     "/qbdi", "/", "/qbdi/bits/", "qbdi/bits", "/QBDI/BITS", "//qbdi//bits",
                     "/qbdi/[", "/qbdi/{", "/qbdi/*a*a*a*a*a*a*a*a*a*a*a*a*a*b"]),
    st.text(min_size=0, max_size=80).map(lambda t: "/" + t.replace("\x00", "")),
)
NUMBERS = st.one_of(
    st.integers(-(2**31), 2**31 - 1), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 64, 256, 2**31 - 1, 0.0, -0.0, 0.5, 1.0, 120.0, 960.0, 961.0,
                     19.9, math.nan, math.inf, -math.inf, 1e300, 3.4e38]),
)
WORDS = st.sampled_from(["full", "query", "free", "echo", "mute", "window", "corpus",
                         "prior", "silent", "repeat", "follow", "on", "off", "auto", "true",
                         "FALSE",
                         "", "loud", "default-ish", "../../etc/passwd", "/dev/zero",
                         "/nonexistent/preset.toml"])
ARG = st.one_of(
    st.tuples(st.just("i"), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just("h"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("f"), st.floats(width=32, allow_nan=True, allow_infinity=True)),
    st.tuples(st.just("d"), NUMBERS.filter(lambda v: isinstance(v, float))),
    st.tuples(st.just("s"), st.one_of(WORDS, st.text(max_size=40).map(
        lambda t: t.replace("\x00", "")))),
    st.tuples(st.just("b"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.sampled_from(["T", "F", "N"]), st.none()),
    st.tuples(st.just("m"), st.tuples(*[st.integers(0, 255)] * 4)),
    st.tuples(st.just("r"), st.integers(0, 2**32 - 1)),
)
EDGE = st.one_of(
    st.sampled_from([("d", 1e300), ("d", -1e300), ("h", 2**63 - 1), ("h", -(2**63)),
                     ("i", 2**31 - 1), ("h", 2**31), ("d", 2.0**31), ("d", 2.0**63),
                     ("d", 9.2e18), ("f", math.nan), ("d", math.inf), ("d", -0.0),
                     ("i", 0), ("i", 1), ("i", 128), ("d", 0.999999), ("f", 1e-45),
                     ("d", 19.999), ("d", 960.0001), ("T", None), ("F", None), ("N", None)]),
    st.tuples(st.just("s"), WORDS),
)
VALID = st.one_of(
    st.tuples(st.just("/qbdi/bits"), st.one_of(st.integers(0, 2048).map(lambda v: [("i", v)]),
                                               st.just([("s", "full")]))),
    st.tuples(st.just("/qbdi/mode"), st.sampled_from(MODES).map(lambda v: [("s", v)])),
    st.tuples(st.just("/qbdi/bpm"), st.floats(20, 960).map(lambda v: [("d", v)])),
    st.tuples(st.just("/qbdi/threshold"),
              st.floats(0.05, 0.95).map(lambda v: [("f", v)])),
    st.tuples(st.just("/qbdi/velocity"), st.integers(1, 127).map(lambda v: [("i", v)])),
    st.tuples(st.just("/qbdi/seed"), st.integers(0, 2**40).map(lambda v: [("h", v)])),
)


def message(address: str, args: list[tuple[str, Any]]) -> bytes:
    builder = OscMessageBuilder(address)
    for kind, value in args:
        builder.add_arg(value, kind)
    return builder.build().dgram


def bundle(parts: list[bytes], timetag: float) -> bytes:
    """A bundle of ready datagrams (messages or bundles) with ``timetag`` (NTP seconds)."""
    body = b"".join(struct.pack(">i", len(part)) + part for part in parts)
    seconds = int(timetag)
    fraction = int((timetag - seconds) * 2**32) & 0xFFFFFFFF
    return b"#bundle\x00" + struct.pack(">II", seconds & 0xFFFFFFFF, fraction) + body


@st.composite
def datagrams(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "message", "message", "valid", "valid", "edge",
                                 "edge", "tags", "truncated", "flipped", "bundle", "nested",
                                 "lying", "huge"]))
    if kind == "bytes":
        return draw(st.binary(max_size=512))
    if kind == "edge":  # one boundary value to a real address
        address = draw(st.sampled_from([row.address for row in osc.TABLE]))
        return message(address, [draw(EDGE)])
    if kind == "valid":
        return message(*draw(VALID))
    msg = message(draw(ADDRESSES), draw(st.lists(ARG, max_size=4)))
    if kind == "tags":  # replace the type tag string with random tag characters
        head, _, rest = msg.partition(b",")
        tags = draw(st.text(alphabet="ifdshbTFNImcrt[]Zq\x01", max_size=6)).encode()
        return head + b"," + tags + b"\x00" * (4 - (len(tags) + 1) % 4) + rest
    if kind == "truncated":
        return msg[: draw(st.integers(0, max(len(msg) - 1, 0)))]
    if kind == "flipped":
        index = draw(st.integers(0, len(msg) - 1))
        return msg[:index] + bytes([draw(st.integers(0, 255))]) + msg[index + 1 :]
    if kind == "huge":
        size = draw(st.sampled_from([4_000, 40_000, 65_000]))
        return message(draw(ADDRESSES), [("b", b"\x7f" * size)])[:MAX_UDP_BYTES]
    timetag = draw(st.sampled_from([1.0, 2.0**32 - 1, 3_900_000_000.5, 0.0]))
    inner = [msg, message(*draw(VALID))]
    if kind == "bundle":
        builder = OscBundleBuilder(IMMEDIATELY)
        return bundle(inner, timetag) if draw(st.booleans()) else builder.build().dgram
    if kind == "nested":
        depth = draw(st.integers(1, 6))
        data = bundle(inner, timetag)
        for _ in range(depth):
            data = bundle([data], timetag)
        return data
    # lying: an element size beyond the datagram, negative, or zero
    size = draw(st.sampled_from([len(msg) + 1, 2**31 - 1, -4, 0, 3]))
    return b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", size) + msg


# -- the test -----------------------------------------------------------------------------

def _state(tiny_checkpoint) -> Preset:
    return changed(load_preset("default"), tempo_bpm=480.0, improviser={"mode": "echo"})


def _run(tiny_checkpoint, examples: int, min_batch: int = 1) -> int:
    state = _state(tiny_checkpoint)
    with live_server(tiny_checkpoint, state) as live:
        model = Model(state)
        sent = {"n": 0, "sync": 0}

        def sync() -> dict[str, Any]:
            """Counters once everything sent before is handled. A fuzzed datagram may ask
            for /qbdi/status too, so first wait for the reply to a unique seed."""
            sent["sync"] += 1
            marker = SYNC_SEED + sent["sync"]
            live.client.send("/qbdi/seed", marker)
            model.feed(message("/qbdi/seed", [("h", marker)]))
            while live.client.wait_for("/qbdi/seed") != [marker]:
                pass
            model.messages += 1  # the status request
            return live.client.status()

        # No shrinking: the server's state carries over from batch to batch, so the first
        # failing batch is the one to read.
        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  phases=(Phase.explicit, Phase.generate),
                  suppress_health_check=list(HealthCheck))
        @given(batch=st.lists(datagrams(), min_size=min_batch, max_size=48))
        def one_batch(batch: list[bytes]) -> None:
            in_flight = 0
            for data in batch:
                if in_flight + len(data) > SOCKET_BUFFER_BYTES // 4 or in_flight >= 16:
                    sync()  # let the server drain its socket buffer first
                    in_flight = 0
                live.client.send_raw(data)
                model.feed(data)
                in_flight += len(data) if len(data) > 1024 else 1
            sent["n"] += len(batch)
            counts = sync()  # the server is alive and has handled the batch
            assert live.alive(), live.errors
            assert counts["osc_malformed"] == model.malformed
            assert live.transport.counters.received == model.messages, "a datagram was lost"
            assert live.server.state == model.state
            live.client.send("/qbdi/mode", "mute")
            model.feed(message("/qbdi/mode", [("s", "mute")]))
            sync()
            assert live.ports.sounding == set()
            assert live.server.loop.scheduler.sounding == {}

        one_batch()
        assert live.alive()
        live.server.shutdown()
    recorder = live.ports.recorder
    assert recorder.sounding == set()
    assert recorder.double_note_ons == 0
    return sent["n"]


def test_random_and_malformed_osc_never_crash_or_change_state_wrongly(tiny_checkpoint):
    assert _run(tiny_checkpoint, CI_EXAMPLES, min_batch=20) >= 2_000


@pytest.mark.slow
def test_over_100k_fuzzed_osc_datagrams(tiny_checkpoint):
    assert _run(tiny_checkpoint, SLOW_EXAMPLES, min_batch=40) >= 100_000


# -- regressions and security claims (docs/security.md) ----------------------------------

def test_a_bundle_with_a_negative_element_size_is_malformed_not_a_hang():
    from qbdi.server.osc_transport import OscTransport

    got: list[str] = []
    transport = OscTransport("127.0.0.1", 0)
    transport.on_message = lambda address, args, sender: got.append(address)
    try:
        # python-osc alone loops forever on this 24-byte datagram
        transport.receive(b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", -4) + b"/x\x00\x00",
                          ("127.0.0.1", 1))
        deep = message("/qbdi/panic", [])
        for _ in range(20):
            deep = bundle([deep], 1.0)
        transport.receive(deep, ("127.0.0.1", 1))
    finally:
        transport.close()
    assert transport.counters.malformed == 2 and got == []


def test_senders_outside_the_allowlist_are_dropped_and_counted():
    from qbdi.server.osc_transport import OscTransport

    got: list[str] = []
    transport = OscTransport("0.0.0.0", 0, allow=["192.0.2.7"])
    transport.on_message = lambda address, args, sender: got.append(sender[0])
    try:
        for sender in ("192.0.2.7", "192.0.2.8", "127.0.0.1", "10.0.0.1"):
            transport.receive(message("/qbdi/panic", []), (sender, 9999))
    finally:
        transport.close()
    assert got == ["192.0.2.7", "127.0.0.1"]
    assert transport.counters.refused_sender == 2


def test_runtime_code_has_no_shell_outs_eval_or_pickle():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    forbidden = re.compile(r"import subprocess|from subprocess|os\.system|os\.popen|"
                           r"shell=True|(?<![\w.])eval\(|(?<![\w.])exec\(|import pickle|"
                           r"pickle\.load|torch\.load|yaml\.load|import marshal")
    found = [f"{path.relative_to(root)}: {match}"
             for package in ("qbdi", "server", "models", "channel", "analysis", "presets")
             for path in (root / package).rglob("*.py")
             for match in forbidden.findall(path.read_text(encoding="utf-8"))]
    assert found == [], "review these against docs/security.md"
