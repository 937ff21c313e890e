"""OSC over real UDP on 127.0.0.1: every address fires, bad values are refused with
/qbdi/error and the old value stays, feedback arrives, malformed datagrams are counted."""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mido
import pytest
from pythonosc.osc_message import OscMessage

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_named_preset, load_preset
from qbdi.server import osc, osc_docs
from qbdi.server.clocks import InternalClock
from qbdi.server.errors import OscSetupError
from qbdi.server.osc_transport import OscTransport, TokenBucket, check_bind, encode
from qbdi.server.ports import MemoryPorts
from qbdi.server.recorder import NoteRecorder
from qbdi.server.session import Server
from qbdi.settings import changed

REPLY_TIMEOUT_S = 2.0


class Client:
    """A UDP OSC client on an ephemeral port that collects what comes back."""

    def __init__(self, server_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.server = ("127.0.0.1", server_port)
        self.received: list[tuple[str, list[Any]]] = []

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(encode(address, args), self.server)

    def wait_for(self, address: str, timeout_s: float = REPLY_TIMEOUT_S) -> list[Any]:
        """The arguments of the first message at ``address`` not yet taken."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for i, (got, args) in enumerate(self.received):
                if got == address:
                    del self.received[i]
                    return args
            try:
                data, _ = self.sock.recvfrom(65_535)
            except TimeoutError:
                continue
            message = OscMessage(data)
            self.received.append((message.address, list(message.params)))
        raise AssertionError(f"no {address} within {timeout_s} s; got {self.received}")

    def ask(self, address: str, *args: Any, reply: str | None = None) -> list[Any]:
        self.send(address, *args)
        return self.wait_for(reply or address)


class Running:
    """A server on memory ports, its loop on a thread, OSC on an ephemeral UDP port."""

    def __init__(self, checkpoint, feedback=None, rate_per_s: float = 1000.0,
                 preset_dir: Path | None = None) -> None:
        self.state = changed(load_preset("default"), tempo_bpm=960.0,
                             improviser={"mode": "echo"})
        improviser = Improviser.from_checkpoint(load_checkpoint(checkpoint))
        self.ports = MemoryPorts()
        self.transport = OscTransport("127.0.0.1", 0, feedback=feedback, rate_per_s=rate_per_s)
        self.server = Server(self.ports, InternalClock(960.0), improviser, self.state,
                             feedback=self.transport,
                             preset_loader=functools.partial(load_named_preset,
                                                             user_dir=preset_dir),
                             status_counts=self.transport.status_counts)
        self.stop = threading.Event()
        self.server.start()
        self.transport.start(self.server.post_osc)
        self.thread = threading.Thread(target=self.server.serve, args=(self.stop,), daemon=True)
        self.thread.start()
        self.client = Client(self.transport.port)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2.0)
        self.transport.close()
        self.client.sock.close()


@pytest.fixture
def running(tiny_checkpoint) -> Iterator[Running]:
    rig = Running(tiny_checkpoint)
    yield rig
    rig.close()
    assert NoteRecorder.of(m for _, m in rig.ports.sent).sounding == set()


SETTINGS_CASES = [
    ("/qbdi/bits", [64], [64], lambda s: s.improviser.budget_bits == 64),
    ("/qbdi/bits", ["full"], ["full"], lambda s: s.improviser.budget_bits == "full"),
    ("/qbdi/mode", ["free"], ["free"], lambda s: s.improviser.mode == "free"),
    ("/qbdi/bpm", [132.5], [132.5], lambda s: s.tempo_bpm == 132.5),
    ("/qbdi/threshold", [0.4], [pytest.approx(0.4)], lambda s: s.improviser.threshold
     == pytest.approx(0.4)),
    ("/qbdi/sampling", [1], [1], lambda s: s.improviser.sampling is True),
    ("/qbdi/stats", ["corpus"], ["corpus"], lambda s: s.improviser.stats == "corpus"),
    ("/qbdi/channel", ["paper"], ["paper"], lambda s: s.improviser.channel == "paper"),
    ("/qbdi/seed", [7], [7], lambda s: s.improviser.seed == 7),
    ("/qbdi/silence", ["repeat"], ["repeat"], lambda s: s.playing.silence == "repeat"),
    ("/qbdi/velocity", [64], [64], lambda s: s.playing.fixed_velocity == 64),
    ("/qbdi/ir/enable", ["on"], [1], lambda s: s.live_ir.enabled is True),
    ("/qbdi/ir/threshold", [0.5], [0.5], lambda s: s.live_ir.threshold == 0.5),
    ("/qbdi/echo/guard", ["off"], ["off"], lambda s: s.playing.echo_guard == "off"),
]


@pytest.mark.parametrize(("address", "args", "reply", "check"), SETTINGS_CASES,
                         ids=[f"{c[0]}={c[1][0]}" for c in SETTINGS_CASES])
def test_each_setting_address_applies_and_replies_the_new_value(running, address, args, reply,
                                                                check):
    assert running.client.ask(address, *args) == reply
    assert check(running.server.state)


def test_every_address_in_the_table_has_a_test():
    # /qbdi/model: tests/test_model_switch.py (it needs a session with two models)
    tested = {c[0] for c in SETTINGS_CASES} | {"/qbdi/preset", "/qbdi/panic", "/qbdi/status",
                                               "/qbdi/model", "/qbdi/learn"}
    assert tested == set(osc.BY_ADDRESS)


def test_preset_loads_by_name_and_replies_its_values(running):
    running.client.send("/qbdi/preset", "free")
    assert running.client.wait_for("/qbdi/mode") == ["free"]
    assert running.server.state == load_preset("free")
    assert running.client.wait_for("/qbdi/bpm") == [load_preset("free").tempo_bpm]


@pytest.fixture
def with_presets(tiny_checkpoint, tmp_path) -> Iterator[Running]:
    """A running server whose --preset-dir is ``tmp_path``."""
    rig = Running(tiny_checkpoint, preset_dir=tmp_path)
    yield rig
    rig.close()


def test_a_preset_in_the_users_folder_loads_by_name(with_presets, tmp_path):
    (tmp_path / "slow.toml").write_text('tempo_bpm = 61.0\n[improviser]\nmode = "free"\n')
    controls = with_presets.server.state.controls
    with_presets.client.send("/qbdi/preset", "slow")
    assert with_presets.client.wait_for("/qbdi/bpm") == [61.0]
    # The MIDI controls in use stay: slow.toml's (empty) [controls] table counts only at start.
    assert with_presets.server.state == load_preset(tmp_path / "slow.toml").model_copy(
        update={"controls": controls})
    assert controls.cc.bits == 1


def test_a_bad_preset_is_refused_and_the_state_stays(with_presets, tmp_path):
    (tmp_path / "bad.toml").write_text('tempo_bpm = 120.0\n[improviser]\nbudget_bits = "lots"\n')
    before = with_presets.server.state
    client = with_presets.client
    reason = client.ask("/qbdi/preset", "bad", reply="/qbdi/error")[0]
    assert "bad.toml" in reason and "improviser.budget_bits" in reason
    missing = client.ask("/qbdi/preset", "no-such-preset", reply="/qbdi/error")[0]
    assert "no such preset" in missing
    assert with_presets.server.state == before


@pytest.mark.parametrize("path", ["/etc/hostname", "../bad", "bad.toml"])
def test_a_preset_path_is_refused_so_a_peer_cannot_probe_files(with_presets, tmp_path, path):
    (tmp_path / "bad.toml").write_text("tempo_bpm = 90.0\n")
    before = with_presets.server.state
    reason = with_presets.client.ask("/qbdi/preset", path, reply="/qbdi/error")[0]
    assert "by name" in reason and "hostname" not in reason.replace(path, "")
    assert with_presets.server.state == before


def test_panic_ends_notes_with_cc_123(running):
    running.client.send("/qbdi/panic")
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while time.monotonic() < deadline and not any(
            m.is_cc(123) for _, m in running.ports.sent):
        time.sleep(0.01)
    assert any(m.is_cc(123) for _, m in running.ports.sent)


def test_learn_binds_the_next_cc_and_replies_when_bound(running):
    assert running.client.ask("/qbdi/learn", "bits") == ["bits", "waiting"]
    running.ports.play(mido.Message("control_change", control=21, value=3))
    assert running.client.wait_for("/qbdi/learn") == ["bits", "bound", 21]
    assert running.client.wait_for("/qbdi/controls") == ["channel", "all", "bits", 21,
                                                         "threshold", 74]
    running.ports.play(mido.Message("control_change", control=21, value=0))
    running.client.ask("/qbdi/status")  # after the CC: the inbox keeps arrival order
    assert running.server.state.improviser.budget_bits == 0  # (its reply: the feedback target)
    assert running.server.state.controls.cc.bits == 21


def test_status_replies_every_value_and_the_counters(running):
    running.client.send("/qbdi/status")
    assert running.client.wait_for("/qbdi/mode") == ["echo"]
    status = running.client.wait_for("/qbdi/status")
    pairs = dict(zip(status[::2], status[1::2], strict=True))
    assert {"bar", "overruns", "notes_out", "osc_malformed", "midi_controls"} <= set(pairs)


INVALID = [
    ("/qbdi/bits", [-1]), ("/qbdi/bits", [2.5]), ("/qbdi/bits", ["many"]),
    ("/qbdi/mode", ["loud"]), ("/qbdi/mode", [3]),
    ("/qbdi/bpm", [float("nan")]), ("/qbdi/bpm", [5.0]), ("/qbdi/bpm", ["fast"]),
    ("/qbdi/threshold", [1.5]), ("/qbdi/threshold", [float("nan")]), ("/qbdi/threshold", [True]),
    ("/qbdi/sampling", [2]), ("/qbdi/stats", ["median"]), ("/qbdi/channel", ["lossy"]),
    ("/qbdi/seed", [-3]),
    ("/qbdi/silence", ["loud"]), ("/qbdi/velocity", [0]), ("/qbdi/velocity", [200]),
    ("/qbdi/bits", []), ("/qbdi/bits", [1, 2]), ("/qbdi/panic", [1]), ("/qbdi/unknown", [1]),
    ("/qbdi/ir/enable", [2]), ("/qbdi/ir/threshold", [0.0]), ("/qbdi/ir/threshold", [3.5]),
    ("/qbdi/learn", ["tempo"]), ("/qbdi/learn", []), ("/qbdi/learn", [1]),
]


@pytest.mark.parametrize(("address", "args"), INVALID, ids=[f"{a}{v}" for a, v in INVALID])
def test_invalid_values_are_refused_with_an_error_and_the_old_value_stays(running, address,
                                                                          args):
    before = running.server.state
    reason = running.client.ask(address, *args, reply="/qbdi/error")[0]
    assert reason.startswith(address)
    assert running.server.state == before


def test_malformed_datagrams_are_counted_and_the_server_keeps_answering(running):
    for junk in (b"garbage", b"/qbdi/bits\x00\x00,i\x00\x00", b"#bundle\x00\x01"):
        running.client.sock.sendto(junk, running.client.server)
    assert running.client.ask("/qbdi/seed", 3) == [3]
    assert running.transport.counters.malformed == 3


def test_feedback_target_hears_bars_heartbeat_and_changes(tiny_checkpoint):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    rig = Running(tiny_checkpoint, feedback=listener.getsockname())
    try:
        target = Client(0)
        target.sock.close()
        target.sock = listener
        listener.settimeout(0.05)
        bar = target.wait_for("/qbdi/bar")  # a bar is 0.25 s at 960 BPM
        assert len(bar) == 5
        rig.client.send("/qbdi/bits", 12)
        assert target.wait_for("/qbdi/bits") == [12]
        assert len(target.wait_for("/qbdi/heartbeat", timeout_s=3.0)) == 2
    finally:
        rig.close()
        listener.close()


def test_the_rate_limit_drops_a_flood(tiny_checkpoint):
    rig = Running(tiny_checkpoint, rate_per_s=20.0)
    try:
        for seed in range(200):
            rig.client.send("/qbdi/seed", seed)
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while time.monotonic() < deadline and (
                rig.transport.counters.received + rig.transport.counters.rate_limited < 200):
            time.sleep(0.01)
        assert rig.transport.counters.rate_limited >= 150
        assert rig.transport.counters.received >= 20
    finally:
        rig.close()


def test_token_bucket_refills_at_its_rate():
    now = [0.0]
    bucket = TokenBucket(10.0, lambda: now[0])
    assert sum(bucket.take() for _ in range(20)) == 10
    now[0] = 0.5
    assert sum(bucket.take() for _ in range(20)) == 5


def test_binding_beyond_loopback_needs_an_allowlist_and_refuses_others(tiny_checkpoint):
    with pytest.raises(OscSetupError, match="--osc-allow"):
        check_bind("0.0.0.0", [])
    with pytest.raises(OscSetupError, match="not an IP address"):
        check_bind("0.0.0.0", ["my-laptop"])
    got = []
    transport = OscTransport("0.0.0.0", 0, allow=["10.0.0.7"])
    transport.on_message = lambda *a: got.append(a)
    try:
        transport.receive(encode("/qbdi/seed", [1]), ("10.0.0.8", 5000))
        transport.receive(encode("/qbdi/seed", [2]), ("10.0.0.7", 5000))
        assert transport.counters.refused_sender == 1
        assert got == [("/qbdi/seed", [2], ("10.0.0.7", 5000))]
    finally:
        transport.close()


def test_osc_help_and_the_readme_table_come_from_the_handlers_docstrings():
    text, table = osc_docs.help_text(), osc_docs.markdown_table()
    for row in osc.TABLE:
        assert row.doc and row.address in text and row.doc.replace("|", "\\|") in table


def _serve_refusal(*flags: str) -> str:
    """Run ``qbdi serve`` (memory backend) with ``flags``; it must refuse them at once."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "qbdi.cli", "serve", "--backend", "memory",
                             *flags], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_serve_refuses_bad_osc_flags_and_a_port_in_use_with_a_clear_message():
    assert "0-65535" in _serve_refusal("--osc-port", "99999")
    assert "finite and > 0" in _serve_refusal("--osc-rate", "nan")
    assert "--preset-dir /no/such/folder: not a folder" in _serve_refusal(
        "--preset-dir", "/no/such/folder")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert "Address already in use" in _serve_refusal("--osc-port", str(port))


def test_the_folder_of_a_preset_file_is_the_default_preset_dir(tmp_path):
    from qbdi.commands.serve import user_preset_dir

    assert user_preset_dir("default", None) is None
    assert user_preset_dir(str(tmp_path / "live.toml"), None) == tmp_path
    assert user_preset_dir("default", tmp_path) == tmp_path
