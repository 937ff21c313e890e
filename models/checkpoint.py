"""Checkpoints: one safetensors file with the weights, the typed config, the model card,
the per-dimension latent statistics of the training corpus and, where trained with them,
how the model answers (:class:`~qbdi.models.config.AnswerConfig`: register and calibrated
decoding, metadata ``answer``) and its style measure
(:class:`~qbdi.analysis.style.StyleClassifier`, tensors ``style.*``, metadata ``style``).

No pickle anywhere: tensors are safetensors, everything else is JSON in the file's
metadata. :func:`load_checkpoint` is the one way in; it refuses a wrong or corrupt file
with a :class:`~qbdi.errors.CheckpointError` naming the file and the field. Loading needs
numpy only, not torch, so the live server and ``qbdi render`` start fast.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from qbdi.analysis.style import StyleClassifier
from qbdi.errors import CheckpointError
from qbdi.models.config import LEGACY_ANSWER, AnswerConfig, ModelCard, ModelConfig

FORMAT = "qbdi-checkpoint/1"
LAYERS = ("enc_hidden", "enc_mu", "enc_logvar", "dec_hidden", "dec_out")
STAT_NAMES = ("mu_mean", "mu_var", "z_mean", "z_var", "posterior_var")
STYLE_PREFIX = "style."


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """Per latent dimension statistics over the training corpus's bars, each ``(latent,)``.

    ``mu_*`` describe the encoder mean across bars; ``z_*`` the sampled latent
    ``mu + exp(logvar/2) eps`` (its variance is ``mu_var + posterior_var``);
    ``posterior_var`` is the mean over bars of ``exp(logvar)`` (the reference notebook's
    choice of variance).
    """

    mu_mean: np.ndarray
    mu_var: np.ndarray
    z_mean: np.ndarray
    z_var: np.ndarray
    posterior_var: np.ndarray

    @classmethod
    def from_encodings(cls, mu: np.ndarray, logvar: np.ndarray) -> CorpusStats:
        posterior_var = np.exp(logvar.astype(np.float64)).mean(axis=0)
        mu_var = mu.astype(np.float64).var(axis=0)
        return cls(
            mu_mean=mu.mean(axis=0).astype(np.float32),
            mu_var=mu_var.astype(np.float32),
            z_mean=mu.mean(axis=0).astype(np.float32),
            z_var=(mu_var + posterior_var).astype(np.float32),
            posterior_var=posterior_var.astype(np.float32),
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A loaded checkpoint; ``weights`` maps ``LAYER.weight``/``LAYER.bias`` to float32
    arrays in torch's ``(out, in)`` layout. Files written before answer settings and a style
    measure were stored load with :data:`~qbdi.models.config.LEGACY_ANSWER` (the player's
    register, the threshold, free mode from the prior: their answers unchanged) and no
    style measure."""

    path: str
    config: ModelConfig
    card: ModelCard
    weights: dict[str, np.ndarray]
    stats: CorpusStats
    answer: AnswerConfig = field(default=LEGACY_ANSWER)
    style: StyleClassifier | None = None


DEFAULT_MODEL_NAME = "bach"
MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""A shipped model's name: its file ``qbdi-NAME.safetensors`` in ``models/default``."""


def shipped_models() -> dict[str, Path]:
    """The models shipped inside the package, by name (``bach``, ...), sorted."""
    folder = Path(str(resources.files("qbdi.models") / "default"))
    return {path.stem.removeprefix("qbdi-"): path
            for path in sorted(folder.glob("qbdi-*.safetensors"))}


def default_checkpoint_path() -> Path:
    """The default model shipped inside the package (trained on the music21 Bach chorales)."""
    return shipped_models()[DEFAULT_MODEL_NAME]


def model_path(name_or_path: str | Path | None) -> Path:
    """The checkpoint file for a shipped model's name (``bach``), a path, or None (the
    default). A bare name (no folder, no suffix) always means a shipped model; give a path
    such as ``./mine.safetensors`` for a file of your own. Raises :class:`CheckpointError`
    for an unknown name, listing the shipped ones."""
    if name_or_path is None:
        return default_checkpoint_path()
    text = str(name_or_path)
    if "/" in text or "\\" in text or Path(text).suffix:
        return Path(text)
    models = shipped_models()
    if text not in models:
        raise CheckpointError(text, "model", f"no shipped model of that name (shipped: "
                                             f"{', '.join(models)}); a file needs a path")
    return models[text]


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    i, h, z = config.input_size, config.hidden_size, config.latent_size
    in_out = {"enc_hidden": (i, h), "enc_mu": (h, z), "enc_logvar": (h, z),
              "dec_hidden": (z, h), "dec_out": (h, i)}
    shapes: dict[str, tuple[int, ...]] = {}
    for layer, (n_in, n_out) in in_out.items():
        shapes[f"{layer}.weight"] = (n_out, n_in)
        shapes[f"{layer}.bias"] = (n_out,)
    for name in STAT_NAMES:
        shapes[f"stats.{name}"] = (z,)
    return shapes


