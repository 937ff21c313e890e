"""Names for the tests' own JACK servers, reused so that a server that died does not hold
its place for good (not collected).

JACK keeps a registry of servers in shared memory with eight places. A server that stops
cleanly frees its place; one that is killed or crashes leaves it taken until a server *of the
same name* starts (jackd then reclaims the dead one's place). With a new name every run, each
killed test server would take a place for good, and after eight of them no JACK server could
start on the machine (every JACK test skips, and jackd says "Too many servers already
active"). So the tests draw names from a small pool per kind, the lowest one no running jackd
has.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

POOL_SIZE = 8  # as many as JACK has places: more would never start at once


def reusable_name(prefix: str) -> str:
    """``PREFIX-K`` for the lowest ``K`` in the pool that no running ``jackd -n`` has taken
    (the last one when all are: its jackd then refuses to start, which the caller reports)."""
    taken = _running_server_names()
    for k in range(POOL_SIZE):
        name = f"{prefix}-{k}"
        if name not in taken:
            return name
    return f"{prefix}-{POOL_SIZE - 1}"


def _running_server_names() -> set[str]:
    """The ``-n`` names of the jackd processes running now (starting ones too)."""
    names = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        if args and Path(args[0].decode(errors="replace")).name == "jackd":
            for flag, value in pairwise(args):
                if flag in (b"-n", b"--name"):
                    names.add(value.decode(errors="replace"))
    return names
