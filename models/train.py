"""Training the bar VAE: held-out split by piece, transposition augmentation, optional
texture noise (a denoising VAE, :mod:`qbdi.models.texture`), resumable, deterministic with a
seed, and unchanged under ``torchrun`` (DistributedDataParallel over gloo on CPU).

After the epochs, on rank 0: the corpus's latent statistics; how the model answers
(:class:`~qbdi.models.config.AnswerConfig`: the corpus's register and number of voices, and
decoding biases calibrated so that answers to re-textured held-out bars are as dense as the
corpus); optionally the style measure (a classifier of the corpus's bars against other
music, :mod:`qbdi.models.style_train`), validated on held-out pieces; all in one checkpoint.

Determinism: every random draw comes from generators reseeded from ``(seed, epoch, rank)``
at the start of each epoch, so a resumed run continues exactly as an uninterrupted one,
and the same seed on the same machine gives the same weights.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel

from qbdi.bars import BAR_SIZE, N_PITCHES, flatten_bars
from qbdi.corpus import Corpus, load_corpus
from qbdi.errors import CheckpointError
from qbdi.models.checkpoint import CorpusStats, save_checkpoint
from qbdi.models.config import ModelCard, ModelConfig
from qbdi.models.register import sounding_range
from qbdi.models.runtime import InferenceModel, logits_to_bars
from qbdi.models.texture import retexture
from qbdi.models.train_answer import answer_metrics, calibrate_answer, encode_all
from qbdi.models.train_card import frontier_fields, style_measure
from qbdi.models.vae import BarVAE
from qbdi.scoring import agreement


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corpus: str
    out: Path
    epochs: int = Field(30, ge=1, le=10_000)
    latent_size: int = Field(500, ge=1, le=8192)
    hidden_size: int = Field(500, ge=1, le=8192)
    beta: float = Field(1.0, gt=0.0, le=100.0)
    seed: int = 0
    batch_bars: int = Field(128, ge=1, le=65536)
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)
    heldout_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    transpose_semitones: int = Field(5, ge=0, le=11, description="augment by ±this many")
    weights_dtype: str = Field("float32", pattern="^(float32|float16)$")
    corpus_licence: str = "unknown"
    resume: bool = False
    command: str = ""
    texture_noise: float = Field(0.0, ge=0.0, le=1.0, description=(
        "probability that a training bar reaches the encoder re-textured (denoising)"))
    texture_keep_min: float = Field(0.35, ge=0.0, le=1.0, description=(
        "re-texturing keeps each pitch of a bar with a probability drawn in [this, 1]"))
    answer_method: Literal["voices", "notes", "cells", "threshold"] = "voices"
    centre_register: bool = Field(True, description="answer in the corpus's register")
    style_negatives: list[str] = Field(default_factory=list, description=(
        "other music for the style measure: 'music21' (a sample of other music21 "
        "collections) and/or folders of MIDI files; empty: no style measure"))
    style_exclude: list[str] = Field(default_factory=list, description=(
        "music21 collections left out of the negatives (the corpus's own genre)"))
    frontier_queries: Path | None = Field(None, description=(
        "a folder of query MIDI files: measure the frontier into the card (needs a style "
        "measure)"))
    frontier_seeds: int = Field(3, ge=1, le=100)


@dataclass(slots=True)
class Split:
    train: np.ndarray  # (n, 16, 2, 78) bool
    heldout: np.ndarray
    pieces_train: int
    pieces_heldout: int


def split_by_piece(corpus: Corpus, heldout_fraction: float, seed: int) -> Split:
    """Hold out whole pieces (never bars of a piece seen in training)."""
    order = np.random.default_rng(seed).permutation(len(corpus.pieces))
    n_heldout = round(heldout_fraction * len(order))
    if heldout_fraction > 0 and len(order) > 1:
        n_heldout = max(1, n_heldout)
    heldout = [corpus.pieces[i].bars for i in order[:n_heldout]]
    train = [corpus.pieces[i].bars for i in order[n_heldout:]]
    empty = np.zeros((0, 16, 2, N_PITCHES), dtype=bool)
    return Split(
        train=np.concatenate(train) if train else empty,
        heldout=np.concatenate(heldout) if heldout else empty,
        pieces_train=len(train),
        pieces_heldout=len(heldout),
    )


def transpose_batch(batch: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each bar of ``(B, 16, 2, 78)`` by its number of semitones; notes pushed out of
    the 78-pitch range are dropped (they would fold onto other notes)."""
    out = torch.zeros_like(batch)
    for shift in shifts.unique().tolist():
        rows = shifts == shift
        if shift >= 0:
            out[rows, :, :, shift:] = batch[rows, :, :, : N_PITCHES - shift]
        else:
            out[rows, :, :, :shift] = batch[rows, :, :, -shift:]
    return out


