"""The simplest likelihood model: every dimension an independent categorical.

p(x) = prod_d softmax(logits_d)[x_d]. It ignores every dependence between dimensions, so
its test NLL is the floor every real model must beat; on 1D data it *is* the right model
(a histogram). Used by the demo, the foundation's smoke test and the round-up.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class IndependentCategorical(nn.Module):
    """Independent categorical per dimension for discrete data of shape ``shape`` with ``levels`` values."""

    def __init__(self, shape: tuple[int, ...] | int, levels: int):
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.levels = int(levels)
        self.dim = math.prod(self.shape)
        self.logits = nn.Parameter(torch.zeros(self.dim, self.levels))  # (D, K)

    def log_probs(self) -> torch.Tensor:
        """(D, K) log-probabilities of every value in every dimension."""
        return F.log_softmax(self.logits, dim=-1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), self.dim).long()  # (B, D)
        if x.min() < 0 or x.max() >= self.levels:
            raise ValueError(f"data values must lie in 0..{self.levels - 1}")
        lp = self.log_probs().unsqueeze(0).expand(len(x), -1, -1)  # (B, D, K)
        return -lp.gather(2, x.unsqueeze(-1)).mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        probs = self.log_probs().exp().cpu()  # (D, K)
        x = torch.multinomial(probs, n, replacement=True).T  # (n, D)
        return x.reshape(n, *self.shape).to(torch.uint8 if self.levels <= 256 and len(self.shape) > 1 else torch.int64)
