"""SimCLR: two augmented views of each image, an encoder, a projection head, and NT-Xent.

For a batch of N images, the 2N views' projections z (unit length) are compared by cosine
similarity s(i, j) = z_i . z_j. Each view's positive is the other view of its image; the other
2N - 2 views are its negatives. NT-Xent (normalised temperature-scaled cross-entropy):

    l(i, j) = -log( exp(s(i, j) / t) / sum_{k != i} exp(s(i, k) / t) ),   L = mean over the 2N anchors.

When all embeddings are equal every term is log(2N - 1). The probes read the encoder's output,
before the projection head. Under ``torch.distributed`` the candidates are the views of every
process (``distributed.gather_with_grad``): more negatives without a bigger batch per process.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepul_helpers.augment import Augment

from .distributed import gather_with_grad
from .encoders import ConvEncoder, mlp


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, z1_all: torch.Tensor | None = None,
            z2_all: torch.Tensor | None = None, offset: int = 0) -> torch.Tensor:
    """NT-Xent of the 2B local anchors z1, z2 (B, D) (two views of B examples, row i of each is
    example i) against the candidates z1_all, z2_all (N, D) (the views of the whole global batch,
    default z1, z2), in which the local examples are rows ``offset .. offset + B``. Mean over anchors."""
    z1_all = z1 if z1_all is None else z1_all
    z2_all = z2 if z2_all is None else z2_all
    b, n = len(z1), len(z1_all)
    anchors = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, D)
    candidates = F.normalize(torch.cat([z1_all, z2_all]), dim=1)  # (2N, D)
    logits = anchors @ candidates.T / temperature  # (2B, 2N)
    own = offset + torch.arange(b, device=z1.device)
    self_idx, pos_idx = torch.cat([own, own + n]), torch.cat([own + n, own])  # (2B,), (2B,)
    logits = logits.masked_fill(F.one_hot(self_idx, 2 * n).bool(), float("-inf"))  # never oneself
    return F.cross_entropy(logits, pos_idx)


class SimCLR(nn.Module):
    """Encoder + projection head trained with NT-Xent on two ``augment`` views of each image.

    Args: shape (H, W, C), levels: the data set's. width / features: the ``ConvEncoder``.
    projection: output size of the 2-layer head. temperature: NT-Xent's t.
    augment: an ``augment.Augment`` (default: shift 1, rotation 15 degrees, zoom 0.9-1.1, noise 0.05).
    seed: the views' own generator (under torchrun give each process its own).
    """

    def __init__(self, shape=(8, 8, 1), levels: int = 17, width: int = 64, features: int = 128,
                 projection: int = 64, temperature: float = 0.5, augment: Augment | None = None, seed: int = 0):
        super().__init__()
        self.encoder = ConvEncoder(shape, levels, width, features)
        self.head = mlp(features, projection, features)
        self.temperature = temperature
        self.augment = augment if augment is not None else Augment()
        self.gen = torch.Generator().manual_seed(seed)

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two random views (B, C, H, W) of a batch as the data set stores it."""
        u = self.encoder.to_views(x)
        return self.augment(u, self.gen), self.augment(u, self.gen)

    def project(self, v: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(v))  # (B, C, H, W) -> (B, projection)

    def loss_views(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        z1, z2 = F.normalize(self.project(v1), dim=1), F.normalize(self.project(v2), dim=1)
        z1_all, offset = gather_with_grad(z1)  # the global batch under torch.distributed, else z1
        z2_all, _ = gather_with_grad(z2)
        return nt_xent(z1, z2, self.temperature, z1_all, z2_all, offset)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss_views(*self.views(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the probes read: the encoder's features (B, features)."""
        return self.encoder.encode(x)
