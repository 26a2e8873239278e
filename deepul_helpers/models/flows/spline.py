"""Rational-quadratic spline flows (Durkan et al., 2019, "Neural Spline Flows").

Each variable is warped by a monotone spline on [-bound, bound] made of K rational-quadratic
pieces (learned bin widths, heights and knot derivatives) and by the identity outside, so the
map is a bijection of R with an exact inverse (a quadratic equation per piece). Far more
flexible per layer than an affine map: sharp edges such as the checkerboard's need few layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .bijectors import Bijector, FlowSequence
from .coupling import alternating_mask, mlp
from .flow import Flow
from .glow import ActNorm

MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3


def _knots(raw, bound):  # raw (..., K) -> bin sizes (..., K), knot positions (..., K + 1)
    k = raw.shape[-1]
    size = MIN_BIN + (1 - MIN_BIN * k) * torch.softmax(raw, dim=-1)
    knots = F.pad(torch.cumsum(size, dim=-1), (1, 0)) * 2 * bound - bound
    knots = torch.cat([knots[..., :1].clamp(max=-bound), knots[..., 1:-1], knots[..., -1:].clamp(min=bound)], -1)
    return knots[..., 1:] - knots[..., :-1], knots


def rq_spline(x, raw_w, raw_h, raw_d, bound: float, inverse: bool = False):
    """Elementwise spline. x (...,); raw_w, raw_h (..., K); raw_d (..., K - 1) (inner knots' slopes;
    the two end slopes are 1 to meet the identity tails). -> (y, log |dy/dx|) at x, each (...,)."""
    inside = (x > -bound) & (x < bound)
    xc = x.clamp(-bound, bound)
    widths, xk = _knots(raw_w, bound)
    heights, yk = _knots(raw_h, bound)
    d = F.pad(MIN_DERIVATIVE + F.softplus(raw_d), (1, 1), value=1.0)  # (..., K + 1)
    knots = yk if inverse else xk
    idx = torch.searchsorted(knots[..., 1:-1].contiguous(), xc[..., None].contiguous())  # bin of x, (..., 1)
    take = lambda t: t.gather(-1, idx)[..., 0]
    x0, w, y0, h = take(xk), take(widths), take(yk), take(heights)
    d0, d1 = take(d[..., :-1]), take(d[..., 1:])
    s = h / w
    if inverse:
        dy = xc - y0
        a = h * (s - d0) + dy * (d0 + d1 - 2 * s)
        b = h * d0 - dy * (d0 + d1 - 2 * s)
        c = -s * dy
        xi = (2 * c) / (-b - torch.sqrt((b**2 - 4 * a * c).clamp(min=0)))
        out = xi * w + x0
    else:
        xi = (xc - x0) / w
        out = y0 + h * (s * xi**2 + d0 * xi * (1 - xi)) / (s + (d0 + d1 - 2 * s) * xi * (1 - xi))
    denom = s + (d0 + d1 - 2 * s) * xi * (1 - xi)
    numer = d1 * xi**2 + 2 * s * xi * (1 - xi) + d0 * (1 - xi) ** 2
    log_grad = 2 * torch.log(s) + torch.log(numer) - 2 * torch.log(denom)  # log dy/dx
    log_grad = -log_grad if inverse else log_grad
    return torch.where(inside, out, x), torch.where(inside, log_grad, torch.zeros_like(x))


class SplineCoupling(Bijector):
    """Coupling on vectors (B, D): features with mask = 1 pass unchanged and set, through an MLP,
    the spline (``n_bins`` pieces on [-bound, bound]) that warps each of the others."""

    def __init__(self, mask: torch.Tensor, n_bins: int = 16, hidden: int = 128, n_hidden_layers: int = 2,
                 bound: float = 4.0):
        super().__init__()
        self.register_buffer("mask", mask.float())  # (1, D)
        d = mask.shape[-1]
        self.k, self.bound = n_bins, float(bound)
        self.net = mlp(d, d * (3 * n_bins - 1), hidden, n_hidden_layers)

    def _warp(self, x, inverse):
        raw = self.net(x * self.mask).view(x.shape[0], x.shape[1], 3 * self.k - 1)  # (B, D, 3K - 1)
        raw_w, raw_h, raw_d = raw[..., : self.k], raw[..., self.k : 2 * self.k], raw[..., 2 * self.k :]
        y, log_grad = rq_spline(x, raw_w, raw_h, raw_d, self.bound, inverse)
        free = 1 - self.mask
        return x * self.mask + y * free, (log_grad * free).sum(dim=1)

    def forward(self, x):
        return self._warp(x, inverse=False)

    def inverse(self, z):
        return self._warp(z, inverse=True)


class SplineFlow(Flow):
    """Neural spline flow for points (N, D): ActNorm, then ``n_layers`` spline couplings with
    alternating masks. In 2D each pair of layers is an autoregressive spline flow.
    ``levels``: int levels for discrete points, None for float32 points."""

    def __init__(self, dim: int = 2, n_layers: int = 4, n_bins: int = 16, hidden: int = 128,
                 n_hidden_layers: int = 2, bound: float = 4.0, levels: int | None = None):
        layers = [ActNorm(dim)]
        layers += [SplineCoupling(alternating_mask(dim, i % 2), n_bins, hidden, n_hidden_layers, bound)
                   for i in range(n_layers)]
        super().__init__(FlowSequence(layers), (dim,), levels=levels)
