"""Keep ``qbdi serve``'s memory in RAM, as real-time audio programs do (``--lock-memory``,
opt-in: with it our JACK tests under load lost or garbled MIDI events more often).

The kernel may drop pages it can read back from disk (the interpreter's, numpy's and the
BLAS library's code) when they look cold; some machines reclaim such pages proactively
(the shared 2-core machine of our soaks runs DAMON's ``pageout`` scheme). Touching a
dropped page in the middle of a bar waits for the disk. There, 4-minute soaks at 480 BPM
measured loop wake-ups 12-41 ms late and bars whose compute stalled 15-25 ms, about one
overrun in 480 bars; with the memory locked the latest wake-up was 4.8 ms and no bar
overran (``tests/test_soak_clients.py``, README).

Locking needs permission: an unlimited ``RLIMIT_MEMLOCK`` (root, or the limits that JACK's
packages give the ``audio`` group). With a finite limit nothing is locked: a process that
locks its future allocations under a limit fails them once it is reached, in the middle of
a bar, which is worse than an occasional late page.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys

MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4  # Linux 4.4+: lock pages as they are touched, not every mapped page now


def lock_memory() -> tuple[bool, str]:
    """Lock this process's pages in RAM, now and from now on (``mlockall``), where the
    platform allows it and the memory-lock limit is unlimited. Returns whether the memory
    is locked and a line for the log saying so or why not. Never raises."""
    if not sys.platform.startswith("linux"):
        return False, "memory not locked (only on Linux)"
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft != resource.RLIM_INFINITY:
        return False, (f"memory not locked: the memory-lock limit is {soft // 1024} kB "
                       "(unlimited needed; JACK's audio group limits give it)")
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    # Pages touched later (a rarely used code path) are locked when touched; without
    # MCL_ONFAULT (old kernels) every mapped page is read in and locked at once.
    for flags in (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT, MCL_CURRENT | MCL_FUTURE):
        if libc.mlockall(flags) == 0:
            return True, "memory locked"
    return False, f"memory not locked: mlockall failed (errno {ctypes.get_errno()})"
