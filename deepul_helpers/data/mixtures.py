"""Mixtures for the implicit-models week (lecture 04, homework 4): the literature's mode-dropping toys.

- ``gaussians_8_narrow``: 8 equal Gaussians of sd 0.01 centred on the unit circle at angles
  2 pi k / 8 (the "2D ring" of the mode-dropping papers, e.g. PacGAN); float32 ``(N, 2)``.
- ``gaussians_25_narrow``: 25 equal Gaussians of sd 0.05 on the grid {-4, -2, 0, 2, 4}^2 (the
  "2D grid"); float32 ``(N, 2)``.
- ``mixture_1d``: a continuous 1D mixture 0.3 N(-2, 0.5^2) + 0.7 N(1.5, 0.8^2), float32
  ``(N, 1)``, for the minimax and non-saturating generator losses of lecture 04.

The registry's ``gaussians_8`` / ``gaussians_25`` are wide (sd 0.5 and 0.3) for density models;
these narrow ones are where a GAN drops modes, measured by ``metrics.sample_quality.mode_coverage``
(a mode is covered when a sample falls within 3 sd of its mean).

Entropy (nats per dimension). Narrow mixtures: the components are at least 38 (ring) and 20
(grid) standard deviations from the midpoint to their nearest neighbour, so the mixture's
entropy is log K + log(2 pi e sd^2) (2D) up to terms below exp(-200): exact in double precision.
``mixture_1d``: the integral of -p log p by adaptive quadrature (scipy's ``quad``, absolute
error below 1e-10); a test checks both against Monte Carlo with the exact log-density.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy import integrate
from scipy.special import logsumexp

from ._common import Spec, as_rng, rng_for, split_rows, to_numpy
from .toy2d import GaussianMixture2D

_LOG_2PI = np.log(2 * np.pi)


class SeparatedMixture2D(GaussianMixture2D):
    """An equal-weight mixture of isotropic Gaussians so far apart that its entropy is exact."""

    def exact_entropy(self):
        return float((np.log(len(self.means)) + np.log(2 * np.pi * np.e * self.sd**2)) / 2)


class Mixture1D:
    """sum_k w_k N(mu_k, sd_k^2) on the real line: ``log_prob``, ``sample`` (n, 1), exact ``entropy``."""

    name = "mixture_1d"

    def __init__(self, weights=(0.3, 0.7), means=(-2.0, 1.5), sds=(0.5, 0.8)):
        self.weights, self.means, self.sds = (np.asarray(v, dtype=np.float64) for v in (weights, means, sds))
        self.extent = (float(np.min(self.means - 5 * self.sds)), float(np.max(self.means + 5 * self.sds)))

    def log_prob(self, x) -> np.ndarray:
        """Log-density (nats) of points ``(N, 1)`` or ``(N,)``; returns ``(N,)``."""
        x = to_numpy(x).astype(np.float64)
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise ValueError(f"x must have shape (N, 1) or (N,), got {x.shape}")
        z = (x[:, None] - self.means) / self.sds  # (N, K)
        return logsumexp(np.log(self.weights) - 0.5 * z**2 - np.log(self.sds) - 0.5 * _LOG_2PI, axis=1)

    def sample(self, n: int, rng) -> np.ndarray:
        """n float64 samples (n, 1); ``rng`` is a numpy Generator or an integer seed."""
        rng = as_rng(rng)
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        return (self.means[k] + self.sds[k] * rng.standard_normal(n))[:, None]

    @property
    def entropy(self) -> float:
        return exact_entropy_1d(self)

    entropy_se = None


@cache
def _entropy_1d(weights: tuple, means: tuple, sds: tuple) -> float:
    dist = Mixture1D(weights, means, sds)
    lo, hi = dist.extent[0] - 10, dist.extent[1] + 10

    def integrand(t):
        lp = float(dist.log_prob(np.array([t]))[0])
        return -np.exp(lp) * lp

    value, _ = integrate.quad(integrand, lo, hi, points=list(dist.means), limit=500, epsabs=1e-12)
    return float(value)


def exact_entropy_1d(dist: Mixture1D) -> float:
    return _entropy_1d(tuple(dist.weights), tuple(dist.means), tuple(dist.sds))


_ANGLES8 = np.arange(8) * np.pi / 4
_GRID5 = np.array([(x, y) for x in (-4.0, -2.0, 0.0, 2.0, 4.0) for y in (-4.0, -2.0, 0.0, 2.0, 4.0)])
DISTRIBUTIONS = {
    "gaussians_8_narrow": lambda: SeparatedMixture2D("gaussians_8_narrow", np.stack([np.cos(_ANGLES8),
                                                     np.sin(_ANGLES8)], 1), 0.01, (-1.5, 1.5, -1.5, 1.5)),
    "gaussians_25_narrow": lambda: SeparatedMixture2D("gaussians_25_narrow", _GRID5, 0.05, (-5.5, 5.5, -5.5, 5.5)),
    "mixture_1d": Mixture1D,
}
DESCRIPTIONS = {
    "gaussians_8_narrow": "2D continuous: 8 Gaussians (sd 0.01) on the unit circle (the literature's 2D ring)",
    "gaussians_25_narrow": "2D continuous: 25 Gaussians (sd 0.05) on the grid {-4,-2,0,2,4}^2 (the 2D grid)",
    "mixture_1d": "1D continuous: 0.3 N(-2, 0.5^2) + 0.7 N(1.5, 0.8^2), shape (N, 1)",
}


def _spec(name: str) -> Spec:
    n_train, n_test = 10_000, 2_000
    one_d = name == "mixture_1d"

    def generate(seed):
        x = DISTRIBUTIONS[name]().sample(n_train + n_test, rng_for(name, seed)).astype(np.float32)
        return split_rows(x, n_train)

    how = "exact (quadrature)" if one_d else "exact (separated components)"
    return Spec(name=name, description=f"{DESCRIPTIONS[name]}; entropy {how}",
                kind="1d_continuous" if one_d else "2d_continuous", shape=(1,) if one_d else (2,), levels=None,
                n_train=n_train, n_test=n_test, generate=generate,
                entropy=lambda: DISTRIBUTIONS[name]().entropy, distribution=DISTRIBUTIONS[name])


SPECS = [_spec(n) for n in DISTRIBUTIONS]
