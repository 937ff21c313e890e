"""The model's typed configuration, stored inside every checkpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qbdi.bars import BAR_SIZE, HIGHEST_PITCH, LOWEST_PITCH
from qbdi.defaults import DEFAULT_THRESHOLD


class ModelConfig(BaseModel):
    """Sizes and loss weight of the bar VAE; the paper's values are the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_size: int = Field(BAR_SIZE, ge=BAR_SIZE, le=BAR_SIZE,
                            description="2496, fixed by the bar codec")
    hidden_size: int = Field(500, ge=1, le=8192)
    latent_size: int = Field(500, ge=1, le=8192)
    beta: float = Field(1.0, gt=0.0, le=100.0, description="weight of the KL term (1 = VAE)")


class FrontierRow(BaseModel):
    """One budget of the frontier: answers to real out-of-style queries (seeds averaged per
    query; mean, min or max over the queries)."""

    model_config = ConfigDict(extra="forbid")

    budget_bits: int | str
    chroma_cosine_mean: float
    chroma_cosine_min: float
    onset_f1_mean: float
    onset_f1_max: float
    style_mean: float
    style_min: float
    starts_per_bar: float
    silent_bars: int


class ModelCard(BaseModel):
    """What a checkpoint was trained on and how it answers: held-out checks, the style
    measure's validation, the frontier on real queries."""

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
    beta: float | None = None
    texture_noise: float = 0.0
    texture_keep_min: float | None = Field(
        None, description="re-texturing's least keep probability of a pitch (None: not recorded)")
    heldout_note_f1: float | None = Field(
        None, description="onset F1, threshold 0.5, decoding mu (reported, not a target)")
    heldout_frame_f1: float | None = Field(None, description="F1 over the 2496 binary features")
    heldout_chroma_cosine: float | None = Field(None, description="mean per-bar chroma cosine")
    heldout_loss_per_bar: float | None = None
    heldout_answer_chroma_cosine: float | None = Field(
        None, description="held-out bars answered (register, calibrated decoding): chroma")
    heldout_answer_onset_f1: float | None = None
    style_heldout_corpus: float | None = Field(
        None, description="style measure: mean P(corpus) on held-out corpus pieces")
    style_heldout_other: float | None = Field(
        None, description="style measure: mean P(corpus) on held-out other music")
    frontier: list[FrontierRow] = Field(default_factory=list)
    frontier_setting: str = ""
    free_style: float | None = None
    free_starts_per_bar: float | None = None
    weights_dtype: str = "float32"


class AnswerConfig(BaseModel):
    """How this model answers, measured on its corpus by ``qbdi train`` and stored in the
    checkpoint: where query bars are moved before encoding, and how the decoder's
    probabilities become bars (:mod:`qbdi.models.decoding`).

    ``centre_pitch``: each query bar is moved by whole octaves so its mean sounding pitch is
    nearest this MIDI pitch, the corpus's mean (:mod:`qbdi.models.register`); None keeps the
    player's register. ``method``: ``voices`` (the corpus's number of voices per step, the
    most probable pitches), ``notes`` (the best note path per pitch), ``cells`` (each cell by
    its biased log-odds) or ``threshold`` (each cell ``p > threshold``: the behaviour of
    checkpoints written before this was stored, which load with it).
    ``free_latents``: where free mode draws its latents: the corpus's aggregate statistics
    (per dimension the mean and variance of ``mu`` over the corpus's bars; measured closer to
    the corpus's style than the prior) or the prior N(0, I) (the paper; older checkpoints).
    ``pitch_range``: the lowest and highest MIDI pitch the corpus sounds, where answers may
    sound (:class:`~qbdi.models.runtime.InferenceModel`); None: the codec's whole range.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    centre_pitch: float | None = Field(None, ge=0.0, le=127.0)
    method: Literal["threshold", "cells", "notes", "voices"] = "threshold"
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0.0, lt=1.0)
    sounding_bias: float = Field(0.0, ge=-20.0, le=20.0, description="nats added to log-odds")
    onset_bias: float = Field(0.0, ge=-20.0, le=20.0, description="nats added to log-odds")
    start_cost: float = Field(1.0, ge=0.0, le=50.0, description="nats per note start")
    restrike_cost: float = Field(1.0, ge=0.0, le=50.0, description="nats per re-strike")
    tie_cost: float = Field(2.0, ge=0.0, le=50.0, description="nats per note tied in")
    min_voices: int = Field(1, ge=1, le=78)
    max_voices: int = Field(4, ge=1, le=78)
    corpus_starts_per_bar: float | None = Field(
        None, ge=0.0, description="calibration target: note starts per corpus bar")
    corpus_sounding_per_bar: float | None = Field(
        None, ge=0.0, description="calibration target: sounding cells per corpus bar")
    calibrated_on: str = Field("", description="which bars' answers the biases were set on")
    free_latents: Literal["corpus", "prior"] = "corpus"
    pitch_range: tuple[int, int] | None = None

    @field_validator("pitch_range")
    @classmethod
    def _range_in_the_codec(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not LOWEST_PITCH <= value[0] <= value[1] <= HIGHEST_PITCH:
            raise ValueError(f"must be (lowest, highest) with {LOWEST_PITCH} <= lowest <= "
                             f"highest <= {HIGHEST_PITCH}, got {value}")
        return value


LEGACY_ANSWER = AnswerConfig(free_latents="prior")
"""How a checkpoint written before :class:`AnswerConfig` was stored answers: the player's
register, each cell by the settings' threshold, free mode from the prior."""
