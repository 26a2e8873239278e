"""NICE/RealNVP affine coupling: half of the variables (the mask) pass unchanged and set the
scale and shift of the other half, so the Jacobian is triangular and the inverse is one pass.

    z = x * m + (1 - m) * (x * exp(s(x * m)) + t(x * m)),   logdet = sum (1 - m) * s

The log-scale is bounded, s = scale * tanh(raw), with ``scale`` learned per feature, so one
bad step cannot blow the scale up to inf/NaN.
"""

from __future__ import annotations

import torch
from torch import nn

from .bijectors import Bijector, sum_except_batch


def checkerboard_mask(height: int, width: int, parity: int = 0) -> torch.Tensor:
    """(1, 1, H, W) float mask, 1 where (row + col + parity) is even."""
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    return (((rows + cols + parity) % 2) == 0).float()[None, None]


def channel_mask(channels: int, parity: int = 0) -> torch.Tensor:
    """(1, C, 1, 1) float mask, 1 on the first half of the channels (the second half if parity=1)."""
    m = (torch.arange(channels) < channels // 2).float()
    m = 1 - m if parity else m
    return m[None, :, None, None]


def alternating_mask(dim: int, parity: int = 0) -> torch.Tensor:
    """(1, D) float mask for vectors, 1 on even features (odd if parity=1)."""
    return ((torch.arange(dim) + parity) % 2 == 0).float()[None]


def mlp(in_features: int, out_features: int, hidden: int = 64, n_hidden_layers: int = 2) -> nn.Sequential:
    """Linear-ReLU stack; the last layer starts at zero so a new coupling is the identity."""
    layers, d = [], in_features
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    last = nn.Linear(d, out_features)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):  # (B, C, H, W)
        return x + self.net(x)


def conv_net(in_channels: int, out_channels: int, channels: int = 64, n_blocks: int = 2) -> nn.Sequential:
    """3x3 conv, residual blocks, 3x3 conv; the last conv starts at zero (identity coupling)."""
    last = nn.Conv2d(channels, out_channels, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1),
                         *[ResBlock(channels) for _ in range(n_blocks)], nn.ReLU(), last)


class AffineCoupling(Bijector):
    """Affine coupling layer.

    Args:
        mask: float 0/1 tensor broadcastable to one batch, e.g. ``alternating_mask(2)`` (1, D),
            ``checkerboard_mask(H, W)`` (1, 1, H, W) or ``channel_mask(C)`` (1, C, 1, 1).
            Variables where mask = 1 pass unchanged and condition the others.
        net: maps ``cat([x * mask, context], dim=1)`` to ``2 * n_features`` outputs along dim 1
            (shift, then raw log-scale), e.g. ``mlp(D, 2 * D)`` or ``conv_net(C, 2 * C)``.
        n_features: D for vectors, C for images.
    ``forward(x, context=None)`` / ``inverse(z, context=None)``: ``context`` (same batch size,
    concatenated to the net's input along dim 1) makes it a conditional coupling.
    """

    def __init__(self, mask: torch.Tensor, net: nn.Module, n_features: int):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.net = net
        pshape = (1, n_features) + (1,) * (mask.dim() - 2)
        self.scale = nn.Parameter(torch.ones(pshape))

    def _shift_logscale(self, x_masked, context):
        h = x_masked if context is None else torch.cat([x_masked, context], dim=1)
        shift, raw = self.net(h).chunk(2, dim=1)
        free = 1 - self.mask
        log_s = self.scale * torch.tanh(raw) * free  # bounded log-scale
        return shift * free, log_s

    def forward(self, x, context=None):
        xm = x * self.mask
        shift, log_s = self._shift_logscale(xm, context)
        z = xm + (1 - self.mask) * (x * torch.exp(log_s) + shift)
        return z, sum_except_batch(log_s)

    def inverse(self, z, context=None):
        zm = z * self.mask
        shift, log_s = self._shift_logscale(zm, context)
        x = zm + (1 - self.mask) * ((z - shift) * torch.exp(-log_s))
        return x, -sum_except_batch(log_s)
