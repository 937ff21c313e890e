"""The ``qbdi`` command line: a table of subcommands, one module each in
:mod:`qbdi.commands`, whose heavy parts are imported only when they run.

Every :class:`~qbdi.errors.QbdiError` ends the program with its message and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

from qbdi.errors import QbdiError


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its name, and where its arguments and its run function live
    (``module:function`` in :mod:`qbdi.commands`)."""

    name: str
    arguments: str
    run: str

    def load(self, where: str) -> Callable:
        module, function = where.split(":")
        return getattr(importlib.import_module(f"qbdi.commands.{module}"), function)


COMMANDS = (
    Command("train", "train:add_arguments", "train:run"),
    Command("render", "render:add_arguments", "render:run"),
    Command("score", "score:add_arguments", "score:run"),
    Command("analyze", "analyze:add_arguments", "analyze:run"),
    Command("serve", "serve:add_arguments", "serve:run"),
    Command("ports", "info:add_ports_arguments", "info:ports"),
    Command("presets", "info:add_presets_arguments", "info:presets"),
    Command("models", "info:add_models_arguments", "info:models"),
    Command("osc-help", "info:add_osc_help_arguments", "info:osc_help"),
    Command("doctor", "doctor:add_arguments", "doctor:run"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qbdi", description="Query-based deep improvisation: a live MIDI improviser for "
        "DAWs with a rate-limited latent channel, and its offline rendering and analysis.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        run = command.load(command.run)
        summary = (run.__doc__ or "").strip().splitlines()
        sub = subparsers.add_parser(command.name, help=summary[0] if summary else None)
        command.load(command.arguments)(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except QbdiError as err:
        print(f"qbdi {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # A file or device failed under us (disk full, a folder removed mid-run): name it
        # rather than print a traceback. Commands check their outputs up front as well.
        where = f"{err.filename}: " if err.filename else ""
        print(f"qbdi {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
