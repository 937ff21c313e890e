"""``qbdi train``: train a bar VAE on a corpus and write a checkpoint."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from qbdi.commands.common import describe
from qbdi.errors import QbdiError, check_writable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", required=True,
                        help="a folder of MIDI files, or music21:NAME (e.g. music21:bach)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--latent-dim", type=int, default=500)
    parser.add_argument("--hidden-dim", type=int, default=500)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-bars", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--transpose", type=int, default=5,
                        help="augment with transpositions of up to ±N semitones")
    parser.add_argument("--fp16", action="store_true", help="store weights as float16")
    parser.add_argument("--corpus-licence", default="unknown")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT.train-state.safetensors if it exists")
    parser.add_argument("--texture-noise", type=float, default=0.0, metavar="P",
                        help="re-texture a training bar at the encoder's input with "
                             "probability P (a denoising VAE: answers in the corpus's texture)")
    parser.add_argument("--texture-keep-min", type=float, default=0.35, metavar="K",
                        help="a re-textured bar keeps each pitch with a probability drawn in "
                             "[K, 1]: higher K, answers nearer the player's harmony "
                             "(default 0.35)")
    parser.add_argument("--answer-method", choices=["voices", "notes", "cells", "threshold"],
                        default="voices", help="how answers are decoded (calibrated to the "
                                               "corpus's density; default voices)")
    parser.add_argument("--keep-register", action="store_true",
                        help="encode queries where they are played, not moved by octaves "
                             "into the corpus's register")
    parser.add_argument("--style-negatives", nargs="*", default=[], metavar="SOURCE",
                        help="train a style measure against this other music: 'music21' (a "
                             "sample of other music21 collections) and/or MIDI folders")
    parser.add_argument("--style-exclude", nargs="*", default=[], metavar="NAME",
                        help="music21 collections of the corpus's own genre, left out of "
                             "the style negatives")
    parser.add_argument("--frontier-queries", type=Path, default=None, metavar="DIR",
                        help="measure the frontier on these query MIDI files into the "
                             "model card (needs --style-negatives)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Train a bar VAE on a corpus and write a checkpoint."""
    from pydantic import ValidationError

    try:
        from qbdi.models.train import TrainSettings, train
    except ImportError as err:
        raise QbdiError(f"training needs torch ({err}): pip install torch==2.13.0 (CPU "
                        "build) and pip install 'qbdi[train]'") from err

    try:
        settings = TrainSettings(
            corpus=args.corpus, out=args.out, epochs=args.epochs, latent_size=args.latent_dim,
            hidden_size=args.hidden_dim, beta=args.beta, seed=args.seed,
            batch_bars=args.batch_bars, learning_rate=args.learning_rate,
            transpose_semitones=args.transpose,
            weights_dtype="float16" if args.fp16 else "float32",
            corpus_licence=args.corpus_licence, resume=args.resume,
            command="qbdi " + shlex.join(sys.argv[1:]),
            texture_noise=args.texture_noise,
            texture_keep_min=args.texture_keep_min, answer_method=args.answer_method,
            centre_register=not args.keep_register, style_negatives=args.style_negatives,
            style_exclude=args.style_exclude, frontier_queries=args.frontier_queries,
        )
    except ValidationError as err:
        raise QbdiError(describe(err)) from err
    check_writable(settings.out, "--out")  # before minutes of training, not after
    train(settings, progress=not args.no_progress)
    return 0


