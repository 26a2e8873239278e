"""``Flow``: a bijector plus a base distribution, as a likelihood model (``loss``, ``sample``).

Continuous data (2D toys, float32 (B, D)): log p(x) = log p_base(f(x)) + log |det df/dx|.

Discrete data (``levels`` given: int levels, images NHWC uint8): the flow models the
dequantized, scaled data y = (x + u) / levels (then, if ``logit_alpha`` is set, the logit
pre-processing, whose log-determinant is counted). With q(u | x) the dequantization noise
density (uniform: q = 1),

    log P(x) >= E_q[ log p_y((x + u) / levels) - log q(u | x) ] - D log(levels)

and ``loss`` reports minus the right-hand side per dimension: the bound on the **discrete**
NLL in nats/dim (``metrics.discrete_nll_bound``). ``log_prob_iw`` gives the tighter
importance-weighted bound.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepul_helpers import metrics
from deepul_helpers.models._common import check_shape, model_device

from .bijectors import Bijector, FlowSequence, Logit
from .dequantization import UniformDequantization


def base_log_prob(kind: str, z: torch.Tensor) -> torch.Tensor:
    """Log density of the standard normal or standard logistic base, summed per example: (B,)."""
    if kind == "normal":
        lp = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    else:  # logistic
        lp = F.logsigmoid(z) + F.logsigmoid(-z)
    return lp.reshape(z.shape[0], -1).sum(dim=1)


def base_sample(kind: str, shape, device, temperature: float = 1.0) -> torch.Tensor:
    if kind == "normal":
        return torch.randn(shape, device=device) * temperature
    u = torch.rand(shape, device=device).clamp(1e-6, 1 - 1e-6)
    return (torch.log(u) - torch.log1p(-u)) * temperature


class Flow(nn.Module):
    """A normalizing flow as a likelihood model.

    Args:
        bijector: maps data-side tensors to base-side tensors of the same shape (a
            ``FlowSequence`` for several layers). Images reach it as (B, C, H, W).
        shape: the shape of one example as the data set stores it: ``(D,)`` for vectors,
            ``(H, W, C)`` for images (NHWC), ``()`` for 1D scalar data sets of shape (N,).
        base: ``"normal"`` or ``"logistic"`` (standard, independent per dimension).
        levels: number of values for discrete data (``None``: continuous float data).
        dequantization: for discrete data, ``"uniform"`` or a module such as
            ``VariationalDequantization``; ignored for continuous data.
        logit_alpha: for discrete data, apply ``Logit(logit_alpha)`` to y in [0, 1] before the
            bijector (``None``: no logit step; the bijector then sees y in [0, 1]).
        sample_dtype: dtype of ``sample`` for discrete data (default uint8 for images, else int64).
    """

    def __init__(self, bijector: Bijector, shape, *, base: str = "normal", levels: int | None = None,
                 dequantization="uniform", logit_alpha: float | None = 0.05, sample_dtype=None):
        super().__init__()
        if base not in ("normal", "logistic"):
            raise ValueError(f"base must be 'normal' or 'logistic', got {base!r}")
        if levels is not None and (isinstance(levels, bool) or int(levels) < 2):
            raise ValueError(f"levels must be an integer >= 2 for discrete data or None, got {levels!r}")
        self.bijector = bijector
        self.shape = tuple(int(s) for s in shape)
        self.image = len(self.shape) == 3
        self.dim = math.prod(self.shape)
        self.base = base
        self.levels = None if levels is None else int(levels)
        self.dequantizer = None
        self.logit = None
        if self.levels is not None:
            if dequantization == "uniform":
                dequantization = UniformDequantization()
            if not isinstance(dequantization, nn.Module):
                raise ValueError("dequantization must be 'uniform' or a module such as VariationalDequantization")
            self.dequantizer = dequantization
            self.logit = Logit(logit_alpha) if logit_alpha is not None else None
        if sample_dtype is None:
            sample_dtype = torch.float32 if levels is None else (torch.uint8 if self.image else torch.int64)
        self.sample_dtype = sample_dtype
        self.register_buffer("_device_probe", torch.zeros(()), persistent=False)

    @property
    def device(self) -> torch.device:
        return model_device(self)  # the probe buffer answers for a flow without parameters

    # ---- data <-> internal layout --------------------------------------------------------
    def _check(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, self.shape, f"{type(self).__name__}")
        x = x.to(device=self.device, dtype=self._device_probe.dtype)  # the model's float dtype
        if self.shape == ():
            return x[:, None]  # (B,) -> (B, 1)
        return x.permute(0, 3, 1, 2) if self.image else x  # NHWC -> (B, C, H, W)

    def _to_data(self, t: torch.Tensor) -> torch.Tensor:
        if self.shape == ():
            return t[:, 0]
        return t.permute(0, 2, 3, 1) if self.image else t

    def _pre(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled data y -> what the bijector sees, with the logit step's logdet."""
        if self.logit is None:
            return y, y.new_zeros(y.shape[0])
        return self.logit(y)

    # ---- likelihood ----------------------------------------------------------------------
    def _log_terms(self, x: torch.Tensor):
        """-> (log p_y of the scaled, dequantized point, log q of the noise), each (B,)."""
        xi = self._check(x)
        if self.levels is None:
            z, logdet = self.bijector(xi)
            return base_log_prob(self.base, z) + logdet, xi.new_zeros(xi.shape[0])
        v, log_q = self.dequantizer(xi, self.levels)  # v = x + u in [x, x + 1)
        y, logdet_pre = self._pre(v / self.levels)
        z, logdet = self.bijector(y)
        return base_log_prob(self.base, z) + logdet + logdet_pre - self.dim * math.log(self.levels), log_q

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) nats. Continuous data: the exact log density. Discrete data: a one-sample
        estimate of the dequantization lower bound on log P(x) (its expectation is the bound)."""
        log_p, log_q = self._log_terms(x)
        return log_p - log_q

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean NLL in nats per data dimension (discrete data: the bound on the discrete NLL)."""
        if self.levels is None:
            return -self.log_prob(x).mean() / self.dim
        log_p, log_q = self._log_terms(x)
        log_p_scaled = log_p + self.dim * math.log(self.levels)  # density of y = (x + u) / levels
        nll_scaled = -(log_p_scaled - log_q).mean() / self.dim
        return metrics.discrete_nll_bound(nll_scaled, 1.0 / self.levels)

    @torch.no_grad()
    def log_prob_iw(self, x: torch.Tensor, k: int = 16) -> torch.Tensor:
        """(B,) importance-weighted lower bound on log P(x) with ``k`` noise samples (discrete data);
        tighter than ``log_prob`` and still a bound in expectation."""
        if self.levels is None:
            return self.log_prob(x)
        reps = (k,) + (1,) * (x.dim() - 1)
        terms = self.log_prob(x.repeat(*reps)).view(k, x.shape[0])  # (k, B): k noise draws per example
        return torch.logsumexp(terms, dim=0) - math.log(k)

    # ---- sampling and latents ------------------------------------------------------------
    def _internal_shape(self):
        if self.shape == ():
            return (1,)
        return (self.shape[2], self.shape[0], self.shape[1]) if self.image else self.shape

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Base-side tensors (internal layout, see ``encode``) -> data-space samples on the CPU."""
        y, _ = self.bijector.inverse(z.to(self.device))
        if self.levels is None:
            return self._to_data(y).to(self.sample_dtype).cpu()
        if self.logit is not None:
            y, _ = self.logit.inverse(y)
        x = torch.floor(y * self.levels).clamp(0, self.levels - 1)
        return self._to_data(x).to(self.sample_dtype).cpu()

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> z (internal layout: (B, D), or (B, C, H, W) for images); discrete data is
        dequantized at the cell centres (u = 1/2), so ``decode(encode(x)) == x``."""
        xi = self._check(x)
        if self.levels is not None:
            xi, _ = self._pre((xi + 0.5) / self.levels)
        return self.bijector(xi)[0]

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """n samples in data space on the CPU, with the data set's shape, dtype and range."""
        z = base_sample(self.base, (int(n), *self._internal_shape()), self.device, temperature)
        return self.decode(z)

    @torch.no_grad()
    def forward_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[input of the bijector, after layer 1, ..., z] on the CPU: the data warped layer by layer
        (discrete data enters dequantized at the cell centres, after the scaling/logit step)."""
        xi = self._check(x)
        if self.levels is not None:
            xi, _ = self._pre((xi + 0.5) / self.levels)
        if isinstance(self.bijector, FlowSequence):
            return [t.cpu() for t in self.bijector.forward_layers(xi)]
        return [xi.cpu(), self.bijector(xi)[0].cpu()]
