"""Glow building blocks: ActNorm (data-dependent initialisation) and the invertible 1x1
convolution, LU-parameterised so its log-determinant costs O(C) instead of O(C^3).

Both work on vectors (B, D) and on images (B, C, H, W); on images the log-determinant of a
per-pixel map is counted once per pixel (times H * W).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from .bijectors import Bijector


def _pixels(x: torch.Tensor) -> int:
    return x[0, 0].numel()  # H * W for images, 1 for vectors


def _view(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return p.view(1, -1, *([1] * (x.dim() - 2)))  # (C,) -> (1, C) or (1, C, 1, 1)


class ActNorm(Bijector):
    """z = (x - loc) * exp(-log_scale) per channel. The first batch it sees sets loc and
    log_scale so that z has zero mean and unit variance per channel (data-dependent init)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _init(self, x):
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, B * H * W)
        self.loc.copy_(flat.mean(dim=1))
        self.log_scale.copy_(torch.log(flat.std(dim=1) + 1e-6))
        self.initialized.fill_(True)

    def forward(self, x):
        if not bool(self.initialized):
            self._init(x)
        z = (x - _view(self.loc, x)) * torch.exp(-_view(self.log_scale, x))
        logdet = -self.log_scale.sum() * _pixels(x)
        return z, logdet.expand(x.shape[0])

    def inverse(self, z):
        x = z * torch.exp(_view(self.log_scale, z)) + _view(self.loc, z)
        logdet = self.log_scale.sum() * _pixels(z)
        return x, logdet.expand(z.shape[0])


class InvertibleConv1x1(Bijector):
    """z = W x at every pixel, W = P L (U + diag(sign * exp(log_s))), P a fixed permutation,
    L unit lower triangular, U strictly upper triangular: log |det W| = sum(log_s).
    Initialised from a random rotation, so it mixes channels from the start."""

    def __init__(self, num_features: int, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        w = np.linalg.qr(rng.standard_normal((num_features, num_features)))[0]
        p, lower, upper = scipy.linalg.lu(w)
        s = np.diag(upper)
        self.register_buffer("perm", torch.tensor(p, dtype=torch.float32))
        self.register_buffer("sign_s", torch.tensor(np.sign(s), dtype=torch.float32))
        self.register_buffer("lower_mask", torch.tril(torch.ones(num_features, num_features), -1))
        self.lower = nn.Parameter(torch.tensor(lower, dtype=torch.float32))
        self.upper = nn.Parameter(torch.tensor(np.triu(upper, 1), dtype=torch.float32))
        self.log_s = nn.Parameter(torch.tensor(np.log(np.abs(s)), dtype=torch.float32))

    def weight(self) -> torch.Tensor:
        eye = torch.eye(self.lower.shape[0], device=self.lower.device, dtype=self.lower.dtype)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm.to(lower.dtype) @ lower @ upper  # (C, C)

    def _mix(self, x, w):
        if x.dim() == 2:
            return x @ w.T  # (B, D)
        return F.conv2d(x, w[:, :, None, None])  # (B, C, H, W)

    def forward(self, x):
        z = self._mix(x, self.weight())
        return z, (self.log_s.sum() * _pixels(x)).expand(x.shape[0])

    def inverse(self, z):
        x = self._mix(z, torch.linalg.inv(self.weight()))
        return x, (-self.log_s.sum() * _pixels(z)).expand(z.shape[0])
