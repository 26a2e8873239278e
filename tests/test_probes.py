"""metrics.probes: a probe on the labels themselves is perfect, a probe on noise is at chance
(within a binomial tolerance), label draws are seeded and balanced."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepul_helpers.metrics import probes

C = 10


def _labels(n, seed):
    return np.random.default_rng(seed).integers(0, C, size=n)


@pytest.mark.parametrize("kind", probes.KINDS)
def test_one_hot_label_features_give_100_percent(kind):
    y_tr, y_te = _labels(500, 0), _labels(400, 1)
    rows = probes.probe(np.eye(C)[y_tr], y_tr, np.eye(C)[y_te], y_te, kind=kind)
    assert [r["labels_per_class"] for r in rows] == [1, 10, None]
    for r in rows:
        assert r["accuracies"] and all(a == 1.0 for a in r["accuracies"]), r


@pytest.mark.parametrize("kind", probes.KINDS)
def test_noise_features_give_chance_within_a_binomial_tolerance(kind):
    n_test = 2000
    y_tr, y_te = _labels(1000, 2), _labels(n_test, 3)
    rng = np.random.default_rng(4)
    rows = probes.probe(rng.standard_normal((1000, 16)), y_tr, rng.standard_normal((n_test, 16)), y_te,
                        kind=kind, draws=2)
    # Test labels are independent of everything the probe saw: each prediction is right with
    # probability 1/C, so the accuracy is Binomial(n_test, 1/C) / n_test; 4 standard errors.
    tol = 4 * math.sqrt((1 / C) * (1 - 1 / C) / n_test)
    for r in rows:
        for a in r["accuracies"]:
            assert abs(a - 1 / C) < tol, (r["labels_per_class"], a, tol)


def test_label_draws_are_seeded_balanced_and_distinct():
    y = _labels(300, 5)
    a = probes.labelled_subset(y, 3, np.random.default_rng(0))
    b = probes.labelled_subset(y, 3, np.random.default_rng(0))
    c = probes.labelled_subset(y, 3, np.random.default_rng(1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(np.bincount(y[a], minlength=C), np.full(C, 3))
    assert len(probes.labelled_subset(y, None, 0)) == len(y)
    rows = probes.probe(np.eye(C)[y] + 0.5 * np.random.default_rng(6).standard_normal((300, C)), y,
                        np.eye(C)[y], y, labels_per_class=(1,), draws=3, seed=0)
    again = probes.probe(np.eye(C)[y] + 0.5 * np.random.default_rng(6).standard_normal((300, C)), y,
                         np.eye(C)[y], y, labels_per_class=(1,), draws=3, seed=0)
    assert rows == again and rows[0]["n_labelled"] == C
    assert rows[0]["std"] == pytest.approx(np.std(rows[0]["accuracies"]))


def test_embed_and_pixels_shapes():
    import torch

    x = np.random.default_rng(0).integers(0, 17, size=(7, 8, 8, 1)).astype(np.uint8)
    assert probes.pixels(x).shape == (7, 64) and probes.pixels(x).dtype == np.float32
    lin = torch.nn.Linear(64, 3)
    f = probes.embed(lambda t: lin(t.float().reshape(len(t), -1)), x, batch_size=3)
    assert f.shape == (7, 3) and f.dtype == np.float32
    np.testing.assert_allclose(f, lin(torch.as_tensor(x).float().reshape(7, -1)).detach().numpy(), rtol=1e-6)


def test_bad_inputs_say_what_to_do():
    y = _labels(50, 0)
    with pytest.raises(ValueError, match="fewer labels"):
        probes.labelled_subset(y, 40, 0)
    with pytest.raises(ValueError, match="unknown probe kind"):
        probes.accuracy("svm", np.zeros((4, 2)), [0, 1, 0, 1], np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="flatten"):
        probes.accuracy("linear", np.zeros((4, 2, 2)), [0, 1, 0, 1], np.zeros((2, 4)), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        probes.accuracy("knn", np.full((4, 2), np.nan), [0, 1, 0, 1], np.zeros((2, 2)), [0, 1])
