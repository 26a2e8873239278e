"""Lecture 04 (implicit models): runs in quick mode, and the numbers it shows agree with the reference code.

Quick mode trains every model for a few iterations only, so the checks are what holds whatever the training:
the feature-space scores recomputed from the package on the same inputs, the mode-coverage bookkeeping, the
EBM's exact normalisation and its NLL against the true entropy, the permutation test's p-value range.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from lecture_checks import INLINE, check_committed_lecture, check_executed_lecture

from deepul_helpers import data, notebook
from deepul_helpers.metrics import sample_quality as sq

LECTURE = Path(__file__).resolve().parents[1] / "lectures" / "04_implicit.ipynb"


def test_lecture_is_committed_clean_and_follows_the_conventions():
    check_committed_lecture(LECTURE)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    out = tmp_path_factory.mktemp("lecture04")
    path, rec = notebook.execute(LECTURE, out_dir=out, cwd=out, timeout=300, env=INLINE)
    check_executed_lecture(path)  # figures, no stray output, no error
    return rec


@pytest.mark.notebook
def test_generator_gradients_at_the_start(records):
    r = records["gan_1d"]
    g = r["grad_at_start"]
    assert g["minimax"] > 0 and g["nonsaturating"] > 0
    if r["d_fake_start"] < 0.4:  # D rejects the samples: minimax's gradient, weighted by D, is the smaller
        assert g["nonsaturating"] > g["minimax"]
    assert all(math.isfinite(v) and v >= 0 for v in r["w1_end"].values())


@pytest.mark.notebook
def test_mode_coverage_records_are_consistent(records):
    robust = {f"gaussians_8_narrow/{k}": v for k, v in records["robust"].items()}
    assert set(records["robust"]) == {"wgan-gp/x1", "wgan-gp/x10", "hinge/x1", "hinge/x10"}
    for key, cov in {**records["modes"], **robust}.items():
        counts = np.array(cov["counts"])
        assert cov["n_modes"] == (8 if key.startswith("gaussians_8") else 25) == len(counts)
        assert cov["modes_covered"] == int((counts > 0).sum())
        assert 0.0 <= cov["high_quality"] <= 1.0
        if counts.sum():
            q = counts / counts.sum()
            kl = float((q[q > 0] * np.log(q[q > 0] * len(q))).sum())
            assert cov["reverse_kl"] == pytest.approx(kl, abs=1e-9)
    assert len(records["seeds"]["covered"]) == 3


@pytest.mark.notebook
def test_feature_space_scores_match_the_package(records):
    train, test = data.load("digits"), data.load("digits", "test")
    assert records["classifier_accuracy"] == sq.digits_classifier().test_accuracy >= 0.97
    noise = records["noise"]
    assert noise["sigmas"][0] == 0.0
    assert noise["fd"][0] == pytest.approx(sq.frechet_distance(test, train), rel=1e-6)
    assert noise["is"][0] == pytest.approx(sq.inception_score(test)[0], rel=1e-6)
    assert all(b >= a for a, b in zip(noise["fd"], noise["fd"][1:])), "the FD grows with the noise"
    cheats = records["cheats"]
    # ten real images repeated: a confident, balanced IS; the FD sees the missing variety
    assert cheats["10 images x 100"]["IS"] > cheats["only 7s"]["IS"]
    assert cheats["10 images x 100"]["FD"] > cheats["test digits"]["FD"]
    assert cheats["only 7s"]["FD"] > cheats["test digits"]["FD"]
    for row in records["families"].values():
        assert math.isfinite(row["FD"]) and row["FD"] >= -1e-6


@pytest.mark.notebook
def test_ebm_is_normalised_and_its_nll_is_above_the_entropy(records):
    ebm = records["ebm"]
    assert ebm["entropy"] == pytest.approx(data.info("moons").entropy)
    for name, mass in ebm["mass"].items():
        assert mass == pytest.approx(1.0, abs=1e-4), name
    for name, nll in ebm["nll"].items():  # cross-entropy >= entropy, up to the noise of 256 test points
        assert nll >= ebm["entropy"] - 0.1, name
    p = records["gmmn"]["p_value"]
    assert 1 / 201 <= p <= 1.0 and math.isfinite(records["gmmn"]["mmd2"])
