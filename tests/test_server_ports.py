"""Ports, backends and the CLI's start-up failures (no JACK needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qbdi.server.backends import backend_works, resolve_port
from qbdi.server.errors import PortNotFound

NAMES = ["qbdi:qbdi in", "Midi Through:Midi Through Port-0 14:0", "loopMIDI Port 1"]


def test_ports_resolve_by_full_name_port_name_or_unique_substring():
    assert resolve_port("qbdi:qbdi in", NAMES, "input") == "qbdi:qbdi in"
    assert resolve_port("qbdi in", NAMES, "input") == "qbdi:qbdi in"
    assert resolve_port("Midi Through:Midi Through Port-0", NAMES, "input") == NAMES[1]
    assert resolve_port("loopmidi", NAMES, "input") == "loopMIDI Port 1"
    with pytest.raises(PortNotFound, match="does not exist; input ports: 'qbdi:qbdi in'"):
        resolve_port("keyboard", NAMES, "input")
    with pytest.raises(PortNotFound, match="ambiguous"):
        resolve_port("i", NAMES, "input")


def _qbdi(*args: str, timeout_s: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qbdi.cli", *args], capture_output=True,
                          text=True, timeout=timeout_s)


@pytest.mark.skipif(backend_works("alsa"), reason="this machine has an ALSA sequencer")
def test_serve_fails_at_once_saying_what_to_start_when_the_backend_cannot_work():
    result = _qbdi("serve", "--backend", "alsa", "--osc-port", "0")
    assert result.returncode == 2
    assert "no ALSA sequencer" in result.stderr


def test_serve_refuses_an_open_osc_bind_without_allowlist_and_a_bad_preset(tmp_path):
    result = _qbdi("serve", "--backend", "memory", "--osc-host", "0.0.0.0", "--osc-port", "0")
    assert result.returncode == 2 and "--osc-allow" in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[playing]\nmidi_channel = 0\n")
    result = _qbdi("serve", "--backend", "memory", "--preset", str(bad))
    assert result.returncode == 2 and "bad.toml" in result.stderr
    assert "playing.midi_channel" in result.stderr


def test_presets_and_osc_help_commands_print_their_tables(tmp_path):
    listed = _qbdi("presets")
    assert listed.returncode == 0 and "paper-256" in listed.stdout
    (tmp_path / "slow.toml").write_text('tempo_bpm = 61.0\ndescription = "my slow one"\n')
    mine = _qbdi("presets", "--preset-dir", tmp_path)
    assert mine.returncode == 0 and "my slow one" in mine.stdout and "paper-256" in mine.stdout
    (tmp_path / "bad.toml").write_text("tempo_bpm = -1.0\n")
    invalid = _qbdi("presets", "--preset-dir", tmp_path)
    assert invalid.returncode == 2 and "bad.toml: tempo_bpm" in invalid.stderr
    table = _qbdi("osc-help", "--markdown")
    assert table.returncode == 0 and "| `/qbdi/bits` |" in table.stdout
