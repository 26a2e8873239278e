"""Every model family's benchmark runs end to end in quick mode and writes rows of the one schema.

Speed and accuracy targets are judged on full runs (`deepul bench FAMILY`), never here.
"""

from __future__ import annotations

import json

import pytest

from deepul_helpers import bench
from deepul_helpers.bench import schema

FAMILY_BENCHMARKS = [f for f in bench.available() if f in bench.model_families()] + ["roundup"]  # every family


def test_the_course_families_have_benchmarks():
    assert {"autoregressive", "flows"} <= set(FAMILY_BENCHMARKS)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILY_BENCHMARKS)
def test_quick_benchmark_rows_follow_the_schema(family, tmp_path):
    rows, json_path, png_path = bench.run_benchmark(family, quick=True, out=tmp_path)
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(rows, default=float))
    assert png_path.stat().st_size > 1000
    assert len(rows) >= 4
    schema.validate_rows(json.loads(json_path.read_text()), None if family == "roundup" else family)
    for row in rows:
        if row["train_s"] is not None or row["family"] != "selfsupervised":  # its untrained baselines: no fit
            assert row["epochs"] >= 1 and row["iterations"] >= 1
        assert row["best_epoch"] is not None or row["nll_kind"] is None  # no likelihood (GANs): no validation loss
        if row["nll_kind"] is not None and row["cross_entropy_nats_per_dim"] is not None:
            # a normalised model's exact cross-entropy is at or above the entropy (up to its Monte Carlo error)
            assert row["cross_entropy_gap_percent"] >= -400 * row["cross_entropy_se"] / row["entropy_nats_per_dim"]
