"""The networks every self-supervised model of the family shares: a small convolutional image
encoder (the representation that probes read) and an MLP (projection heads, critics)."""

from __future__ import annotations

import torch
from torch import nn

from deepul_helpers.augment import to_unit
from deepul_helpers.models._common import check_levels, check_shape, model_device


def mlp(d_in: int, d_out: int, hidden: int = 128, n_hidden: int = 1) -> nn.Sequential:
    """Linear -> ReLU (``n_hidden`` times) -> Linear."""
    layers, d = [], d_in
    for _ in range(n_hidden):
        layers += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    return nn.Sequential(*layers, nn.Linear(d, d_out))


class ConvEncoder(nn.Module):
    """Images (H, W, C) with ``levels`` values -> a feature vector (B, features).

    3x3 convolutions with ReLU: two at full resolution, then stride-2 blocks until the side is at
    most 4, then flatten and a linear map. No batch normalisation: a momentum encoder or a
    gather across processes then sees exactly the same function of each example.
    ``forward`` takes float views (B, C, H, W) in [0, 1]; ``encode`` takes the batch as the data set
    stores it (NHWC integer levels) and is what the probes read.
    """

    def __init__(self, shape=(8, 8, 1), levels: int = 17, width: int = 64, features: int = 128):
        super().__init__()
        h, w, c = (int(s) for s in shape)
        self.shape, self.levels, self.features = (h, w, c), levels, features
        layers = [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        ch = width
        while max(h, w) > 4:
            layers += [nn.Conv2d(ch, 2 * width, 3, stride=2, padding=1), nn.ReLU()]
            ch, h, w = 2 * width, (h + 1) // 2, (w + 1) // 2
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(ch * h * w, features)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(v).flatten(1))  # (B, C, H, W) -> (B, features)

    def to_views(self, x: torch.Tensor) -> torch.Tensor:
        """Integer NHWC batch -> float (B, C, H, W) in [0, 1] on the encoder's device."""
        check_shape(x, self.shape, type(self).__name__)
        x = check_levels(x, self.levels, type(self).__name__)
        return to_unit(x, self.levels).to(model_device(self))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The representation (B, features) of a batch as the data set stores it."""
        return self(self.to_views(x))


class RandomEncoder(ConvEncoder):
    """The baseline every self-supervised encoder must beat: the same ``ConvEncoder`` with its random
    initial weights, frozen (build it after ``config.seed_everything(seed)``). Nothing to train."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requires_grad_(False)
