"""The OSC address table as an OSCQuery namespace (the OSCQuery proposal, Vidvox/CNMAT):
JSON that controllers fetch over HTTP to discover every address, its type and range.

Generated from :data:`qbdi.server.osc.TABLE` alone, so it cannot drift from what the server
accepts: each row becomes a node with ``FULL_PATH``, ``TYPE`` (OSC type tags; absent for
an address without arguments), ``RANGE`` (``MIN``/``MAX`` or ``VALS``), ``ACCESS``
(3, read and write, where the server replies with the value in use; 2, write only, for
commands) and ``DESCRIPTION`` (the handler's docstring). ``VALUE`` is the value in use, from
the last state the loop published. Containers (``/``, ``/qbdi``, ``/qbdi/ir``) hold
``CONTENTS``.

OSCQuery ranges are inclusive and one type per argument. Where the server takes more (a
bound it refuses, ``"full"`` besides a number), the description says so and the server
refuses what it refuses with ``/qbdi/error``, as for any OSC client.

Pure: no sockets. :func:`respond` answers one HTTP GET (path and query) with a status
and a JSON-ready body; the web thread serves it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qbdi.server.osc import TABLE, OscAddress
from qbdi.server.osc_values import Arg
from qbdi.settings import Preset

READ_WRITE, WRITE_ONLY = 3, 2
EXTENSIONS = {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True,
              "TAGS": False, "EXTENDED_TYPE": False, "UNIT": False, "CRITICAL": False,
              "CLIPMODE": False, "LISTEN": False, "PATH_CHANGED": False, "HTML": False}
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "RANGE", "ACCESS", "DESCRIPTION", "VALUE")


@dataclass(frozen=True, slots=True)
class HostInfo:
    """Where OSC goes: ``osc_ip`` None means the host that served the namespace."""

    osc_port: int
    osc_ip: str | None = None
    name: str = "qbdi"

    def json(self) -> dict[str, Any]:
        info: dict[str, Any] = {"NAME": self.name, "OSC_PORT": self.osc_port,
                                "OSC_TRANSPORT": "UDP", "EXTENSIONS": EXTENSIONS}
        if self.osc_ip is not None:
            info["OSC_IP"] = self.osc_ip
        return info


def arg_range(arg: Arg, choices: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """One argument's OSCQuery ``RANGE`` entry."""
    if arg.choices is not None:
        return {"VALS": list(choices.get(arg.choices, ()))}
    if arg.vals:
        return {"VALS": list(arg.vals)}
    bounds = {"MIN": arg.low, "MAX": arg.high}
    return {key: value for key, value in bounds.items() if value is not None}


def node(row: OscAddress, state: Preset | None,
         choices: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The namespace node of one table row."""
    entry: dict[str, Any] = {"FULL_PATH": row.address, "DESCRIPTION": row.doc,
                             "ACCESS": READ_WRITE if row.report is not None else WRITE_ONLY}
    if row.value is not None:
        entry["TYPE"] = row.value.tag
        entry["RANGE"] = [arg_range(row.value, choices)]
    if row.report is not None and state is not None:
        entry["VALUE"] = row.report(state)
    return entry


@dataclass
class Namespace:
    """The namespace of ``table`` with the current values and run-time choices.

    ``state`` is read on the web thread: it returns the last :class:`Preset` the loop
    published (immutable, so reading it from another thread is safe)."""

    host: HostInfo
    state: Callable[[], Preset | None] = lambda: None
    choices: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    table: Sequence[OscAddress] = TABLE

    def tree(self) -> dict[str, Any]:
        """The whole namespace, from ``/``."""
        state = self.state()
        root: dict[str, Any] = {"FULL_PATH": "/", "CONTENTS": {}}
        for row in self.table:
            parent = root
            parts = row.address.strip("/").split("/")
            for depth, part in enumerate(parts[:-1]):
                path = "/" + "/".join(parts[: depth + 1])
                parent = parent["CONTENTS"].setdefault(part, {"FULL_PATH": path,
                                                               "CONTENTS": {}})
            parent["CONTENTS"][parts[-1]] = node(row, state, self.choices)
        return root

    def find(self, path: str) -> dict[str, Any] | None:
        """The node at ``path`` (``/`` is the root), or None."""
        current = self.tree()
        for part in [p for p in path.split("/") if p]:
            current = current.get("CONTENTS", {}).get(part)
            if current is None:
                return None
        return current


def respond(namespace: Namespace, path: str, query: str) -> tuple[int, Any]:
    """Answer ``GET path?query``: ``(200, json)``, ``(204, None)`` for an attribute the
    node lacks, ``(404, reason)`` for an unknown path, ``(400, reason)`` for an unknown
    attribute."""
    if query == "HOST_INFO":
        return 200, namespace.host.json()
    found = namespace.find(path)
    if found is None:
        return 404, f"no OSC address {path[:64]}"
    if not query:
        return 200, found
    if query not in ATTRIBUTES:
        return 400, f"unknown attribute {query[:32]}"
    if query not in found:
        return 204, None
    return 200, {query: found[query]}
