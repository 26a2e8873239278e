"""Histogram: a free softmax over the values of a 1D discrete variable.

p(x = k) = softmax(theta)_k. The maximum-likelihood fit is the empirical
histogram; trained by gradient descent it gets there slowly but surely.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from deepul_helpers.models._common import check_levels


class Histogram(nn.Module):
    """Softmax over ``levels`` values for 1D data ``(N,)`` int64 in ``0..levels-1``.

    ``loss(x)``: mean NLL in nats (one dimension per example).
    ``log_probs()``: ``(levels,)`` log-probabilities of every value.
    ``sample(n)``: ``(n,)`` int64 on the CPU.
    Initialised uniform, so an untrained model's loss is exactly ``log(levels)``.
    """

    def __init__(self, levels: int):
        super().__init__()
        if int(levels) < 2:
            raise ValueError(f"levels must be at least 2, got {levels}")
        self.levels = int(levels)
        self.logits = nn.Parameter(torch.zeros(self.levels))  # (K,)

    def log_probs(self) -> torch.Tensor:
        return F.log_softmax(self.logits, dim=0)  # (K,)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) log p(x) in nats."""
        return self.log_probs()[check_levels(x, self.levels, "Histogram").reshape(-1)]

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        probs = self.log_probs().exp().cpu()
        return torch.multinomial(probs, int(n), replacement=True, generator=generator)  # (n,)
