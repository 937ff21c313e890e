"""The paper's bar VAE in torch, used for training.

Encoder ``2496 -> hidden (ReLU) -> (mu, logvar)``; decoder ``latent -> hidden (ReLU) ->
2496 logits``. Loss: Bernoulli cross-entropy summed over the 2496 features plus
``beta`` times the KL divergence to N(0, I), averaged over the batch. Inference at run
time uses :mod:`qbdi.models.runtime`, which computes the same functions in numpy without
importing torch; a test holds the two equal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from qbdi.models.checkpoint import Checkpoint
from qbdi.models.config import ModelConfig


class BarVAE(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.enc_hidden = nn.Linear(config.input_size, config.hidden_size)
        self.enc_mu = nn.Linear(config.hidden_size, config.latent_size)
        self.enc_logvar = nn.Linear(config.hidden_size, config.latent_size)
        self.dec_hidden = nn.Linear(config.latent_size, config.hidden_size)
        self.dec_out = nn.Linear(config.hidden_size, config.input_size)

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> BarVAE:
        model = cls(checkpoint.config)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in checkpoint.weights.items()})
        return model

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """The weights as float32 numpy arrays, named as in a checkpoint."""
        return {k: v.detach().cpu().float().numpy() for k, v in self.state_dict().items()}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 2496)`` -> ``mu, logvar``, each ``(B, latent)``."""
        hidden = F.relu(self.enc_hidden(x))
        return self.enc_mu(hidden), self.enc_logvar(hidden)

    @staticmethod
    def reparametrize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps``, eps ~ N(0, I) drawn from ``generator``."""
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, latent)`` -> logits ``(B, 2496)``; ``sigmoid`` gives note probabilities."""
        return self.dec_out(F.relu(self.dec_hidden(z)))

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparametrize(mu, logvar, generator)), mu, logvar

    def loss(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean over the batch of (BCE summed over features, KL); returns (total, bce, kl)."""
        logits, mu, logvar = self(x, generator)
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
        return bce + self.config.beta * kl, bce, kl
