"""InfoNCE: the contrastive loss, and the lower bound on mutual information it gives.

For N pairs (x_i, y_i) drawn from p(x, y) and a critic f, the score matrix S[i, j] = f(x_i, y_j)
(N, N) has the positives on its diagonal. InfoNCE is the cross-entropy of picking the positive
among the N candidates of each row:

    L = -1/N sum_i log( exp S[i, i] / sum_j exp S[i, j] ),      I(x; y) >= log N - L.

Since L >= 0 the bound never exceeds log N: with N candidates one cannot certify more than
log N nats, however strongly x and y depend on each other. ``InfoNCE`` trains a separable critic
f(x, y) = g(x) . h(y) on pairs (B, 2, d) (``data.load("gaussian_pairs")``) with ``fit``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import mlp


def info_nce(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE loss (nats) of a score matrix (N, N) whose diagonal holds the positive pairs."""
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square matrix (N, N) of critic values, got {tuple(scores.shape)}")
    return F.cross_entropy(scores, torch.arange(len(scores), device=scores.device))


def mi_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    """The InfoNCE bound log N - L on I(x; y) in nats; at most log N."""
    return math.log(len(scores)) - info_nce(scores)


class InfoNCE(nn.Module):
    """A separable critic f(x, y) = g(x) . h(y) with MLPs g, h: pairs (B, 2, dim) float -> scores (B, B)."""

    def __init__(self, dim: int = 5, hidden: int = 128, embed: int = 32):
        super().__init__()
        self.dim = dim
        self.g, self.h = mlp(dim, embed, hidden, 2), mlp(dim, embed, hidden, 2)

    def scores(self, pairs: torch.Tensor) -> torch.Tensor:
        if pairs.ndim != 3 or pairs.shape[1:] != (2, self.dim):
            raise ValueError(f"pairs must have shape (B, 2, {self.dim}) (row 0: x, row 1: y), got {tuple(pairs.shape)}")
        return self.g(pairs[:, 0]) @ self.h(pairs[:, 1]).T  # (B, B)

    def loss(self, pairs: torch.Tensor) -> torch.Tensor:
        return info_nce(self.scores(pairs))

    @torch.no_grad()
    def mi_bound(self, pairs: torch.Tensor, batch_size: int) -> float:
        """The InfoNCE bound with N = ``batch_size`` candidates, averaged over the consecutive
        batches of ``pairs`` (a leftover shorter than ``batch_size`` is dropped)."""
        n = len(pairs) // batch_size
        if n == 0:
            raise ValueError(f"need at least batch_size={batch_size} pairs, got {len(pairs)}")
        return float(sum(mi_lower_bound(self.scores(pairs[i * batch_size:(i + 1) * batch_size]))
                         for i in range(n)) / n)