def _world() -> tuple[int, int]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world_size > 1 else 0
    return rank, world_size


def _state_path(out: Path) -> Path:
    return out.with_name(out.name + ".train-state.safetensors")


def train(settings: TrainSettings, progress: bool = True,
          log: Callable[[str], None] = print) -> ModelCard | None:
    """Train and write ``settings.out``; returns the card on rank 0, None elsewhere."""
    started_s = time.perf_counter()
    rank, world_size = _world()
    # Two cores shared by all ranks: oversubscribing threads only slows every rank down.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    torch.manual_seed(settings.seed)
    corpus = load_corpus(settings.corpus)
    split = split_by_piece(corpus, settings.heldout_fraction, settings.seed)
    if rank == 0:
        log(f"corpus {corpus.name}: {split.pieces_train} pieces / {len(split.train)} bars "
            f"to train, {split.pieces_heldout} pieces / {len(split.heldout)} bars held out, "
            f"{len(corpus.skipped)} skipped")
    config = ModelConfig(hidden_size=settings.hidden_size, latent_size=settings.latent_size,
                         beta=settings.beta)
    model = BarVAE(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    first_epoch = _maybe_resume(settings, model, optimizer, log if rank == 0 else None)
    wrapped = DistributedDataParallel(model) if world_size > 1 else model
    train_bars = torch.from_numpy(split.train.astype(np.float32))
    for epoch in range(first_epoch, settings.epochs):
        loss = _run_epoch(wrapped, model, optimizer, train_bars, settings, epoch, rank,
                          world_size, progress and rank == 0)
        if rank == 0:
            log(f"epoch {epoch + 1}/{settings.epochs}: loss {loss:.2f} per bar")
            _save_state(settings.out, model, optimizer, epoch + 1)
    if world_size > 1:
        dist.barrier()
    if rank != 0:
        return None
    return _finish(settings, config, model, corpus, split, started_s, log)


def _run_epoch(wrapped, model: BarVAE, optimizer, train_bars: torch.Tensor,
               settings: TrainSettings, epoch: int, rank: int, world_size: int,
               show_progress: bool) -> float:
    shuffle = torch.Generator().manual_seed(settings.seed * 100_003 + epoch)
    noise = torch.Generator().manual_seed(settings.seed * 100_003 + epoch * 1009 + rank + 1)
    order = torch.randperm(len(train_bars), generator=shuffle)
    # Every rank takes the same number of batches, or DDP's all-reduce would hang.
    per_rank = len(order) // world_size
    mine = order[rank * per_rank : (rank + 1) * per_rank]
    batches = torch.split(mine, settings.batch_bars)
    model.train()
    total, count = 0.0, 0
    iterator = batches
    if show_progress:
        from tqdm import tqdm
        iterator = tqdm(batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False)
    for index in iterator:
        batch = train_bars[index]
        if settings.transpose_semitones:
            t = settings.transpose_semitones
            shifts = torch.randint(-t, t + 1, (len(batch),), generator=noise)
            batch = transpose_batch(batch, shifts)
        x = batch.reshape(len(batch), BAR_SIZE)
        # denoising: the encoder may read the bar re-textured; the loss asks for the bar
        x_in = retexture(batch, settings.texture_noise, noise, settings.texture_keep_min)
        x_in = x_in.reshape(len(batch), BAR_SIZE)
        logits, mu, logvar = wrapped(x_in, noise)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = (bce + model.config.beta * kl) / len(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(x)
        count += len(x)
        if show_progress:
            iterator.set_postfix(loss=f"{float(loss.detach()):.1f}")
    return total / max(count, 1)


def _save_state(out: Path, model: BarVAE, optimizer, epochs_done: int) -> None:
    """Everything needed to resume, as safetensors (no pickle): weights, Adam moments."""
    tensors = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    for index, param in enumerate(model.parameters()):
        state = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq", "step"):
            if key in state:
                tensors[f"adam.{index}.{key}"] = torch.as_tensor(state[key]).detach().clone()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(_state_path(out)), metadata={"epochs_done": str(epochs_done)})


def _maybe_resume(settings: TrainSettings, model: BarVAE, optimizer, log) -> int:
    path = _state_path(settings.out)
    if not settings.resume or not path.exists():
        return 0
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as handle:
            epochs_done = int(handle.metadata()["epochs_done"])
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    except Exception as err:  # any failure here means the state file is unusable
        raise CheckpointError(path, "train-state", f"cannot resume ({err})") from err
    for index, param in enumerate(model.parameters()):
        if f"adam.{index}.exp_avg" in tensors:
            optimizer.state[param] = {
                key: tensors[f"adam.{index}.{key}"] for key in ("step", "exp_avg", "exp_avg_sq")
            }
    if log:
        log(f"resuming from {path} after epoch {epochs_done}")
    return epochs_done


def _finish(settings: TrainSettings, config: ModelConfig, model: BarVAE, corpus: Corpus,
            split: Split, started_s: float, log: Callable[[str], None]) -> ModelCard:
    weights = model.numpy_weights()
    if settings.weights_dtype == "float16":
        # Measure what is shipped: the metrics below use the weights as stored.
        weights = {k: v.astype(np.float16).astype(np.float32) for k, v in weights.items()}
    # answers sound where the corpus does: the calibration and every figure below see that
    runtime = InferenceModel(config, weights, sounding_range(split.train))
    mu, logvar = encode_all(runtime, split.train)
    stats = CorpusStats.from_encodings(mu, logvar)
    answer = calibrate_answer(runtime, split, settings)
    log(f"answers: {answer.model_dump_json()}")
    style, style_figures = None, {}
    if settings.style_negatives:
        style, style_figures = style_measure(settings, corpus, split, log)
    card = ModelCard(
        corpus=corpus.name, corpus_licence=settings.corpus_licence,
        pieces_train=split.pieces_train, pieces_heldout=split.pieces_heldout,
        bars_train=len(split.train), bars_heldout=len(split.heldout), epochs=settings.epochs,
        seed=settings.seed, train_seconds=0.0, command=settings.command,
        beta=config.beta, texture_noise=settings.texture_noise,
        texture_keep_min=settings.texture_keep_min,
        **heldout_metrics(runtime, split.heldout),
        **answer_metrics(runtime, split.heldout, answer),
        **style_figures,
    )
    card = card.model_copy(update={"train_seconds": round(time.perf_counter() - started_s, 1)})
    if settings.frontier_queries is not None and style is not None:
        card = card.model_copy(update=frontier_fields(settings, runtime, stats, answer, style,
                                                            log))
    save_checkpoint(settings.out, config, card, weights, stats, settings.weights_dtype,
                    answer=answer, style=style)
    _state_path(settings.out).unlink(missing_ok=True)
    log(f"wrote {settings.out}: {card.model_dump_json()}")
    return card


def heldout_metrics(runtime: InferenceModel, bars: np.ndarray) -> dict[str, float | None]:
    """Reconstruction of held-out bars decoding mu at threshold 0.5 (reported; no longer a
    target: a model that answers in its corpus's style does not copy textures)."""
    if len(bars) == 0:
        return {}
    mu, logvar = encode_all(runtime, bars)
    flat = flatten_bars(bars)
    logits = runtime.decode_logits(mu)
    bce = np.logaddexp(0, logits) - flat * logits  # stable BCE with logits
    kl = -0.5 * (1 + logvar - mu**2 - np.exp(logvar)).sum(axis=1)
    decoded = logits_to_bars(logits, threshold=0.5).reshape(bars.shape)
    score = agreement(decoded, bars)
    return {
        "heldout_note_f1": round(score.onset_f1, 4),
        "heldout_frame_f1": round(score.frame_f1, 4),
        "heldout_chroma_cosine": round(score.chroma_cosine, 4),
        "heldout_loss_per_bar": round(float(bce.sum(axis=1).mean() + kl.mean()), 2),
    }
