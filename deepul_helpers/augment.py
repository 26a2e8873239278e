"""Augmentations for small images, batched on tensors and seeded: the "views" of contrastive learning.

Every function takes a float batch ``x`` of shape (B, C, H, W) with values in [0, 1] (on any
device) and a ``torch.Generator`` (on the CPU; the random numbers are drawn there and moved to
``x.device``, so a seed gives the same views on every device), and returns a new batch of the
same shape, dtype and device, with values still in [0, 1]. Each example gets its own draw.

    from deepul_helpers import augment
    x = augment.to_unit(batch_uint8_nhwc, levels=17)          # (B, 1, 8, 8) float32 in [0, 1]
    views = augment.Augment(shift=1, degrees=15, noise=0.05, cutout=2)
    v1, v2 = views(x, gen), views(x, gen)                      # two random views of each image

``random_shift`` pads by ``max_shift`` pixels (zeros) and crops back at a random offset (the
"random crop with padding" of small-image training); ``random_rotation`` rotates by a uniform
angle in [-degrees, degrees] (and scales by a uniform factor in ``scale``) about the centre,
bilinear, zeros outside; ``gaussian_noise`` adds N(0, sd^2) and clips to [0, 1]; ``cutout``
sets a random ``size`` x ``size`` square (possibly partly outside the image) to 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _check(x: torch.Tensor, gen) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise TypeError("augmentations take a float tensor (B, C, H, W) with values in [0, 1]; "
                        "convert data-set images with augment.to_unit(x, levels)")
    if not isinstance(gen, torch.Generator) or gen.device.type != "cpu":
        raise TypeError("pass a CPU torch.Generator (e.g. torch.Generator().manual_seed(0)) as the generator")


def to_unit(x, levels: int) -> torch.Tensor:
    """Images as a data set stores them (NHWC integer levels 0..levels-1, tensor or array) ->
    (B, C, H, W) float32 in [0, 1]."""
    x = torch.as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"images must be NHWC (B, H, W, C), got shape {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).float() / (levels - 1)


def _uniform(gen, shape, lo, hi, device):
    return (lo + (hi - lo) * torch.rand(shape, generator=gen)).to(device)


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Pad by ``max_shift`` zeros on every side, crop (H, W) back at a random offset per example."""
    _check(x, gen)
    if max_shift <= 0:
        return x.clone()
    b, c, h, w = x.shape
    xp = F.pad(x, (max_shift,) * 4)  # (B, C, H + 2s, W + 2s)
    off = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=gen).to(x.device)  # (B, 2) top-left corners
    rows = off[:, :1] + torch.arange(h, device=x.device)  # (B, H)
    cols = off[:, 1:] + torch.arange(w, device=x.device)  # (B, W)
    idx = torch.arange(b, device=x.device)[:, None, None]
    return xp.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def random_rotation(x: torch.Tensor, degrees: float, gen: torch.Generator, scale=(1.0, 1.0)) -> torch.Tensor:
    """Rotate each image by a uniform angle in [-degrees, degrees] and zoom by a uniform factor in
    ``scale`` (> 1 enlarges), about the centre; bilinear, zeros outside (values stay in [0, 1])."""
    _check(x, gen)
    b = x.shape[0]
    angle = _uniform(gen, (b,), -degrees, degrees, "cpu") * math.pi / 180
    zoom = _uniform(gen, (b,), scale[0], scale[1], "cpu")
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(b)], 1),
                         torch.stack([sin, cos, torch.zeros(b)], 1)], 1)  # (B, 2, 3) output -> input coords
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_noise(x: torch.Tensor, sd: float, gen: torch.Generator) -> torch.Tensor:
    """Add N(0, sd^2) noise to every value and clip to [0, 1]."""
    _check(x, gen)
    return (x + sd * torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)).clamp(0, 1)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Set a ``size`` x ``size`` square at a uniformly random centre of each image to 0 (all channels)."""
    _check(x, gen)
    if size <= 0:
        return x.clone()
    b, _, h, w = x.shape
    centre = torch.stack([torch.randint(0, h, (b,), generator=gen), torch.randint(0, w, (b,), generator=gen)], 1)
    top = (centre - size // 2).to(x.device)  # (B, 2)
    r = torch.arange(h, device=x.device)[None, :] - top[:, :1]  # (B, H) row offset inside the square
    c = torch.arange(w, device=x.device)[None, :] - top[:, 1:]  # (B, W)
    inside = ((r >= 0) & (r < size))[:, :, None] & ((c >= 0) & (c < size))[:, None, :]  # (B, H, W)
    return x.masked_fill(inside[:, None], 0.0)


class Augment:
    """The composition used for contrastive views: rotation/zoom, shift, cut-out, noise (each
    skipped when its strength is 0). ``Augment(...)(x, gen)`` -> one random view of each image."""

    def __init__(self, shift: int = 1, degrees: float = 15.0, scale=(0.9, 1.1), noise: float = 0.05,
                 cutout: int = 0):
        self.shift, self.degrees, self.scale, self.noise, self.cutout = shift, degrees, tuple(scale), noise, cutout

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.degrees or self.scale != (1.0, 1.0):
            x = random_rotation(x, self.degrees, gen, self.scale)
        if self.shift:
            x = random_shift(x, self.shift, gen)
        if self.cutout:
            x = cutout(x, self.cutout, gen)
        if self.noise:
            x = gaussian_noise(x, self.noise, gen)
        return x

    def __repr__(self) -> str:
        return (f"Augment(shift={self.shift}, degrees={self.degrees}, scale={self.scale}, noise={self.noise}, "
                f"cutout={self.cutout})")


__all__ = ["Augment", "cutout", "gaussian_noise", "random_rotation", "random_shift", "to_unit"]
