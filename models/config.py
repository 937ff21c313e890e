"""The model's typed configuration, stored inside every checkpoint."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qbdi.bars import BAR_SIZE


class ModelConfig(BaseModel):
    """Sizes and loss weight of the bar VAE; the paper's values are the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_size: int = Field(BAR_SIZE, ge=BAR_SIZE, le=BAR_SIZE,
                            description="2496, fixed by the bar codec")
    hidden_size: int = Field(500, ge=1, le=8192)
    latent_size: int = Field(500, ge=1, le=8192)
    beta: float = Field(1.0, gt=0.0, le=100.0, description="weight of the KL term (1 = VAE)")


class ModelCard(BaseModel):
    """What a checkpoint was trained on and how well it reconstructs held-out music."""

    model_config = ConfigDict(extra="forbid")

    corpus: str
    corpus_licence: str = "unknown"
    pieces_train: int = Field(ge=0)
    pieces_heldout: int = Field(ge=0)
    bars_train: int = Field(ge=0)
    bars_heldout: int = Field(ge=0)
    epochs: int = Field(ge=0)
    seed: int
    train_seconds: float = Field(ge=0.0)
    command: str = ""
    heldout_note_f1: float | None = Field(None, description="onset F1, threshold 0.5, decoding mu")
    heldout_frame_f1: float | None = Field(None, description="F1 over the 2496 binary features")
    heldout_chroma_cosine: float | None = Field(None, description="mean per-bar chroma cosine")
    heldout_loss_per_bar: float | None = None
    weights_dtype: str = "float32"
