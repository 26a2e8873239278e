"""Autoregressive flows, with a MADE (``models/autoregressive/made.py``) as the conditioner.

MAF (masked autoregressive flow), data -> base:   z_i = (x_i - mu_i(x_<i)) * exp(-s_i(x_<i))
    density: one network pass (all x known);  sampling: D passes (x_i needs x_<i first).
IAF (inverse autoregressive flow), base -> data:  x_i = z_i * exp(s_i(z_<i)) + mu_i(z_<i)
    sampling: one pass (all z known);  density of a given x: D passes.
The Jacobian is triangular, so log |det| = sum of the log-scales either way.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deepul_helpers.models.autoregressive import made

from .bijectors import Bijector, FlowSequence, Reshape, Reverse
from .flow import Flow
from .glow import ActNorm


class MaskedLinear(made.MaskedLinear):
    """MADE's masked linear layer with its 0/1 mask (out_features, in_features) kept as a buffer."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.float())

    def forward(self, x):
        return super().forward(x, self.mask)


class MADEConditioner(nn.Module):
    """x (B, D) -> (shift, raw log-scale), each (B, D), where output i depends on x_<i only: a MADE
    (``made_degrees`` in the natural order, ``made_masks``) with two outputs per dimension."""

    def __init__(self, dim: int, hidden: int = 64, n_hidden_layers: int = 2):
        super().__init__()
        self.dim = dim
        degrees = made.made_degrees(np.arange(dim), [hidden] * n_hidden_layers)
        *hidden_masks, out_mask = made.made_masks(degrees)
        layers, n_in = [], dim
        for mask in hidden_masks:
            layers += [MaskedLinear(n_in, len(mask), mask), nn.ReLU()]
            n_in = len(mask)
        last = MaskedLinear(n_in, 2 * dim, torch.cat([out_mask, out_mask]))  # shifts, then log-scales
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x):
        shift, raw = self.net(x).chunk(2, dim=1)
        return shift, raw


class _AutoregressiveAffine(Bijector):
    """An affine autoregressive layer. ``conditioner``: any callable ``v (B, D) -> (shift, log_scale)``,
    each (B, D), with output i depending on v_<i only; None: a trained ``MADEConditioner`` whose
    log-scale is bounded by ``scale * tanh``."""

    def __init__(self, dim: int, hidden: int = 64, n_hidden_layers: int = 2, conditioner=None):
        super().__init__()
        if conditioner is None:
            self.made = MADEConditioner(dim, hidden, n_hidden_layers)
            self.scale = nn.Parameter(torch.ones(1, dim))
        self.conditioner = conditioner

    def params(self, v):
        """(shift, log_scale), each (B, D), of the affine map at v (B, D): one conditioner call."""
        if self.conditioner is not None:
            return self.conditioner(v)
        shift, raw = self.made(v)
        return shift, self.scale * torch.tanh(raw)  # bounded log-scale

    def _one_pass_to_z(self, x):
        shift, log_s = self.params(x)
        return (x - shift) * torch.exp(-log_s), -log_s.sum(dim=1)

    def _one_pass_to_x(self, z):
        shift, log_s = self.params(z)
        return z * torch.exp(log_s) + shift, log_s.sum(dim=1)

    def _sequential_to_x(self, z):  # MAF's inverse: D passes, x_i from x_<i
        x = torch.zeros_like(z)
        for i in range(z.shape[1]):
            shift, log_s = self.params(x)
            x = x.clone()
            x[:, i] = z[:, i] * torch.exp(log_s[:, i]) + shift[:, i]
        return x, log_s.sum(dim=1)

    def _sequential_to_z(self, x):  # IAF's forward: D passes, z_i from z_<i
        z = torch.zeros_like(x)
        for i in range(x.shape[1]):
            shift, log_s = self.params(z)
            z = z.clone()
            z[:, i] = (x[:, i] - shift[:, i]) * torch.exp(-log_s[:, i])
        return z, -log_s.sum(dim=1)


class MAFLayer(_AutoregressiveAffine):
    """One MAF layer on vectors (B, D): ``forward`` (density) one pass, ``inverse`` (sampling) D passes.
    ``MAFLayer(dim, conditioner=c)`` runs the algorithm with a given conditioner (see ``params``)."""

    def forward(self, x):
        return self._one_pass_to_z(x)

    def inverse(self, z):
        return self._sequential_to_x(z)


class IAFLayer(_AutoregressiveAffine):
    """One IAF layer on vectors (B, D): ``inverse`` (sampling) one pass, ``forward`` (density) D passes.
    ``IAFLayer(dim, conditioner=c)`` runs the algorithm with a given conditioner (see ``params``)."""

    def forward(self, x):
        return self._sequential_to_z(x)

    def inverse(self, z):
        return self._one_pass_to_x(z)


def _stack(layer_cls, shape, n_layers, hidden, n_hidden_layers):
    shape = (int(shape),) if isinstance(shape, int) else tuple(shape)
    inner = (shape[2], shape[0], shape[1]) if len(shape) == 3 else (shape or (1,))
    dim = math.prod(inner)
    layers = [Reshape(inner, (dim,))] if len(inner) > 1 else []
    layers.append(ActNorm(dim))
    for i in range(n_layers):
        layers.append(layer_cls(dim, hidden, n_hidden_layers))
        if i < n_layers - 1:
            layers.append(Reverse())
    if len(inner) > 1:
        layers.append(Reshape((dim,), inner))
    return FlowSequence(layers), shape


class MAF(Flow):
    """Masked autoregressive flow: ActNorm then ``n_layers`` MAF layers (order reversed between
    layers). ``shape``: D (int) or one example's shape ((D,), (H, W, C) images, flattened inside).
    ``levels``: int levels for discrete data (uniform dequantization + logit), None for float data."""

    def __init__(self, shape, n_layers: int = 5, hidden: int = 64, n_hidden_layers: int = 2,
                 levels: int | None = None):
        bij, shape = _stack(MAFLayer, shape, n_layers, hidden, n_hidden_layers)
        super().__init__(bij, shape, levels=levels)


class IAF(Flow):
    """Inverse autoregressive flow, same layout and arguments as ``MAF`` with IAF layers: samples
    in one pass per layer, evaluates the density of data in D passes per layer."""

    def __init__(self, shape, n_layers: int = 5, hidden: int = 64, n_hidden_layers: int = 2,
                 levels: int | None = None):
        bij, shape = _stack(IAFLayer, shape, n_layers, hidden, n_hidden_layers)
        super().__init__(bij, shape, levels=levels)
