"""Lecture 05 (self-supervised) executed in quick mode; what it records is checked against the
reference code on the same seed and against closed forms (log N ceiling, true MI, probabilities)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from lecture_checks import INLINE, check_committed_lecture, check_executed_lecture

REPO = Path(__file__).resolve().parents[1]
LECTURE = REPO / "lectures" / "05_self_supervised.ipynb"


def test_lecture_is_committed_clean_and_follows_the_conventions():
    check_committed_lecture(LECTURE)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from deepul_helpers import notebook

    out = tmp_path_factory.mktemp("lecture05")
    path, rec = notebook.execute(LECTURE, out_dir=out, cwd=out, timeout=300, env=INLINE)
    check_executed_lecture(path)  # figures, and no stray output, no error
    return rec


@pytest.mark.notebook
def test_infonce_bounds_respect_log_n_and_match_the_reference(records):
    import torch

    from deepul_helpers import config, data
    from deepul_helpers.data import pairs
    from deepul_helpers.models import selfsupervised as ssl
    from deepul_helpers.train import fit

    assert records["infonce/true_mi"] == pytest.approx(pairs.mutual_information(5, 0.9), rel=1e-12)
    bounds = {int(n): b for n, b in records["infonce/bounds"].items()}
    assert all(b <= math.log(n) + 1e-6 for n, b in bounds.items())
    config.seed_everything(0)
    critic = ssl.InfoNCE(dim=5)
    fit(critic, data.load("gaussian_pairs"), epochs=2, batch_size=4, lr=2e-3, quick=True, seed=0, device="cpu")
    ref = critic.mi_bound(torch.as_tensor(data.load("gaussian_pairs", "test")), 4)
    assert bounds[4] == pytest.approx(ref, rel=1e-5, abs=1e-6)


@pytest.mark.notebook
def test_simclr_losses_match_the_reference_and_the_lookup_is_a_distribution(records):
    from deepul_helpers import augment, config, data
    from deepul_helpers.models import selfsupervised as ssl
    from deepul_helpers.train import fit

    config.seed_everything(0)
    model = ssl.SimCLR(temperature=0.5, augment=augment.Augment(shift=1, degrees=15, scale=(0.9, 1.1), noise=0.05))
    hist = fit(model, data.load("digits"), epochs=2, batch_size=256, lr=1e-3, quick=True, seed=0, device="cpu")
    np.testing.assert_allclose(records["simclr/train_losses"], hist.train_losses, rtol=1e-5)
    assert hist.train_losses[0] == pytest.approx(math.log(2 * 256 - 1), abs=0.2)  # untrained: near log(2N-1)
    p = np.array(records["lookup/probs"])
    assert p.shape == (8,) and p.min() >= 0 and p.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.notebook
def test_probes_of_pixels_and_random_encoder_match_the_reference(records):
    from deepul_helpers import config, data
    from deepul_helpers.metrics import probes
    from deepul_helpers.models import selfsupervised as ssl

    x, y = data.load("digits", labels=True)
    xt, yt = data.load("digits", "test", labels=True)
    pix = [r["mean"] for r in probes.probe(probes.pixels(x), y, probes.pixels(xt), yt, seed=0)]
    assert records["probes/linear"]["raw pixels"] == pytest.approx(pix, abs=1e-9)
    config.seed_everything(0)
    enc = ssl.RandomEncoder()
    rnd = [r["mean"] for r in probes.probe(probes.embed(enc, x), y, probes.embed(enc, xt), yt, seed=0)]
    assert records["probes/linear"]["random encoder"] == pytest.approx(rnd, abs=1e-9)
    for kind in ("probes/linear", "probes/knn"):
        assert set(records[kind]) == {"SimCLR", "MoCo", "rotation", "random encoder", "raw pixels"}
        for accs in records[kind].values():
            assert len(accs) == 3 and all(0.1 <= a <= 1.0 for a in accs)


@pytest.mark.notebook
def test_sweeps_cpc_and_timings_are_recorded(records):
    sizes = records["batch/sizes"]
    assert records["batch/curve"]["SimCLR"] and len(records["batch/curve"]["SimCLR"]) == len(sizes)
    assert {float(m) for m in records["momentum"]} >= {0.0, 0.99}
    losses = records["cpc/test_losses"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert set(records["cpc/probe"]) == {"CPC", "random CPC encoder", "raw samples"}
    assert all(v > 0 for v in records["timing/ms_per_example"].values())
