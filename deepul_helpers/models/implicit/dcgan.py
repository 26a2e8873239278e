"""DCGAN (Radford et al. 2016) for the course's small images: ``digits`` (8x8, 17 levels) and ``shapes`` (20x20).

The DCGAN recipe, scaled down: the generator upsamples noise with transposed convolutions,
batch normalisation and ReLU, and ends in tanh; the discriminator downsamples with strided
convolutions and LeakyReLU(0.2), no pooling, no fully connected hidden layers. Both train with
Adam(lr 2e-4, betas (0.5, 0.999)) through ``fit(step=gan_step, optimizer=gan_optimizer())``.

Network space is [-1, 1]: a level k of L maps to 2 k / (L - 1) - 1; samples are rounded back to
levels, NHWC uint8 like the data set.

    model = dcgan("digits", loss="nonsaturating")      # also "hinge" (spectral norm), "wgan-gp"
"""

from __future__ import annotations

import torch
from torch import nn

from .gan import GAN
from .spectral_norm import apply_spectral_norm

# data set -> (side, levels, channels)
IMAGE_SETS = {"digits": (8, 17, 1), "shapes": (20, 2, 1)}


def _generator(noise_dim: int, side: int, channels: int, width: int) -> nn.Sequential:
    start = 2 if side == 8 else 5  # 2 -> 4 -> 8, or 5 -> 10 -> 20
    return nn.Sequential(
        nn.Linear(noise_dim, 2 * width * start * start), nn.Unflatten(1, (2 * width, start, start)),
        nn.BatchNorm2d(2 * width), nn.ReLU(),  # (B, 2w, s, s)
        nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),  # (B, w, 2s, 2s)
        nn.BatchNorm2d(width), nn.ReLU(),
        nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1), nn.Tanh(),  # (B, C, 4s, 4s)
    )


def _discriminator(side: int, channels: int, width: int, pack: int, norm: bool) -> nn.Sequential:
    quarter = side // 4
    return nn.Sequential(
        nn.Conv2d(channels * pack, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, w, s/2, s/2)
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
        nn.BatchNorm2d(2 * width) if norm else nn.Identity(), nn.LeakyReLU(0.2),  # (B, 2w, s/4, s/4)
        nn.Flatten(), nn.Linear(2 * width * quarter * quarter, 1),  # (B, 1)
    )


def dcgan(dataset: str = "digits", loss: str = "nonsaturating", noise_dim: int = 32, width: int = 64,
          pack: int = 1, **kw) -> GAN:
    """A DCGAN for ``dataset`` ("digits" or "shapes"). The discriminator has batch normalisation for
    the minimax / non-saturating losses, none for WGAN-GP (the penalty is per example), and spectral
    normalisation instead for the hinge loss."""
    if dataset not in IMAGE_SETS:
        raise ValueError(f"dcgan knows {', '.join(IMAGE_SETS)}, not {dataset!r}")
    side, levels, channels = IMAGE_SETS[dataset]
    disc = _discriminator(side, channels, width, pack, norm=loss in ("minimax", "nonsaturating"))
    if loss == "hinge":
        apply_spectral_norm(disc)

    def encode(x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C) levels -> (B, C, H, W) in [-1, 1]
        return x.permute(0, 3, 1, 2).float() * (2.0 / (levels - 1)) - 1.0

    def decode(y: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [-1, 1] -> (B, H, W, C) uint8 levels
        return torch.round((y.permute(0, 2, 3, 1) + 1.0) * ((levels - 1) / 2.0)).clamp(0, levels - 1).to(torch.uint8)

    return GAN(_generator(noise_dim, side, channels, width), disc, noise_dim, loss=loss, pack=pack,
               encode=encode, decode=decode, data_shape=(side, side, channels), **kw)
