"""``qbdi doctor`` with and without a JACK server, run as the command a user types.

JACK's presence is controlled per test and never disturbs another test's server: each test
names its own server through ``JACK_DEFAULT_SERVER`` (``jackd -n NAME`` starts one under
that name), so a JACK server another test started under the default name is not seen.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import count

import pytest
from jack_names import reusable_name

from qbdi.commands import doctor

PYTHON_QBDI = [sys.executable, "-m", "qbdi.cli", "doctor"]
HAS_ALSA_SEQ = os.path.exists("/dev/snd/seq")


def _env(server: str) -> dict[str, str]:
    return {**os.environ, "JACK_DEFAULT_SERVER": server, "JACK_NO_START_SERVER": "1"}


def _jack_up(server: str) -> bool:
    probe = subprocess.run(["jack_lsp"], env=_env(server), capture_output=True, timeout=10)
    return probe.returncode == 0


@pytest.fixture
def private_jack() -> Iterator[str]:
    """A dummy-driver JACK server under a name of its own; yields the name."""
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        pytest.skip("jackd is not installed (apt-get install jackd2)")
    server = reusable_name("qbdi-doctor")
    process = subprocess.Popen(["jackd", "-n", server, "--no-realtime", "-d", "dummy",
                                "-r", "48000", "-p", "128"], env=_env(server),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while process.poll() is None and not _jack_up(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _jack_up(server):
            error = process.stderr.read().decode(errors="replace")[-400:] \
                if process.poll() is not None else "timed out"
            pytest.skip(f"jackd could not start a dummy-driver server: {error}")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


def _doctor(server: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYTHON_QBDI, "--osc-port", "0", *options], env=_env(server),
                          capture_output=True, text=True, timeout=120)


def test_with_jack_running_serve_can_work(private_jack):
    result = _doctor(private_jack)
    assert result.returncode == 0, result.stdout + result.stderr
    backend = "alsa" if HAS_ALSA_SEQ else "jack"
    assert f"serve will use --backend {backend}" in result.stdout
    assert "OK    MIDI jack" in result.stdout
    assert "OK    one bar" in result.stdout and "OK    model" in result.stdout
    assert "qbdi serve can work here." in result.stdout
    explicit = _doctor(private_jack, "--backend", "jack")
    assert explicit.returncode == 0, explicit.stdout
    assert "MIDI ports" in explicit.stdout


def test_without_jack_it_fails_and_says_what_to_start():
    server = f"qbdi-doctor-absent-{os.getpid()}"
    assert not _jack_up(server)
    result = _doctor(server, "--backend", "jack")
    assert result.returncode != 0
    assert "FAIL  MIDI jack" in result.stdout
    assert "jackd --no-realtime -d dummy -r 48000 -p 128" in result.stdout
    assert f"-n {server}" in result.stdout, "the fix names the server JACK_DEFAULT_SERVER wants"
    assert "qbdi serve cannot work yet" in result.stdout


@pytest.mark.skipif(HAS_ALSA_SEQ, reason="this machine has an ALSA sequencer: serve works")
def test_without_alsa_or_jack_both_fixes_are_named():
    result = _doctor(f"qbdi-doctor-absent-{os.getpid()}")
    assert result.returncode != 0
    assert "FAIL  MIDI alsa" in result.stdout and "no ALSA sequencer" in result.stdout
    assert "FAIL  MIDI backend" in result.stdout
    assert "jackd --no-realtime" in result.stdout and "--device /dev/snd" in result.stdout


def _args(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    doctor.add_arguments(parser)
    args = parser.parse_args(["--backend", "memory", "--osc-port", "0"])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_a_busy_osc_port_fails(capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        assert doctor.run(_args(osc_port=port)) == 1
    out = capsys.readouterr().out
    assert "FAIL  OSC port" in out and "--osc-port" in out


def test_a_bar_slower_than_its_budget_fails():
    ticks = count()
    checks = doctor.run_checks(_args(), clock=lambda: float(next(ticks)))  # 1 s a bar
    bar = next(c for c in checks if c.name == "one bar")
    assert bar.status == doctor.FAIL and "1000.0 ms" in bar.detail and bar.fix


def test_a_missing_model_fails_with_its_path(tmp_path):
    missing = tmp_path / "none.safetensors"
    checks = doctor.run_checks(_args(model=str(missing)), clock=time.perf_counter)
    model = next(c for c in checks if c.name == "model")
    assert model.status == doctor.FAIL and str(missing) in model.detail
    assert all(c.name != "one bar" for c in checks)


def test_memory_backend_and_a_free_port_pass(capsys):
    assert doctor.run(_args()) == 0
    assert "qbdi serve can work here." in capsys.readouterr().out
