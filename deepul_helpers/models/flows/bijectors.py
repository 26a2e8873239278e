"""The bijector interface every flow layer follows, and the small elementwise bijectors.

A bijector maps data-side tensors ``x`` to base-side tensors ``z``:

    forward(x) -> (z, logdet)      logdet[b] = log |det dz/dx| for example b, shape (B,)
    inverse(z) -> (x, logdet)      logdet[b] = log |det dx/dz| = -(forward logdet at x)

Shapes: vectors are (B, D); images inside a flow are (B, C, H, W) (the ``Flow`` model turns the
data set's NHWC into NCHW before the first bijector).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sum_except_batch(t: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,)"""
    return t.reshape(t.shape[0], -1).sum(dim=1)


class Bijector(nn.Module):
    """Base class: subclasses implement ``forward`` (data -> base) and ``inverse`` (base -> data)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class FlowSequence(Bijector):
    """Bijectors applied one after the other (``forward`` in list order, ``inverse`` in reverse)."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z):
        logdet = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z)
            logdet = logdet + ld
        return z, logdet

    def forward_layers(self, x) -> list[torch.Tensor]:
        """[x, after layer 1, ..., z]: the points warped layer by layer."""
        out = [x]
        for layer in self.layers:
            x, _ = layer(x)
            out.append(x)
        return out


class Logit(Bijector):
    """y in (0, 1) -> logit(alpha + (1 - 2 alpha) y), the RealNVP pre-processing.

    ``alpha`` keeps the logit away from the infinite ends of (0, 1); its log-determinant
    ``log(1 - 2 alpha) - log s - log(1 - s)`` (s = alpha + (1 - 2 alpha) y) counts in the likelihood.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, y):
        s = self.alpha + (1 - 2 * self.alpha) * y
        z = torch.log(s) - torch.log1p(-s)
        logdet = sum_except_batch(math.log(1 - 2 * self.alpha) - torch.log(s) - torch.log1p(-s))
        return z, logdet

    def inverse(self, z):
        s = torch.sigmoid(z)
        y = (s - self.alpha) / (1 - 2 * self.alpha)
        # d s / d z = s (1 - s) = sigmoid(z) sigmoid(-z)
        logdet = sum_except_batch(F.logsigmoid(z) + F.logsigmoid(-z) - math.log(1 - 2 * self.alpha))
        return y, logdet


class Sigmoid(Bijector):
    """x in R -> sigmoid(x) in (0, 1)."""

    def forward(self, x):
        return torch.sigmoid(x), sum_except_batch(F.logsigmoid(x) + F.logsigmoid(-x))

    def inverse(self, z):
        x = torch.log(z) - torch.log1p(-z)
        return x, -sum_except_batch(torch.log(z) + torch.log1p(-z))


class Reverse(Bijector):
    """Reverses the order of the features (dim 1); logdet 0. Lets autoregressive and coupling
    layers take turns on different variables."""

    def forward(self, x):
        return x.flip(1), x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z.flip(1), z.new_zeros(z.shape[0])


class ElementwiseAffine(Bijector):
    """z = (x - shift) * exp(-log_scale), learned per feature; for vectors (B, D) or images (B, C, H, W)
    (one parameter pair per channel)."""

    def __init__(self, num_features: int, image: bool = False):
        super().__init__()
        shape = (1, num_features, 1, 1) if image else (1, num_features)
        self.shift = nn.Parameter(torch.zeros(shape))
        self.log_scale = nn.Parameter(torch.zeros(shape))

    def _per_example(self, x):
        n = x[0, 0].numel()  # pixels per channel (1 for vectors)
        return -self.log_scale.sum() * n

    def forward(self, x):
        z = (x - self.shift) * torch.exp(-self.log_scale)
        return z, self._per_example(x).expand(x.shape[0])

    def inverse(self, z):
        x = z * torch.exp(self.log_scale) + self.shift
        return x, -self._per_example(z).expand(z.shape[0])


class Reshape(Bijector):
    """Reshapes each example from ``in_shape`` to ``out_shape`` (e.g. (C, H, W) -> (C*H*W,) so
    that a vector flow can model images); logdet 0."""

    def __init__(self, in_shape, out_shape):
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            raise ValueError(f"cannot reshape {self.in_shape} to {self.out_shape}")

    def forward(self, x):
        return x.reshape(x.shape[0], *self.out_shape), x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z.reshape(z.shape[0], *self.in_shape), z.new_zeros(z.shape[0])
