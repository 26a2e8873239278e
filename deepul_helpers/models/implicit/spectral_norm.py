"""Spectral normalisation (Miyato et al. 2018): each weight divided by its largest singular value.

A layer's Lipschitz constant (in the 2-norm) is the largest singular value sigma(W) of its weight
(a convolution's weight is read as the matrix (out_channels, in_channels * kh * kw), as the paper
does). Dividing W by sigma(W) makes the linear map 1-Lipschitz; with 1-Lipschitz activations the
whole discriminator is then 1-Lipschitz, which steadies GAN training (used here with the hinge loss).

sigma(W) is estimated by power iteration on a persistent vector u (one step per training forward
pass: u carries over between steps, so the estimate converges as training goes):
    v = W^T u / ||W^T u||,  u = W v / ||W v||,  then sigma ~ u^T W v with v = W^T u / ||W^T u||.
u and v are treated as constants when differentiating (as in the paper).

    spectral_normalize(weight, u, iterations) -> (weight / sigma, sigma, new u)
    apply_spectral_norm(module)   # every Linear / Conv weight of the module, in place
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize


def spectral_normalize(weight: torch.Tensor, u: torch.Tensor, iterations: int = 1, eps: float = 1e-12
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``weight`` (out, ...) divided by its power-iteration estimate of sigma; returns (W / sigma, sigma, u).

    ``u`` is the left singular vector estimate (out,); the returned u is the updated one (no graph).
    """
    mat = weight.reshape(weight.shape[0], -1)  # (out, in)
    with torch.no_grad():
        for _ in range(iterations):
            u = F.normalize(mat @ F.normalize(mat.t() @ u, dim=0, eps=eps), dim=0, eps=eps)  # (out,)
        v = F.normalize(mat.t() @ u, dim=0, eps=eps)  # (in,)
    sigma = u @ mat @ v  # differentiable in W; u, v constants
    return weight / sigma, sigma, u


class SpectralNorm(nn.Module):
    """A parametrization: the layer's ``weight`` is read as W / sigma(W) (power iteration in training)."""

    def __init__(self, weight: torch.Tensor, iterations: int = 1):
        super().__init__()
        self.iterations = iterations
        u = F.normalize(torch.randn(weight.shape[0], device=weight.device, dtype=weight.dtype), dim=0)
        self.register_buffer("u", u)
        self.register_buffer("sigma", torch.ones((), device=weight.device, dtype=weight.dtype))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        iterations = self.iterations if self.training else 0
        normed, sigma, u = spectral_normalize(weight, self.u, iterations)
        if self.training:
            self.u.copy_(u)
            self.sigma.copy_(sigma.detach())
        return normed


def apply_spectral_norm(module: nn.Module, iterations: int = 1) -> nn.Module:
    """Spectrally normalise the weight of every ``nn.Linear`` and ``nn.Conv2d`` in ``module`` (in place)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)) and not parametrize.is_parametrized(layer, "weight"):
            parametrize.register_parametrization(layer, "weight", SpectralNorm(layer.weight, iterations))
    return module
