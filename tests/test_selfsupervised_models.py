"""Self-supervised family: its data (signals' bands, Gaussian pairs with known MI) and the reference
models checked against closed forms and literal implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from deepul_helpers import data
from deepul_helpers.data import pairs, signals

# ----------------------------------------------------------------------------- data


def test_signals_band_labels_agree_with_the_spectrum():
    """Independent check: the period at the peak of each waveform's spectrum falls in its band
    for most waveforms (leakage and near-equal sines account for the rest)."""
    x, y = data.load("signals", "test", labels=True)
    assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1, 2, 3}
    assert np.bincount(y).min() > 0.2 * len(y)  # log-spaced bands: about a quarter each
    w = signals.mu_law_decode(x)
    spectrum = np.abs(np.fft.rfft(w * np.hanning(w.shape[1]), axis=1))[:, 1:]
    period = w.shape[1] / (np.argmax(spectrum, 1) + 1)
    assert (signals.band(np.clip(period, 8, 64)) == y).mean() > 0.9


def test_gaussian_pairs_have_the_stated_correlation_density_and_entropy():
    p = data.load("gaussian_pairs")
    assert p.shape == (10_000, 2, pairs.DIM) and p.dtype == np.float32
    r = [np.corrcoef(p[:, 0, i], p[:, 1, i])[0, 1] for i in range(pairs.DIM)]
    assert np.allclose(r, pairs.RHO, atol=0.01)
    dist = data.true_distribution("gaussian_pairs")
    cov = np.kron(np.array([[1, pairs.RHO], [pairs.RHO, 1]]), np.eye(pairs.DIM))  # (x, y) flattened
    mvn = scipy.stats.multivariate_normal(np.zeros(2 * pairs.DIM), cov)
    np.testing.assert_allclose(dist.log_prob(p[:50]), mvn.logpdf(p[:50].reshape(50, -1)), rtol=1e-6)
    assert data.info("gaussian_pairs").entropy == pytest.approx(mvn.entropy() / (2 * pairs.DIM), rel=1e-12)
    # I(x; y) = H(x) + H(y) - H(x, y)
    h_marginal = scipy.stats.multivariate_normal(np.zeros(pairs.DIM), np.eye(pairs.DIM)).entropy()
    assert pairs.mutual_information() == pytest.approx(2 * h_marginal - mvn.entropy(), rel=1e-12)
    assert pairs.mutual_information(5, 0.9) == pytest.approx(-2.5 * math.log(1 - 0.81))
