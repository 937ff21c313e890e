"""``qbdi ports``, ``qbdi presets`` and ``qbdi osc-help``: what the server can use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qbdi.errors import QbdiError
from qbdi.presets import load_preset
from qbdi.presets import preset_dir as shipped_preset_dir


def add_ports_arguments(parser: argparse.ArgumentParser) -> None:
    from qbdi.server.backends import BACKENDS

    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="MIDI backend (default: detected)")


def add_presets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset-dir", type=Path, default=None,
                        help="also list your presets in this folder (as serve --preset-dir)")


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="each model's card as JSON")


def models(args: argparse.Namespace) -> int:
    """List the shipped models (for --model NAME, presets and /qbdi/model) with their cards."""
    import json

    from qbdi.models.checkpoint import DEFAULT_MODEL_NAME, load_checkpoint, shipped_models

    cards = {}
    for name, path in shipped_models().items():
        checkpoint = load_checkpoint(path)  # validates it, naming the file and the field
        # the config last: a card's own beta (None in older cards) never hides the model's
        cards[name] = {"file": str(path), **checkpoint.card.model_dump(),
                       **checkpoint.config.model_dump(),
                       "pitch_range": checkpoint.answer.pitch_range}
    if args.json:
        print(json.dumps(cards, indent=1))
        return 0
    for name, card in cards.items():
        default = " (default)" if name == DEFAULT_MODEL_NAME else ""
        print(f"{name}{default}: {card['corpus']}; latent {card['latent_size']}, hidden "
              f"{card['hidden_size']}, beta {card['beta']:g}; {card['bars_train']} bars of "
              f"{card['pieces_train']} pieces, {card['epochs']} epochs{_range(card)}")
        print(f"  {card['file']}")
    return 0


def _range(card: dict) -> str:
    pitches = card["pitch_range"]
    return "" if pitches is None else f"; answers in MIDI {pitches[0]}-{pitches[1]}"


def add_osc_help_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="as the README's table")


def ports(args: argparse.Namespace) -> int:
    """List MIDI input and output ports (names for serve --in/--out)."""
    from qbdi.server.backends import detect_backend, list_ports

    backend = args.backend or detect_backend()
    inputs, outputs = list_ports(backend)
    print(f"backend: {backend}")
    print("inputs (for --in):")
    for name in inputs:
        print(f"  {name}")
    print("outputs (for --out):")
    for name in outputs:
        print(f"  {name}")
    return 0


def presets(args: argparse.Namespace) -> int:
    """List the presets (for serve --preset and /qbdi/preset), validating each.

    Those in ``--preset-dir`` (if given) come first, then the shipped ones; an invalid one is
    named with its field and the exit code is 2."""
    from qbdi.commands.serve import user_preset_dir

    user_dir = user_preset_dir("default", args.preset_dir)
    folders = ([user_dir] if user_dir is not None else []) + [shipped_preset_dir()]
    failed = 0
    for folder in folders:
        print(f"{folder}:")
        for path in sorted(folder.glob("*.toml")):
            try:
                print(f"  {path.stem:12s} {load_preset(path).description}")
            except QbdiError as err:
                failed += 1
                print(f"  {path.stem:12s} INVALID: {err}", file=sys.stderr)
    return 2 if failed else 0


def osc_help(args: argparse.Namespace) -> int:
    """Print the OSC addresses the server answers and the feedback it sends."""
    from qbdi.server.osc_docs import help_text, markdown_table

    print(markdown_table() if args.markdown else help_text())
    return 0
