"""Training the style measure: a small classifier of bars, the corpus against other music.

The classifier (:class:`qbdi.analysis.style.StyleClassifier`) sees :func:`bar_features` of
one bar. It is trained with torch (the ``train`` extra) on:

* positives: bars of corpus pieces;
* negatives: bars of other real music, each *collection* (a composer, a folk collection,
  the shared queries) weighted equally, so the measure is not just "the corpus versus the
  largest collection";
* optionally *guard* negatives made from corpus bars by the failure modes of a decoder
  (:func:`guard_bars`): every bar one held chord, notes fragmented into re-struck
  sixteenths, twice the corpus's voices, half of them. Without them a classifier trained on
  real music alone may score such bars anywhere, because no real music looks like them; a
  decoder could then game it (a classifier without them scored over-full decodings, seven
  voices a step, above correctly dense ones).

Positives carry ``corpus_weight`` of the total weight and negatives the rest (0.5: a
balanced prior); the product asks for a measure that calls nearly every corpus bar corpus-like
(mean P >= 0.95 on held-out pieces) while it stays low on other music (<= 0.2), so the
prior is a choice, validated on held-out pieces of both. Validation is on whole held-out pieces
(:func:`validate`): the mean P(corpus) of held-out corpus bars and of held-out other bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from qbdi.analysis.style import FEATURE_VERSION, N_FEATURES, StyleClassifier, bar_features
from qbdi.bars import ARTICULATED, SOUNDING


@dataclass(frozen=True, slots=True)
class LabelledBars:
    """Bars of one class, each tagged with its collection (negatives are weighted per
    collection)."""

    bars: np.ndarray  # (n, 16, 2, 78) bool
    collections: np.ndarray  # (n,) str


GUARD_KINDS = ("held", "jitter", "overfull", "thinned")


def guard_bars(bars: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Degenerate versions of corpus bars, each ``(n, 16, 2, 78)``, by kind:

    * ``held``: the pitches sounding at the bar's first sounding step held as one chord;
    * ``jitter``: notes re-struck at random sixteenths (each sounding cell articulated with
      probability 1/2);
    * ``overfull``: the bar sounding together with another corpus bar (about twice the
      voices; the bar itself when it is the only one);
    * ``thinned``: half of the bar's sounding cells silenced, a random half of its pitches.

    Density and polyphony away from the corpus's are what these share; real music alone
    does not teach a classifier that a corpus-like bar with twice the voices is not corpus.
    """
    bars = np.asarray(bars, dtype=bool)
    n = len(bars)
    sounding = bars[:, :, SOUNDING, :]
    first = np.argmax(sounding.any(axis=2), axis=1)
    chord = sounding[np.arange(n), first]  # (n, 78)
    held = np.zeros_like(bars)
    held[:, :, SOUNDING, :] = chord[:, None, :]
    held[:, 0, ARTICULATED, :] = chord
    jitter = bars.copy()
    jitter[:, :, ARTICULATED, :] |= sounding & (rng.random(sounding.shape) < 0.5)
    partner = (np.arange(n) + rng.integers(1, max(n, 2), size=n)) % n  # another bar
    overfull = bars | bars[partner]
    keep_pitch = rng.random((n, 1, 1, bars.shape[3])) < 0.5
    thinned = bars & keep_pitch
    return {"held": held, "jitter": jitter, "overfull": overfull, "thinned": thinned}


def train_classifier(positives: LabelledBars, negatives: LabelledBars, *, hidden: int = 32,
                     epochs: int = 400, weight_decay: float = 1e-3, seed: int = 0,
                     corpus_weight: float = 0.5,
                     metadata: dict | None = None) -> StyleClassifier:
    """Fit the classifier (full-batch Adam on the weighted cross-entropy); deterministic
    for a seed on one machine. ``hidden = 0`` fits a logistic regression."""
    torch.manual_seed(seed)
    features = np.concatenate([bar_features(positives.bars), bar_features(negatives.bars)])
    labels = np.concatenate([np.ones(len(positives.bars)), np.zeros(len(negatives.bars))])
    if not 0.0 < corpus_weight < 1.0:
        raise ValueError(f"corpus_weight must be in (0, 1), got {corpus_weight}")
    positive = _collection_weights(positives.collections)
    negative = _collection_weights(negatives.collections)
    weights = np.concatenate([corpus_weight * positive / positive.sum(),
                              (1.0 - corpus_weight) * negative / negative.sum()])
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1.0)  # a constant feature stays 0 after scaling
    x = torch.from_numpy(((features - mean) / scale).astype(np.float32))
    y = torch.from_numpy(labels.astype(np.float32))
    w = torch.from_numpy((weights / weights.sum()).astype(np.float32))
    if hidden:
        net = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    else:
        net = nn.Sequential(nn.Linear(N_FEATURES, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=weight_decay)
    for _ in range(epochs):
        loss = (nn.functional.binary_cross_entropy_with_logits(
            net(x)[:, 0], y, reduction="none") * w).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    layers = [m for m in net if isinstance(m, nn.Linear)]
    out = layers[-1]
    first = layers[0] if hidden else None
    empty = np.zeros((0, N_FEATURES), np.float32)
    return StyleClassifier(
        feature_mean=mean.astype(np.float32),
        feature_scale=scale.astype(np.float32),
        hidden_weight=empty if first is None else first.weight.detach().numpy().copy(),
        hidden_bias=np.zeros(0, np.float32) if first is None else
        first.bias.detach().numpy().copy(),
        out_weight=out.weight.detach().numpy()[0].copy(),
        out_bias=out.bias.detach().numpy().copy(),
        metadata={"feature_version": FEATURE_VERSION, "hidden": hidden,
                  "corpus_weight": corpus_weight, **(metadata or {})},
    )


def _collection_weights(collections: np.ndarray) -> np.ndarray:
    """Per bar, ``1 / (bars in its collection)``: every collection weighs the same."""
    _, inverse, counts = np.unique(collections, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def validate(classifier: StyleClassifier, corpus_bars: np.ndarray,
             other: Sequence[tuple[str, np.ndarray]]) -> dict[str, float]:
    """Mean P(corpus) on held-out corpus bars, on all held-out other bars pooled, on the mean
    over other collections, and per collection (``other:NAME``)."""
    result = {"heldout_corpus": float(classifier.probability(corpus_bars).mean())}
    per_collection = {name: classifier.probability(bars) for name, bars in other if len(bars)}
    pooled = np.concatenate(list(per_collection.values()))
    result["heldout_other"] = float(pooled.mean())
    result["heldout_other_collection_mean"] = float(np.mean(
        [p.mean() for p in per_collection.values()]))
    result.update({f"other:{name}": float(p.mean()) for name, p in per_collection.items()})
    return result
