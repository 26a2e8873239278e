"""Contrastive Predictive Coding (CPC) on 1D signals.

The sequence (T samples) is cut into T / patch non-overlapping patches; an encoder maps each patch
to z_t (a strided convolution: the patch pipeline), an autoregressive GRU summarises z_1..z_t into
a context c_t, and for each k = 1..K a linear map W_k predicts z_{t+k} from c_t. The prediction is
scored against the true z_{t+k} and, as negatives, the z_{t+k} of the other sequences of the
batch (InfoNCE with N = B candidates):

    L = mean over k, t of  -log( exp(W_k c_t . z_{t+k}) / sum_b exp(W_k c_t . z^b_{t+k}) ).

The representation (``encode``) is the context averaged over time. ``levels`` integer samples are
scaled to [-1, 1] first (the mu-law levels of ``signals`` as they are).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepul_helpers.models._common import check_levels, check_shape, model_device


class CPC(nn.Module):
    """Args: length T, levels of the signal; patch: samples per step; hidden: size of z;
    context: size of c; steps: K, how far ahead to predict."""

    def __init__(self, length: int = 256, levels: int = 256, patch: int = 8, hidden: int = 64, context: int = 64,
                 steps: int = 4):
        super().__init__()
        if length % patch:
            raise ValueError(f"length {length} must be a multiple of patch {patch}")
        self.length, self.levels, self.steps = length, levels, steps
        self.encoder = nn.Sequential(  # (B, 1, T) -> (B, hidden, T / patch)
            nn.Conv1d(1, hidden, patch, stride=patch), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 1), nn.ReLU(), nn.Conv1d(hidden, hidden, 1))
        self.gru = nn.GRU(hidden, context, batch_first=True)
        self.predictors = nn.ModuleList(nn.Linear(context, hidden, bias=False) for _ in range(steps))

    def latents(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, S, hidden) and c (B, S, context), S = T / patch steps."""
        check_shape(x, (self.length,), "CPC")
        x = check_levels(x, self.levels, "CPC").to(model_device(self))
        s = (2 * x / (self.levels - 1) - 1).to(self.predictors[0].weight.dtype)  # (B, T) in [-1, 1]
        z = self.encoder(s[:, None]).transpose(1, 2)  # (B, S, hidden)
        c, _ = self.gru(z)  # (B, S, context)
        return z, c

    def step_losses(self, x: torch.Tensor) -> torch.Tensor:
        """InfoNCE loss of each prediction step k = 1..K (K,), nats, averaged over positions."""
        z, c = self.latents(x)
        b, s = z.shape[:2]
        target = torch.arange(b, device=z.device)
        out = []
        for k, w in enumerate(self.predictors, start=1):
            pred = w(c[:, : s - k])  # (B, S-k, hidden)
            scores = torch.einsum("bth,cth->tbc", pred, z[:, k:])  # (S-k, B, B): row b's positive is column b
            out.append(F.cross_entropy(scores.reshape(-1, b), target.repeat(s - k)))
        return torch.stack(out)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.step_losses(x).mean()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.latents(x)[1].mean(1)  # (B, context)
