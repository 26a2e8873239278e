"""Dequantization: turning discrete values x in {0, ..., levels-1} into continuous points
v = x + u with u in [0, 1)^D, so that a density on v gives a lower bound on log P(x):

    log P(x) >= E_{u ~ q(u | x)} [ log p(x + u) - log q(u | x) ].

``UniformDequantization``: q = U[0, 1)^D, log q = 0.
``VariationalDequantization`` (Flow++): u = sigmoid(g(eps; x)), eps ~ N(0, I), with g a
conditional flow of affine couplings that sees x; q is learned with the model and the bound
gets tighter. Both are called as ``dequantizer(x, levels) -> (v, log_q)`` with x float in
the flow's internal layout ((B, D) or (B, C, H, W)) and log_q of shape (B,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .coupling import AffineCoupling, alternating_mask, checkerboard_mask, conv_net, mlp


class UniformDequantization(nn.Module):
    """v = x + u, u ~ U[0, 1)^D; log q(u | x) = 0."""

    def forward(self, x: torch.Tensor, levels: int):
        return x + torch.rand_like(x), x.new_zeros(x.shape[0])


class VariationalDequantization(nn.Module):
    """Learned noise q(u | x) (Flow++): eps ~ N(0, I), h = g(eps; x) by ``n_couplings`` conditional
    affine couplings, u = sigmoid(h);  log q(u | x) = log N(eps) - log|det dh/deps| - log|det du/dh|.

    Args:
        shape: one example as the data set stores it: ``(D,)`` or ``(H, W, C)``.
        n_couplings: number of conditional coupling layers (alternating masks).
        hidden: width of the conditioner (MLP units for vectors, conv channels for images).
    """

    def __init__(self, shape, n_couplings: int = 4, hidden: int = 32):
        super().__init__()
        shape = tuple(int(s) for s in shape)
        layers = []
        for i in range(n_couplings):
            if len(shape) == 3:  # images, internal (B, C, H, W)
                h, w, c = shape
                net = conv_net(2 * c, 2 * c, channels=hidden, n_blocks=1)
                layers.append(AffineCoupling(checkerboard_mask(h, w, parity=i % 2), net, c))
            else:
                d = shape[0] if shape else 1
                layers.append(AffineCoupling(alternating_mask(d, parity=i % 2), mlp(2 * d, 2 * d, hidden), d))
        self.couplings = nn.ModuleList(layers)

    def transform(self, eps: torch.Tensor, x: torch.Tensor, levels: int):
        """Noise eps -> (u in (0, 1), log q(u | x)), each example's log q of shape (B,)."""
        context = 2 * x / (levels - 1) - 1  # x scaled to [-1, 1]
        log_q = (-0.5 * eps**2 - 0.5 * math.log(2 * math.pi)).reshape(x.shape[0], -1).sum(1)
        h = eps
        for layer in self.couplings:
            h, logdet = layer(h, context)
            log_q = log_q - logdet
        u = torch.sigmoid(h)
        log_q = log_q - (F.logsigmoid(h) + F.logsigmoid(-h)).reshape(x.shape[0], -1).sum(1)
        return u, log_q

    def forward(self, x: torch.Tensor, levels: int):
        u, log_q = self.transform(torch.randn_like(x), x, levels)
        return x + u, log_q
