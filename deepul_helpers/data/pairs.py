"""``gaussian_pairs``: pairs (x, y) of correlated Gaussian vectors with a known mutual information.

Each example is an array (2, d) float32: row 0 is x, row 1 is y, with x ~ N(0, I_d) and
y = rho * x + sqrt(1 - rho^2) * eps, eps ~ N(0, I_d): every coordinate pair (x_i, y_i) is a
standard bivariate normal with correlation rho, independent of the others. Hence

    I(x; y) = -(d / 2) * log(1 - rho^2)  nats            (``mutual_information``)

the ceiling that an InfoNCE bound can approach only when log N exceeds it. The registered set
has d = 5, rho = 0.9 (I = 4.15 nats), 10,000 train / 2,000 test pairs from the seed.
``info(name).entropy`` is the exact joint entropy per dimension (2d dimensions):
0.5 * log(2 pi e) + 0.25 * log(1 - rho^2).
"""

from __future__ import annotations

import math

import numpy as np

from ._common import Spec, as_rng, rng_for, to_numpy

DIM = 5
RHO = 0.9


def mutual_information(dim: int = DIM, rho: float = RHO) -> float:
    """I(x; y) in nats of the d-dimensional correlated pair with correlation ``rho``."""
    if not -1 < rho < 1:
        raise ValueError(f"rho must lie strictly between -1 and 1, got {rho}")
    return -0.5 * dim * math.log1p(-rho * rho)


def correlated_pairs(n: int, rng, dim: int = DIM, rho: float = RHO) -> np.ndarray:
    """n pairs (n, 2, dim) float32 (row 0: x, row 1: y); ``rng`` a Generator or an integer seed."""
    mutual_information(dim, rho)  # validates rho
    rng = as_rng(rng)
    x = rng.standard_normal((n, dim))
    y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal((n, dim))
    return np.stack([x, y], axis=1).astype(np.float32)


class GaussianPairs:
    """The generating distribution: ``log_prob`` of pairs (N, 2, d) in nats, ``entropy`` in nats
    per dimension, ``mutual_information`` in nats, ``sample(n, rng)``."""

    def __init__(self, dim: int = DIM, rho: float = RHO):
        self.dim, self.rho = dim, rho
        self.mutual_information = mutual_information(dim, rho)
        self.entropy = 0.5 * math.log(2 * math.pi * math.e) + 0.25 * math.log1p(-rho * rho)

    def log_prob(self, pairs) -> np.ndarray:
        p = to_numpy(pairs).astype(np.float64)
        if p.ndim != 3 or p.shape[1:] != (2, self.dim):
            raise ValueError(f"pairs must have shape (N, 2, {self.dim}), got {p.shape}")
        x, y = p[:, 0], p[:, 1]
        s = 1 - self.rho**2
        quad = (x**2 - 2 * self.rho * x * y + y**2) / s  # (N, d)
        return (-math.log(2 * math.pi) - 0.5 * math.log(s) - 0.5 * quad).sum(1)

    def sample(self, n: int, rng) -> np.ndarray:
        return correlated_pairs(n, rng, self.dim, self.rho)


def _generate(seed):
    x = correlated_pairs(12_000, rng_for("gaussian_pairs", seed))
    return {"train": x[:10_000], "test": x[10_000:]}


SPECS = [
    Spec(name="gaussian_pairs", description=f"pairs (x, y) of {DIM}-d Gaussians, corr {RHO} per coordinate; "
         f"I(x;y) = {mutual_information():.3f} nats", kind="pairs", shape=(2, DIM), levels=None,
         n_train=10_000, n_test=2_000, generate=_generate, entropy=lambda: GaussianPairs().entropy,
         distribution=GaussianPairs),
]
