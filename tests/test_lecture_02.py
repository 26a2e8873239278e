"""Lecture 02 (flows): runs in quick mode, and the numbers it shows obey what the lecture claims.

The checks are properties that hold for any correct flow, whatever its training: a density that
integrates to 1, a test NLL no lower than the true entropy (up to test-set noise), MAF faster at
densities and IAF at sampling, an exactly invertible dequantization, bits = nats / ln 2, and an
importance-weighted bound no looser than the one-sample bound.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from lecture_checks import INLINE, check_committed_lecture, check_executed_lecture

from deepul_helpers import notebook

LECTURE = Path(__file__).resolve().parents[1] / "lectures" / "02_flows.ipynb"


def test_lecture_is_committed_clean_and_follows_the_conventions():
    check_committed_lecture(LECTURE)


@pytest.mark.notebook
def test_lecture_runs_quick_and_its_numbers_hold(tmp_path):
    path, rec = notebook.execute(LECTURE, out_dir=tmp_path, cwd=tmp_path, timeout=300, env=INLINE)
    check_executed_lecture(path)  # figures, and no stray output, no error
    # a flow's density integrates to 1 (midpoint rule on a grid covering the data generously)
    assert rec["moons_mass"] == pytest.approx(1.0, abs=0.02)
    # cross-entropy >= entropy: the test NLL may fall below the true entropy only by test-set noise
    # (quick mode evaluates 256 test points: a few hundredths of a nat at most)
    for name, r in rec["toys"].items():
        assert r["entropy"] > 0, name
        assert r["nll"] >= r["entropy"] - 0.1, name
    # MAF: one pass for densities, D for samples; IAF the other way round
    assert rec["maf_iaf"]["sampling_speedup"] > 1
    assert rec["maf_iaf"]["density_speedup"] > 1
    # dequantization at cell centres is exactly invertible; bits are nats / ln 2
    assert rec["dequantization_roundtrip"] is True
    assert rec["digits_bits_per_dim"] == pytest.approx(rec["digits_test_nats"] / math.log(2), rel=1e-9)
    assert rec["digits_bits_per_dim"] > 0
    # importance weighting can only tighten the bound (on average; 64 images in quick mode)
    assert rec["bound_bits"]["importance_weighted"] <= rec["bound_bits"]["one_sample"] + 0.01
    # z as large as x: 8 x 8 x 1 pixels, 64 latent numbers
    assert rec["latent_dims"] == 64
