"""Units and entropies against closed forms and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from deepul_helpers import metrics


def test_bits_and_nats():
    assert metrics.bits_per_dim(math.log(2)) == pytest.approx(1.0)
    assert metrics.nats_per_dim(metrics.bits_per_dim(1.2345)) == pytest.approx(1.2345)
    assert metrics.bits_per_dim(np.array([0.0, math.log(4)])).tolist() == pytest.approx([0.0, 2.0])


def test_entropy_discrete_matches_scipy_and_uniform():
    rng = np.random.default_rng(0)
    for k in (2, 17, 100):
        p = rng.dirichlet(np.ones(k))
        assert metrics.entropy_discrete(p) == pytest.approx(scipy.stats.entropy(p), rel=1e-12)
    assert metrics.entropy_discrete(np.full(256, 1 / 256)) == pytest.approx(math.log(256))
    table = rng.dirichlet(np.ones(25 * 25)).reshape(25, 25)
    assert metrics.entropy_discrete(table) == pytest.approx(scipy.stats.entropy(table.ravel()))
    rows = rng.dirichlet(np.ones(5), size=3)
    assert metrics.entropy_discrete(rows, axis=1) == pytest.approx(scipy.stats.entropy(rows, axis=1))
    assert metrics.entropy_discrete([0.5, 0.5, 0.0]) == pytest.approx(math.log(2))  # zeros contribute 0


@pytest.mark.parametrize("bad", [[0.5, 0.6], [-0.1, 1.1], [np.nan, 1.0]])
def test_entropy_discrete_rejects_non_distributions(bad):
    with pytest.raises(ValueError):
        metrics.entropy_discrete(bad)


def test_entropy_monte_carlo_gaussian_closed_form():
    sigma = 1.7
    exact = 0.5 * math.log(2 * math.pi * math.e * sigma**2)
    rng = np.random.default_rng(1)
    x = rng.normal(0, sigma, size=200_000)
    est, se = metrics.entropy_monte_carlo(lambda v: scipy.stats.norm(0, sigma).logpdf(v), x)
    assert abs(est - exact) < 4 * se
    # the standard error is that of a mean of -log p: std(-log p) = sqrt(1/2) for a Gaussian
    assert se == pytest.approx(math.sqrt(0.5) / math.sqrt(len(x)), rel=0.02)


def test_discrete_nll_bound_is_exact_for_a_piecewise_constant_density():
    # Discrete p over K levels; the density of y = (x + u) / K that is constant within each cell,
    # p_Y(y) = K p(floor(K y)), has E[-log p_Y] = H(p) - log K. The bound recovers H(p) exactly.
    rng = np.random.default_rng(2)
    k = 17
    p = rng.dirichlet(np.ones(k))
    h = scipy.stats.entropy(p)
    continuous_nll = float(np.sum(p * -np.log(k * p)))
    assert metrics.discrete_nll_bound(continuous_nll, 1 / k) == pytest.approx(h)
    # any other density on the cells is a worse (larger) bound: here, a density with a slope inside cells
    slope = 0.5
    grid = (np.arange(k)[:, None] + (np.arange(1000)[None, :] + 0.5) / 1000)  # v = x + u, midpoints
    density_v = p[:, None] * (1 + slope * (grid - np.floor(grid) - 0.5))  # integrates to p per cell
    nll_v = float(np.sum(p[:, None] * -np.log(density_v)) / 1000)  # E_x E_u[-log p_V]
    bound = metrics.discrete_nll_bound(nll_v - math.log(k), 1 / k)  # the same density expressed in y
    assert bound > h


def test_discrete_nll_bound_rejects_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        metrics.discrete_nll_bound(1.0, 0)


def test_gap_percent():
    assert metrics.gap_percent(2.04, 2.0) == pytest.approx(2.0)
    assert metrics.gap_percent(1.0, None) is None
    with pytest.raises(ValueError):
        metrics.gap_percent(1.0, -0.5)


def test_cross_entropy_is_gibbs_bounded_and_matches_scipy():
    rng = np.random.default_rng(0)
    for shape in [(7,), (4, 5)]:
        p = rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
        q = rng.dirichlet(np.ones(p.size)).reshape(shape)
        h_pq = metrics.cross_entropy(p, np.log(q))
        # H(p, q) = H(p) + KL(p || q), with scipy computing both terms independently
        assert h_pq == pytest.approx(scipy.stats.entropy(p.ravel()) + scipy.stats.entropy(p.ravel(), q.ravel()))
        assert h_pq > metrics.entropy_discrete(p)
        assert metrics.cross_entropy(p, np.log(p)) == pytest.approx(metrics.entropy_discrete(p), rel=1e-12)
    p = np.array([0.5, 0.5, 0.0])
    with np.errstate(divide="ignore"):
        assert metrics.cross_entropy(p, np.log([0.25, 0.75, 0.0])) == pytest.approx(-0.5 * np.log(0.25 * 0.75))
        assert metrics.cross_entropy(p, np.log([1.0, 0.0, 0.0])) == math.inf
    with pytest.raises(ValueError, match="same shape"):
        metrics.cross_entropy(p, np.zeros(2))
