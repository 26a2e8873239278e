"""Multiscale architecture pieces: ``Squeeze`` trades space for channels, ``FactorOut`` sends
part of the channels straight to the base distribution while an inner flow keeps working on
the rest (RealNVP's multiscale factoring out)."""

from __future__ import annotations

import torch

from .bijectors import Bijector


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block of pixels becomes 4 channels."""
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"Squeeze needs even height and width, got {h}x{w}")
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (B, C, 2, 2, H/2, W/2)
    return x.reshape(b, c * 4, h // 2, w // 2)


def unsqueeze(z: torch.Tensor) -> torch.Tensor:
    """(B, 4C, H/2, W/2) -> (B, C, H, W), the inverse of ``squeeze``."""
    b, c4, h2, w2 = z.shape
    z = z.view(b, c4 // 4, 2, 2, h2, w2).permute(0, 1, 4, 2, 5, 3)  # (B, C, H/2, 2, W/2, 2)
    return z.reshape(b, c4 // 4, h2 * 2, w2 * 2)


class Squeeze(Bijector):
    """Space-to-channel reshape; a permutation, so logdet 0."""

    def forward(self, x):
        return squeeze(x), x.new_zeros(x.shape[0])

    def inverse(self, z):
        return unsqueeze(z), z.new_zeros(z.shape[0])


class Unsqueeze(Bijector):
    """Channel-to-space reshape (``Squeeze`` run backwards); logdet 0."""

    def forward(self, x):
        return unsqueeze(x), x.new_zeros(x.shape[0])

    def inverse(self, z):
        return squeeze(z), z.new_zeros(z.shape[0])


class FactorOut(Bijector):
    """Keeps the first ``n_out`` channels (features) as they are, so they go straight to the base
    distribution, and applies ``inner`` (a shape-preserving bijector) to the rest:
    z = cat(x[:, :n_out], inner(x[:, n_out:]))."""

    def __init__(self, inner: Bijector, n_out: int):
        super().__init__()
        self.inner = inner
        self.n_out = int(n_out)

    def forward(self, x):
        x_out, x_rest = x[:, : self.n_out], x[:, self.n_out :]
        z_rest, logdet = self.inner(x_rest)
        return torch.cat([x_out, z_rest], dim=1), logdet

    def inverse(self, z):
        z_out, z_rest = z[:, : self.n_out], z[:, self.n_out :]
        x_rest, logdet = self.inner.inverse(z_rest)
        return torch.cat([z_out, x_rest], dim=1), logdet
