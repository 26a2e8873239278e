"""CDF flows, the first flow students meet: a mixture's CDF F maps R onto (0, 1), and the
logit maps (0, 1) back onto R, so z = logit(F(x)) is a bijection of R with

    log |dz/dx| = log f(x) - log F(x) - log(1 - F(x))       (f the mixture density).

With a standard logistic base (whose CDF is the sigmoid) the model density is exactly the
mixture density f. In 2D, x2's mixture is conditioned on x1 (an autoregressive CDF flow).
The inverse has no closed form; it is found by bisection (monotone, so it always converges).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .bijectors import Bijector, FlowSequence
from .coupling import mlp
from .flow import Flow
from .glow import ActNorm


def mixture_cdf_logit(x, logits, means, log_scales, kind: str = "logistic"):
    """x (B, D); mixture parameters (B or 1, D, K). -> (z = logit F(x), log dz/dx), each (B, D)."""
    log_pi = torch.log_softmax(logits, dim=-1)
    t = (x[..., None] - means) * torch.exp(-log_scales)  # (B, D, K) standardised
    if kind == "logistic":
        log_cdf, log_sf = F.logsigmoid(t), F.logsigmoid(-t)
        log_pdf = F.logsigmoid(t) + F.logsigmoid(-t) - log_scales
    else:  # gaussian
        log_cdf, log_sf = torch.special.log_ndtr(t), torch.special.log_ndtr(-t)
        log_pdf = -0.5 * t**2 - 0.5 * math.log(2 * math.pi) - log_scales
    log_F = torch.logsumexp(log_pi + log_cdf, dim=-1)
    log_1mF = torch.logsumexp(log_pi + log_sf, dim=-1)
    log_f = torch.logsumexp(log_pi + log_pdf, dim=-1)
    return log_F - log_1mF, log_f - log_F - log_1mF


def bisect_inverse(fn, z, lo, hi, iters: int = 100):
    """Solves fn(x) = z elementwise for increasing fn, starting from the bracket [lo, hi]."""
    lo = torch.full_like(z, lo)
    hi = torch.full_like(z, hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        below = fn(mid) < z
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return (lo + hi) / 2


class MixtureCDF(Bijector):
    """z = logit(F(x)) per feature, F the CDF of a learned K-component mixture (``kind``:
    ``"logistic"`` or ``"gaussian"``); vectors (B, D)."""

    def __init__(self, n_features: int = 1, n_components: int = 5, kind: str = "logistic"):
        super().__init__()
        if kind not in ("logistic", "gaussian"):
            raise ValueError(f"kind must be 'logistic' or 'gaussian', got {kind!r}")
        self.kind = kind
        self.logits = nn.Parameter(torch.zeros(1, n_features, n_components))
        self.means = nn.Parameter(torch.linspace(-2, 2, n_components).repeat(1, n_features, 1))
        self.log_scales = nn.Parameter(torch.full((1, n_features, n_components), math.log(0.5)))

    def forward(self, x):
        z, ld = mixture_cdf_logit(x, self.logits, self.means, self.log_scales, self.kind)
        return z, ld.sum(dim=1)

    def inverse(self, z):
        bound = float((self.means.abs() + 40 * self.log_scales.exp()).max().detach())
        x = bisect_inverse(lambda v: self.forward(v)[0], z, -bound, bound)
        return x, -self.forward(x)[1]


class AutoregressiveCDF2d(Bijector):
    """2D autoregressive CDF flow: z1 = logit F1(x1), z2 = logit F2(x2 | x1), where an MLP of x1
    gives the mixture parameters of x2. Points (B, 2)."""

    def __init__(self, n_components: int = 8, kind: str = "logistic", hidden: int = 64):
        super().__init__()
        self.first = MixtureCDF(1, n_components, kind)
        self.kind = kind
        self.k = n_components
        self.net = mlp(1, 3 * n_components, hidden)
        with torch.no_grad():  # start x2's mixture like x1's: spread means, scale 0.5
            self.net[-1].bias[n_components : 2 * n_components] = torch.linspace(-2, 2, n_components)
            self.net[-1].bias[2 * n_components :] = math.log(0.5)

    def _params2(self, x1):  # x1 (B, 1) -> three (B, 1, K)
        return self.net(x1).view(-1, 1, 3, self.k).unbind(dim=2)

    def forward(self, x):
        z1, ld1 = self.first(x[:, :1])
        z2, ld2 = mixture_cdf_logit(x[:, 1:], *self._params2(x[:, :1]), self.kind)
        return torch.cat([z1, z2], dim=1), ld1 + ld2[:, 0]

    def inverse(self, z):
        x1, _ = self.first.inverse(z[:, :1])
        logits, means, log_scales = self._params2(x1)
        bound = float((means.abs() + 40 * log_scales.exp()).max().detach())
        fn = lambda v: mixture_cdf_logit(v, logits, means, log_scales, self.kind)[0]
        x2 = bisect_inverse(fn, z[:, 1:], -bound, bound)
        x = torch.cat([x1, x2], dim=1)
        return x, -self.forward(x)[1]


class CDFFlow1d(Flow):
    """1D CDF flow: ActNorm then a K-component mixture CDF and logit, logistic base (so the
    density is the mixture density, after the ActNorm rescaling). Data (N,) float32, or int64
    levels when ``levels`` is given (uniformly dequantized, bound on the discrete NLL)."""

    def __init__(self, n_components: int = 5, kind: str = "logistic", levels: int | None = None):
        bij = FlowSequence([ActNorm(1), MixtureCDF(1, n_components, kind)])
        super().__init__(bij, (), base="logistic", levels=levels, logit_alpha=None)


class CDFFlow2d(Flow):
    """2D autoregressive CDF flow on points (N, 2): p(x1) p(x2 | x1), each a K-component mixture.
    float32 points, or int64 (row, col) levels when ``levels`` is given."""

    def __init__(self, n_components: int = 8, kind: str = "logistic", hidden: int = 64,
                 levels: int | None = None):
        bij = FlowSequence([ActNorm(2), AutoregressiveCDF2d(n_components, kind, hidden)])
        super().__init__(bij, (2,), base="logistic", levels=levels, logit_alpha=None)
