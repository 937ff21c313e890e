"""Serving, rendering and analysing need no torch, and neither do their tests: only training
does (the ``train`` extra). Each check runs in a fresh interpreter where ``import torch``
fails, as on a machine where torch is not installed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from query_data import CHORDS_MELODY

from qbdi.midifile import read_midi

ROOT = Path(__file__).resolve().parents[1]
BLOCK = ("import sys\nsys.path.insert(0, 'tests')\n"
         "from torch_block import block_torch\nblock_torch()\n")
TRAINING = {"qbdi.models.train", "qbdi.models.vae"}  # the only modules that import torch
# The live loop and server in memory, and the improviser: run again
# with torch blocked (the real-port, real-clock and long tests are left to the main run).
WITHOUT_TORCH = ("test_server_loop.py", "test_server_clocks.py", "test_server_live_ir.py",
                 "test_stuck_notes.py", "test_port_loss.py", "test_take.py",
                 "test_model_switch.py", "test_improviser.py")


def python(code: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True,
                          timeout=timeout_s, cwd=ROOT)


def test_every_module_but_training_imports_without_torch() -> None:
    result = python(
        "import importlib, pkgutil\n"
        "failed = []\n"
        "for root in ('qbdi', 'qbdi.commands', 'qbdi.models', 'qbdi.channel', 'qbdi.analysis',"
        " 'qbdi.server', 'qbdi.presets'):\n"
        "    for info in pkgutil.iter_modules(importlib.import_module(root).__path__,"
        " root + '.'):\n"
        "        try:\n"
        "            importlib.import_module(info.name)\n"
        "        except ImportError as err:\n"
        "            failed.append(info.name)\n"
        "        else:\n"
        "            print(info.name)\n"
        "print('failed', *failed)\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert set(lines[-1].split()[1:]) == TRAINING
    assert {"qbdi.cli", "qbdi.server.session", "qbdi.commands.serve",
            "qbdi.commands.render", "qbdi.models.runtime"} <= set(lines)


def test_render_runs_without_torch(tiny_checkpoint, queries_dir, tmp_path) -> None:
    out = tmp_path / "out.mid"
    result = python(
        "from qbdi.cli import main\n"
        f"code = main(['render', {str(queries_dir / CHORDS_MELODY)!r}, '-o', {str(out)!r},"
        f" '--model', {str(tiny_checkpoint)!r}])\n"
        "assert 'torch' not in sys.modules\n"
        "sys.exit(code)\n")
    assert result.returncode == 0, result.stderr
    assert read_midi(out).notes


def test_loop_and_server_tests_pass_without_torch(tmp_path) -> None:
    """Every test module is collected with torch blocked (only the training ones skip), and
    the loop, server and improviser tests pass."""
    selected = " or ".join(WITHOUT_TORCH)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "--block-torch", "-v", "-rs",
         "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "run"),
         "-m", "not jack and not realtime and not slow", "-k", selected],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    skipped = re.findall(r"^SKIPPED \[\d+\] (\S+?):\d+: (.*)$", result.stdout, re.M)
    assert {path for path, _ in skipped} == {"tests/test_models.py", "tests/test_train.py"}
    assert all("needs torch" in reason for _, reason in skipped), skipped
    passed = re.findall(r"^tests/(test_\w+\.py)::\S+ PASSED", result.stdout, re.M)
    assert set(passed) == set(WITHOUT_TORCH) and len(passed) > 80, result.stdout[-2000:]
