"""Moment matching: the maximum mean discrepancy, its permutation test, and a generator trained by it (GMMN).

MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y) for a characteristic kernel k (here a sum of
Gaussian kernels exp(-||a - b||^2 / (2 s^2)) over bandwidths s) is 0 exactly when P = Q. Its
unbiased estimate from x (m, d) ~ P and y (n, d) ~ Q leaves out the i = j terms:

    sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1)) - 2 sum_{i, j} k(x_i, y_j) / (m n)

so that its mean is 0 when P = Q (it can be negative). The permutation test pools the two
samples, re-splits them at random ``permutations`` times, and reports the p-value
(1 + #{permuted statistic >= observed}) / (1 + permutations), which is calibrated under the null
(P(p <= alpha) <= alpha) whatever the kernel.

GMMN (Li et al. 2015; Dziugaite et al. 2015): a generator G(z) trained by minimising the
unbiased MMD^2 between a data batch and as many generated samples; ``loss(x)`` is that MMD^2
(not a likelihood), so the plain ``fit`` trains it.
"""

from __future__ import annotations

import torch
from torch import nn

from deepul_helpers.models._common import model_device

from .gan import mlp

BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths=BANDWIDTHS) -> torch.Tensor:
    """sum_s exp(-||a_i - b_j||^2 / (2 s^2)) for a (m, d), b (n, d): (m, n)."""
    d2 = (a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2 * a @ b.t()).clamp_min(0)  # (m, n)
    return sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths)


def _mmd2_from_kernel(k: torch.Tensor, m: int) -> torch.Tensor:
    """Unbiased MMD^2 from the pooled kernel matrix k ((m + n), (m + n)), x = the first m rows."""
    n = k.shape[0] - m
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return xx + yy - 2 * kxy.sum() / (m * n)


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidths=BANDWIDTHS) -> torch.Tensor:
    """The unbiased estimate of MMD^2 between samples x (m, d) and y (n, d), m, n >= 2 (0-dim tensor)."""
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"the unbiased MMD^2 needs at least 2 examples on each side, got {len(x)} and {len(y)}")
    z = torch.cat([x, y])
    return _mmd2_from_kernel(gaussian_kernel(z, z, bandwidths), len(x))


@torch.no_grad()
def mmd_permutation_test(x, y, permutations: int = 200, bandwidths=BANDWIDTHS, seed: int = 0) -> tuple[float, float]:
    """(observed unbiased MMD^2, permutation p-value) for H0: x and y come from one distribution."""
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    z, m = torch.cat([x, y]), len(x)
    k = gaussian_kernel(z, z, bandwidths)  # computed once; a permutation re-indexes it
    observed = _mmd2_from_kernel(k, m)
    gen = torch.Generator().manual_seed(seed)
    exceed = 0
    for _ in range(permutations):
        p = torch.randperm(len(z), generator=gen)
        exceed += int(_mmd2_from_kernel(k[p][:, p], m) >= observed)
    return float(observed), (1 + exceed) / (1 + permutations)


class GMMN(nn.Module):
    """Generator of points (B, dim) trained by the unbiased MMD^2 to the data batch."""

    def __init__(self, dim: int = 2, noise_dim: int = 4, hidden: int = 128, layers: int = 3, bandwidths=BANDWIDTHS):
        super().__init__()
        self.dim, self.noise_dim, self.bandwidths = dim, noise_dim, tuple(bandwidths)
        self.generator = mlp(noise_dim, dim, hidden, layers)

    def forward(self, n: int) -> torch.Tensor:
        return self.generator(torch.randn(n, self.noise_dim, device=model_device(self)))  # (n, dim)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Unbiased MMD^2 between the batch x (B, dim) and B generated points (not a likelihood)."""
        return mmd2_unbiased(x.float(), self(len(x)), self.bandwidths)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self(n).cpu()
