"""Locking the server's memory: in a fresh process, what ``lock_memory`` says is what the
kernel reports (``VmLck`` in ``/proc/self/status``), under this machine's limit and under a
lowered one."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

CHILD = """
import json, resource, sys
from qbdi.server.memory_lock import lock_memory
limit_bytes = int(sys.argv[1])
if limit_bytes >= 0:
    resource.setrlimit(resource.RLIMIT_MEMLOCK,
                       (limit_bytes, resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]))
locked, note = lock_memory()
import numpy as np
touched = np.ones(4 << 20, dtype=np.uint8)  # 4 MB allocated after the lock
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"locked": locked, "note": note,
                  "vmlck_kb": int(status["VmLck"].split()[0]), "sum": int(touched.sum())}))
"""


def _child(limit_bytes: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(limit_bytes)], check=True,
                          capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout)


def test_the_memory_is_locked_exactly_when_the_limit_is_unlimited():
    result = _child(-1)
    if resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] == resource.RLIM_INFINITY:
        assert result["locked"] and result["note"] == "memory locked"
        # the code already run and the 4 MB touched after the lock are both locked
        assert result["vmlck_kb"] > 4096
    else:
        assert not result["locked"] and "memory-lock limit" in result["note"]
        assert result["vmlck_kb"] == 0


def test_under_a_finite_limit_nothing_is_locked_and_the_limit_is_named():
    result = _child(64 * 1024)
    assert result == {"locked": False, "vmlck_kb": 0, "sum": 4 << 20,
                      "note": "memory not locked: the memory-lock limit is 64 kB (unlimited "
                              "needed; JACK's audio group limits give it)"}
