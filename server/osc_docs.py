"""The OSC protocol as text, from the one address table (:mod:`qbdi.server.osc`):
``qbdi osc-help`` prints :func:`help_text`; the README's table is :func:`markdown_table`."""

from __future__ import annotations

from qbdi.server.osc import FEEDBACK, TABLE


def help_text() -> str:
    """The protocol as plain text, from the table (``qbdi osc-help``)."""
    lines = ["Messages the server receives:", ""]
    for row in TABLE:
        lines.append(f"  {row.address} {row.arguments}".rstrip())
        lines.append(f"      {row.doc}")
    lines += ["", "Messages the server sends (to --feedback and to the sender):", ""]
    for address, arguments, when in FEEDBACK:
        lines.append(f"  {address} {arguments}")
        lines.append(f"      {when}")
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's OSC table, from the same source."""
    lines = ["| Address | Arguments | What it does |", "|---|---|---|"]
    for row in TABLE:
        doc = row.doc.replace("|", "\\|")  # a bar inside a cell would split it
        lines.append(f"| `{row.address}` | {row.arguments.replace('|', ' or ')} | {doc} |")
    lines += ["", "| Feedback address | Arguments | When |", "|---|---|---|"]
    for address, arguments, when in FEEDBACK:
        lines.append(f"| `{address}` | {arguments.replace('|', ' or ')} | {when} |")
    return "\n".join(lines)
