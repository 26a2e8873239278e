"""End to end on real course data: fit + a model + the data's exact entropy, and the demo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepul_helpers import config, data, metrics
from deepul_helpers.models.baseline import IndependentCategorical
from deepul_helpers.train import fit


def test_categorical_reaches_the_exact_entropy_of_1d_a(clean_quick_env):
    meta = data.info("1d_a")
    train, test = data.load("1d_a", "train"), data.load("1d_a", "test")
    config.seed_everything(0)
    model = IndependentCategorical((), meta.levels)
    hist = fit(model, train, test, epochs=40, lr=0.05, batch_size=100, seed=0)
    true_p = np.asarray(data.true_distribution("1d_a").probs, dtype=np.float64)
    assert metrics.entropy_discrete(true_p) == pytest.approx(meta.entropy, rel=1e-9)
    # Cross-entropy of the trained model against the TRUE distribution (no test-set noise):
    # H(p) + KL(p || q) >= H(p), and with 800 samples the KL is ~ (K - 1) / (2N) ~ 1%.
    with torch.no_grad():
        log_q = model.log_probs()[0].double().numpy()
    cross_entropy = float(-(true_p * log_q).sum())
    assert cross_entropy >= meta.entropy - 1e-9
    assert cross_entropy <= meta.entropy * 1.01, (cross_entropy, meta.entropy)
    # the test loss that fit reports is the same quantity estimated on the 200 test samples
    assert hist.test_losses[-1] == pytest.approx(float(-log_q[test].mean()), rel=1e-6)
    samples = model.sample(5000).numpy()
    assert samples.shape == (5000,) and samples.dtype == np.int64
    assert samples.min() >= 0 and samples.max() < meta.levels


@pytest.mark.slow
def test_demo_quick_writes_pictures_and_reports_bits_per_dim(tmp_path, clean_quick_env):
    from deepul_helpers import demo

    r = demo.run(out=tmp_path, budget_s=5, quick=True)
    assert (tmp_path / "samples.png").exists() and (tmp_path / "training_curves.png").exists()
    assert 0 < r["pixelcnn_bits_per_dim"] < 1.0  # a binary image: at most 1 bit per pixel
    assert 0 < r["baseline_bits_per_dim"] < 1.0
