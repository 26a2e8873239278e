"""Lecture 03 (latent-variable models): runs in quick mode, and the numbers it shows obey what the lecture
claims: properties that hold for any correct run whatever its training (bounds below the exact value,
IWAE at or above the ELBO, a cross-entropy at or above the entropy, bits = nats / ln 2 ...)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from lecture_checks import INLINE, check_committed_lecture, check_executed_lecture

from deepul_helpers import data, notebook

LECTURE = Path(__file__).resolve().parents[1] / "lectures" / "03_latent_variable.ipynb"


def test_lecture_is_committed_clean_and_follows_the_conventions():
    check_committed_lecture(LECTURE)


@pytest.mark.notebook
def test_lecture_runs_quick_and_its_numbers_hold(tmp_path):
    path, rec = notebook.execute(LECTURE, out_dir=tmp_path, cwd=tmp_path, timeout=300, env=INLINE)
    check_executed_lecture(path)
    # 2D: a bound in nats/dim, never below the exact entropy by more than test-set noise (256 points)
    for name, r in rec["vae_2d"].items():
        assert r["nelbo"] >= data.info(name).entropy - 0.1, name
        assert r["kl"] >= 0, name
    # pPCA: the closed-form ELBO below log p(x); every IWAE_k estimate at most log p(x) up to Monte Carlo
    # noise; the largest k much closer to log p(x) than the ELBO (the encoder was widened on purpose)
    p = rec["ppca"]
    assert p["elbo"] < p["exact"] - 0.05
    assert all(v <= p["exact"] + 0.01 for v in p["iwae"])
    assert p["exact"] - p["iwae"][-1] < 0.5 * (p["exact"] - p["elbo"])
    # digits: IWAE no looser than the ELBO (up to sampling noise), both above zero bits
    d = rec["digits_bits"]
    assert 0 < d["iwae"] <= d["elbo"] + 0.01 and d["pixelcnn"] > 0
    # bars: every KL non-negative, every -ELBO at or above the exact entropy (up to quick-mode test noise);
    for label, r in rec["bars_vae"].items():
        assert r["kl"] >= 0 and r["nelbo"] >= data.info("bars").entropy - 0.05, label
    # the VQ-VAE bound is positive and uses at least one code
    assert rec["vq"]["bits"] > 0 and 0 < rec["vq"]["used"] <= 1 and 1 <= rec["vq"]["perplexity"] <= 32
    # wake-sleep: the exact NLL of the Helmholtz machine is a cross-entropy, at or above the entropy
    # up to the 256-image quick test set's noise
    b = rec["bars"]
    assert b["entropy"] == pytest.approx(data.info("bars").entropy)
    assert all(v >= b["entropy"] - 0.05 for v in b["hm_test"])
    assert b["vae_iwae"] <= b["vae_nelbo"] + 0.01
    # beta-VAE: a held-out R^2 is at most 1; both bounds positive
    for row in rec["beta_vae"]:
        assert row["test -ELBO (nats/dim)"] > 0 and all(row[f"R^2 {k}"] <= 1 for k in ("y", "x", "size"))
    assert 0 <= rec["probe"]["vae_all"] <= 1 and 0 <= rec["probe"]["pixels_all"] <= 1
    assert all(v >= 0 and math.isfinite(v) for v in rec["frechet"].values())
