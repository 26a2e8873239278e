"""A pretext-task baseline: predict by how many quarter turns an image was rotated (0, 90, 180, 270).

To tell the rotation of a digit or shape the encoder must notice its orientation-bearing parts,
which is a representation of sorts; unlike contrastive learning it needs no negatives, and it
learns nothing from images that look the same rotated (a circle, a square). Square images only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import ConvEncoder


class RotationPrediction(nn.Module):
    """``ConvEncoder`` + a linear 4-way classifier of the rotation; ``loss`` = its cross-entropy (nats)."""

    def __init__(self, shape=(8, 8, 1), levels: int = 17, width: int = 64, features: int = 128, seed: int = 0):
        super().__init__()
        if shape[0] != shape[1]:
            raise ValueError(f"rotation prediction needs square images, got shape {tuple(shape)}")
        self.encoder = ConvEncoder(shape, levels, width, features)
        self.classifier = nn.Linear(features, 4)
        self.gen = torch.Generator().manual_seed(seed)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        u = self.encoder.to_views(x)  # (B, C, H, W)
        turns = torch.randint(0, 4, (len(u),), generator=self.gen).to(u.device)  # (B,)
        rotated = torch.stack([torch.rot90(u, k, dims=(2, 3)) for k in range(4)])  # (4, B, C, H, W)
        v = rotated[turns, torch.arange(len(u), device=u.device)]  # (B, C, H, W)
        return F.cross_entropy(self.classifier(self.encoder(v)), turns)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(x)
