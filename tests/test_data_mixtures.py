"""The implicit week's mixtures (deepul_helpers/data/mixtures.py): densities, entropies and samples
against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from deepul_helpers import data
from deepul_helpers.metrics import entropy_monte_carlo
from deepul_helpers.metrics import sample_quality as sq

NAMES = ["gaussians_8_narrow", "gaussians_25_narrow", "mixture_1d"]


@pytest.mark.parametrize("name", NAMES)
def test_entropy_agrees_with_monte_carlo(name):
    dist = data.true_distribution(name)
    x = dist.sample(200_000, np.random.default_rng(1))
    h, se = entropy_monte_carlo(dist.log_prob, x)
    d = data.info(name).dims
    assert data.info(name).entropy == pytest.approx(dist.entropy)
    assert abs(h / d - dist.entropy) < 4 * se / d


@pytest.mark.parametrize("name", ["gaussians_8_narrow", "gaussians_25_narrow"])
def test_narrow_densities_integrate_to_one_around_their_modes(name):
    dist = data.true_distribution(name)
    k = 81
    c = (np.arange(k) + 0.5) / k * 16 - 8  # +-8 sd around each mean, midpoint rule
    g = np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2) * dist.sd
    mass = sum(np.exp(dist.log_prob(m + g)).sum() for m in dist.means) * (16 * dist.sd / k) ** 2
    assert mass == pytest.approx(1.0, abs=1e-6)
    # the exact entropy is log K + log(2 pi e sd^2) per point
    assert 2 * dist.entropy == pytest.approx(math.log(len(dist.means)) + math.log(2 * math.pi * math.e * dist.sd**2))


def test_mixture_1d_integrates_to_one_and_its_samples_follow_its_cdf():
    dist = data.true_distribution("mixture_1d")
    t = np.linspace(-12, 12, 200_001)
    assert np.trapezoid(np.exp(dist.log_prob(t)), t) == pytest.approx(1.0, abs=1e-9)
    x = np.concatenate([data.load("mixture_1d"), data.load("mixture_1d", "test")])[:, 0].astype(np.float64)

    def cdf(v):
        return sum(w * scipy.stats.norm.cdf(v, m, s) for w, m, s in zip(dist.weights, dist.means, dist.sds))

    assert scipy.stats.kstest(x, cdf).pvalue > 1e-4


@pytest.mark.parametrize("name", ["gaussians_8_narrow", "gaussians_25_narrow"])
def test_data_covers_every_mode_with_the_chi_square_share(name):
    x = data.load(name)[:2500]
    cov = sq.mode_coverage(x, name)
    p = 1 - math.exp(-4.5)  # P(|N(0, I_2)| <= 3)
    assert cov["modes_covered"] == cov["n_modes"]
    assert cov["high_quality"] == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / 2500))
