"""Lecture 01 (autoregressive) executed in quick mode; what it records is checked against the
reference code on the same seed and against closed forms (normalisation, masks, receptive fields)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lecture_checks import INLINE, check_committed_lecture, check_executed_lecture

REPO = Path(__file__).resolve().parents[1]
LECTURE = REPO / "lectures" / "01_autoregressive.ipynb"


def test_lecture_is_committed_clean_and_follows_the_conventions():
    check_committed_lecture(LECTURE)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    from deepul_helpers import notebook

    out = tmp_path_factory.mktemp("lecture01")
    return notebook.execute(LECTURE, out_dir=out, cwd=out, timeout=300, env=INLINE)


@pytest.fixture(scope="module")
def records(executed):
    return executed[1]


@pytest.mark.notebook
def test_executed_lecture_shows_figures_and_no_stray_output(executed):
    check_executed_lecture(executed[0])


@pytest.mark.notebook
def test_1d_losses_match_the_reference_on_the_same_seed(records):
    from deepul_helpers import data
    from deepul_helpers.models import autoregressive as ar
    from deepul_helpers.train import fit

    train_x, test_x = data.load("1d_b", "train", seed=0), data.load("1d_b", "test", seed=0)
    for key, model in (("histogram", ar.Histogram(100)), ("logistic mixture", ar.DiscretizedLogisticMixture(100, 4))):
        hist = fit(model, train_x, test_x, epochs=20, lr=0.05, seed=0, device="cpu", quick=True)
        np.testing.assert_allclose(records[f"1d/{key}/test_losses"], hist.test_losses, rtol=1e-5)


@pytest.mark.notebook
def test_normalisation_by_summing_over_all_values(records):
    assert records["1d/prob_sum"] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert records["made/table_sum"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.notebook
def test_made_reach_is_strictly_lower_triangular_in_the_ordering(records):
    reach = np.array(records["masks/made_reach_in_order"])
    assert np.array_equal(reach, np.tril(np.ones((4, 4), dtype=int), k=-1))


def _expected_fields(size=15, at=7, layers=6):
    """Closed forms for one 'A' + (layers-1) 'B' 3x3 layers at pixel (at, at) of a size x size image.

    PixelCNN: k rows above, the field spans columns at-layers .. at+k (the blind spot is the
    triangle to the right). Gated PixelCNN: every pixel of the `layers + 1` rows above within
    `layers` columns, and the `layers` pixels to the left in the current row."""
    plain = np.zeros((size, size), dtype=int)
    gated = np.zeros((size, size), dtype=int)
    lo = at - layers
    for k in range(1, layers + 1):
        plain[at - k, lo:at + k + 1] = 1
    plain[at, lo:at] = 1
    gated[max(at - layers - 1, 0):at, lo:at + layers + 1] = 1
    gated[at, lo:at] = 1
    return plain, gated


@pytest.mark.notebook
def test_receptive_fields_show_the_blind_spot(records):
    plain, gated = _expected_fields()
    got_plain = np.array(records["receptive/PixelCNN/field"])
    got_gated = np.array(records["receptive/Gated PixelCNN/field"])
    assert np.array_equal(got_plain, plain)
    assert np.array_equal(got_gated, gated)
    assert records["receptive/PixelCNN/future"] == 0 and records["receptive/Gated PixelCNN/future"] == 0
    assert records["receptive/PixelCNN/blind_spot"] == 15  # 1 + 2 + ... + 5 pixels above-right
    assert records["receptive/Gated PixelCNN/blind_spot"] == 0


@pytest.mark.notebook
def test_kv_cache_gives_the_same_samples_and_training_reduces_losses(records):
    assert records["kv/same_samples"] is True
    times = records["kv/times"]
    assert len(times["naive"]) == len(times["KV cache"]) == len(times["lengths"])
    for key in ("images/PixelCNN/test_losses", "images/Transformer/test_losses", "text/test_losses",
                "made/test_losses"):
        assert records[key][-1] < records[key][0], key
    assert {r["model"] for r in records["table"]} == {"histogram", "MADE", "PixelCNN", "Transformer",
                                                      "char Transformer"}
