"""Several servers side by side (issue 12.5): ``qbdi serve --name NAME`` names the MIDI
client and its ports, the take file and the log lines; two servers with two models run on
one JACK server, each answering on its own ports only; a third of an existing name is
refused with a clear message (exit 2)."""

from __future__ import annotations

import signal
import subprocess
import time

import mido
import pytest
from jack_listener import Listener
from serve_rig import serve_command, serve_env
from stress_rig import echo_preset, jack_backend, jack_server

from qbdi.commands.serve_args import _server_name
from qbdi.models.checkpoint import default_checkpoint_path
from qbdi.server.backends import resolve_port
from qbdi.server.ports import close_in_turn

READY_TIMEOUT_S = 30.0


def _start(name: str, model, preset, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        serve_command("--backend", "jack", "--name", name, "--model", str(model), "--preset",
                      str(preset), "--osc-port", "0", "--no-view", *extra),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=serve_env())


def _ready(process: subprocess.Popen) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    line = ""
    while time.monotonic() < deadline and "ready" not in line:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise AssertionError(f"qbdi serve exited: {process.stderr.read()}")
    assert "ready" in line, line
    return line


def _stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    return process.stderr.read()


@pytest.mark.jack
def test_two_named_servers_side_by_side_and_a_taken_name_refused(tiny_checkpoint, tmp_path):
    preset = echo_preset(tmp_path)
    with jack_server():
        alpha = _start("alpha", tiny_checkpoint, preset, "--record", str(tmp_path))
        beta = _start("beta", default_checkpoint_path(), preset)
        try:
            assert "in 'alpha in', out 'alpha out'" in _ready(alpha)
            assert _ready(beta).startswith("qbdi serve [beta]: ready:")
            rt = jack_backend()
            inputs, outputs = rt.get_input_names(), rt.get_output_names()
            # One MIDI client name per server: JACK makes the second port's client unique.
            assert "alpha:alpha in" in outputs and "beta:beta in" in outputs
            assert {resolve_port(f"{n} out", inputs, "input") for n in ("alpha", "beta")} \
                == {"alpha-01:alpha out", "beta-01:beta out"}
            listeners = {n: Listener(resolve_port(f"{n} out", inputs, "input"))
                         for n in ("alpha", "beta")}
            players = {n: rt.open_output(resolve_port(f"{n} in", outputs, "output"))
                       for n in listeners}
            time.sleep(0.3)
            players["alpha"].send(mido.Message("note_on", note=60, velocity=90))
            players["beta"].send(mido.Message("note_on", note=72, velocity=90))
            time.sleep(1.2)  # two bars at 480 BPM: each echo comes back within one
            close_in_turn(*(port.close for port in (*listeners.values(), *players.values())))
            notes = {n: {m.note for m in got.messages if m.type == "note_on" and m.velocity}
                     for n, got in listeners.items()}
            assert notes == {"alpha": {60}, "beta": {72}}

            again = _start("alpha", tiny_checkpoint, preset)
            assert again.wait(timeout=READY_TIMEOUT_S) == 2
            error = again.stderr.read()
            assert "'alpha in' and 'alpha out' exist already" in error, error
            assert "--name" in error
        finally:
            log_alpha, _ = _stop(alpha), _stop(beta)
    assert "qbdi serve [alpha]: INFO: take saved" in log_alpha, log_alpha
    assert [path.name.startswith("alpha-take-") for path in tmp_path.glob("*.mid")] == [True]


@pytest.mark.parametrize("name", ["", " lead", "a:b", "x" * 33, "tab\there", "ü"])
def test_names_a_backend_cannot_carry_are_refused(name):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="a name is 1-32"):
        _server_name(name)
    assert _server_name("Lead synth_2.b-1") == "Lead synth_2.b-1"


def test_a_bad_name_exits_2_before_anything_opens():
    result = subprocess.run(serve_command("--backend", "memory", "--name", "a:b"),
                            capture_output=True, text=True, env=serve_env(), timeout=60)
    assert result.returncode == 2 and "--name" in result.stderr
