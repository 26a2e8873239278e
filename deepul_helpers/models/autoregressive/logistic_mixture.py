"""Discretized mixture of logistics for 1D discrete data (the PixelCNN++ output).

Each component is a logistic with mean mu and scale s; the probability of value x
is the logistic mass of the bin [x - 1/2, x + 1/2], except that the first bin
takes everything below 1/2 and the last everything above levels - 3/2, so the
probabilities of 0..levels-1 sum to one exactly.

Numerics: with a = (x - 1/2 - mu)/s and b = (x + 1/2 - mu)/s,

    sigmoid(b) - sigmoid(a) = sigmoid(b) * sigmoid(-a) * (1 - exp(a - b)),

so log p = logsigmoid(b) + logsigmoid(-a) + log(-expm1(-1/s)): three terms that
never cancel, stable for huge and tiny scales and for means far outside the range.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from deepul_helpers.models._common import check_levels

LOG_SCALE_MIN, LOG_SCALE_MAX = -30.0, 50.0  # exp(-log_scale) stays finite in float32


def discretized_logistic_mixture_log_probs(
    x: torch.Tensor,
    logit_weights: torch.Tensor,
    means: torch.Tensor,
    log_scales: torch.Tensor,
    levels: int,
) -> torch.Tensor:
    """log p(x) under a mixture of discretized logistics on the values ``0..levels-1``.

    x:             integer tensor of any shape ``S`` (values in ``0..levels-1``).
    logit_weights, means, log_scales: ``S + (M,)`` (or broadcastable to it), M components;
                   means and scales are in units of levels (value k sits at k).
    Returns ``S``: log-probabilities in nats. log_scales are clamped to [-30, 50].
    """
    levels = int(levels)
    if levels < 2:
        raise ValueError(f"levels must be at least 2, got {levels}")
    xf = x.to(means.dtype).unsqueeze(-1)  # S + (1,)
    log_s = log_scales.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
    inv_s = torch.exp(-log_s)  # S + (M,)
    a = (xf - 0.5 - means) * inv_s  # left edge of the bin, standardised
    b = (xf + 0.5 - means) * inv_s  # right edge
    interior = F.logsigmoid(b) + F.logsigmoid(-a) + torch.log(-torch.expm1(-inv_s))
    first = F.logsigmoid(b)  # P(y < 1/2)
    last = F.logsigmoid(-a)  # P(y > levels - 3/2)
    log_p = torch.where(xf <= 0, first, torch.where(xf >= levels - 1, last, interior))  # S + (M,)
    log_w = F.log_softmax(logit_weights, dim=-1)
    return torch.logsumexp(log_w + log_p, dim=-1)  # S


class DiscretizedLogisticMixture(nn.Module):
    """Mixture of ``n_components`` discretized logistics for 1D data ``(N,)`` int64.

    ``loss(x)``: mean NLL in nats. ``log_probs()``: ``(levels,)`` log-probabilities of
    every value. ``sample(n)``: ``(n,)`` int64 on the CPU (exact: draw a component,
    draw a logistic, round, clip to the range).
    Initial means are spread evenly over the range with wide scales.
    """

    def __init__(self, levels: int, n_components: int = 4):
        super().__init__()
        if int(levels) < 2:
            raise ValueError(f"levels must be at least 2, got {levels}")
        if int(n_components) < 1:
            raise ValueError(f"n_components must be at least 1, got {n_components}")
        self.levels, self.n_components = int(levels), int(n_components)
        m = self.n_components
        self.logit_weights = nn.Parameter(torch.zeros(m))  # (M,)
        self.means = nn.Parameter((torch.arange(m, dtype=torch.float32) + 0.5) * (levels / m) - 0.5)
        self.log_scales = nn.Parameter(torch.full((m,), math.log(levels / (2.0 * m))))

    def log_probs(self) -> torch.Tensor:
        values = torch.arange(self.levels, device=self.means.device)
        return discretized_logistic_mixture_log_probs(
            values, self.logit_weights, self.means, self.log_scales, self.levels
        )  # (K,)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) log p(x) in nats."""
        x = check_levels(x, self.levels, "DiscretizedLogisticMixture").reshape(-1)  # (B,)
        return discretized_logistic_mixture_log_probs(x, self.logit_weights, self.means, self.log_scales, self.levels)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = int(n)
        w = F.softmax(self.logit_weights, 0).cpu()
        k = torch.multinomial(w, n, replacement=True, generator=generator)  # (n,)
        u = torch.rand(n, generator=generator).clamp(1e-6, 1 - 1e-6)
        logistic = torch.log(u) - torch.log1p(-u)  # standard logistic
        scale = self.log_scales.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp().cpu()
        y = self.means.cpu()[k] + scale[k] * logistic
        return y.round().clamp(0, self.levels - 1).long()  # (n,)