def save_checkpoint(
    path: str | Path,
    config: ModelConfig,
    card: ModelCard,
    weights: dict[str, np.ndarray],
    stats: CorpusStats,
    weights_dtype: str = "float32",
    *,
    answer: AnswerConfig | None = None,
    style: StyleClassifier | None = None,
) -> None:
    """Write a checkpoint; weights may be stored as float16 to keep shipped files small.

    Statistics and the style classifier are always float32. Without ``answer`` the file
    loads with :data:`~qbdi.models.config.LEGACY_ANSWER`.
    """
    dtype = {"float32": np.float32, "float16": np.float16}[weights_dtype]
    tensors = {name: np.ascontiguousarray(value, dtype=dtype) for name, value in weights.items()}
    for name in STAT_NAMES:
        tensors[f"stats.{name}"] = np.ascontiguousarray(getattr(stats, name), dtype=np.float32)
    card = card.model_copy(update={"weights_dtype": weights_dtype})
    metadata = {"format": FORMAT, "config": config.model_dump_json(),
                "card": card.model_dump_json()}
    if answer is not None:
        metadata["answer"] = answer.model_dump_json()
    if style is not None:
        tensors.update(style.tensors(STYLE_PREFIX))
        metadata["style"] = json.dumps(style.metadata)
    save_file(tensors, str(path), metadata=metadata)


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Load and validate a checkpoint: a file, a shipped model's name, or None for the
    shipped default (see :func:`model_path`)."""
    path = model_path(path)
    if not path.is_file():
        raise CheckpointError(path, "file", "no such file")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(path, "file", f"not a safetensors checkpoint ({err})") from err
    if metadata.get("format") != FORMAT:
        found = metadata.get("format")
        raise CheckpointError(path, "format", f"expected {FORMAT!r}, got {found!r}")
    config = _parse(path, "config", ModelConfig, metadata)
    card = _parse(path, "card", ModelCard, metadata)
    answer = (_parse(path, "answer", AnswerConfig, metadata) if "answer" in metadata
              else LEGACY_ANSWER)
    style_tensors = _take(tensors, STYLE_PREFIX)
    _check_tensors(path, config, tensors)
    as_float = {name: value.astype(np.float32) for name, value in tensors.items()}
    weights = {n: v for n, v in as_float.items() if not n.startswith("stats.")}
    stats = CorpusStats(**{name: as_float[f"stats.{name}"] for name in STAT_NAMES})
    return Checkpoint(str(path), config, card, weights, stats, answer,
                      _style(path, style_tensors, metadata))


def _take(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """Remove and return the tensors whose names start with ``prefix``."""
    return {name: tensors.pop(name) for name in list(tensors) if name.startswith(prefix)}


def _style(path: Path, tensors: dict[str, np.ndarray],
           metadata: dict[str, str]) -> StyleClassifier | None:
    if not tensors and "style" not in metadata:
        return None
    try:
        return StyleClassifier.from_tensors(tensors, json.loads(metadata.get("style", "{}")),
                                            STYLE_PREFIX)
    except (ValueError, json.JSONDecodeError) as err:
        raise CheckpointError(path, "style", str(err)) from err


def _parse(path: Path, field: str, model: type, metadata: dict[str, str]):
    if field not in metadata:
        raise CheckpointError(path, field, "missing from the file's metadata")
    try:
        return model.model_validate(json.loads(metadata[field]))
    except json.JSONDecodeError as err:
        raise CheckpointError(path, field, f"not JSON ({err})") from err
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
        )
        raise CheckpointError(path, field, problems) from err


def _check_tensors(path: Path, config: ModelConfig, tensors: dict[str, np.ndarray]) -> None:
    expected = expected_shapes(config)
    for name, shape in expected.items():
        if name not in tensors:
            raise CheckpointError(path, name, "tensor missing")
        if tensors[name].shape != shape:
            raise CheckpointError(path, name, f"shape {tensors[name].shape}, expected {shape}")
        if not np.all(np.isfinite(tensors[name])):
            raise CheckpointError(path, name, "contains NaN or infinity")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise CheckpointError(path, extra[0], "unexpected tensor")
