"""The family benchmarks run end to end in quick mode and report consistent, measured rows.

Speed and accuracy targets are judged on full runs (`deepul bench FAMILY`), never here.
"""

from __future__ import annotations

import json
import math

import pytest

from deepul_helpers import bench, data, metrics


@pytest.mark.slow
@pytest.mark.parametrize("family", ["autoregressive", "flows"])
def test_quick_benchmark_rows_are_consistent(family, tmp_path):
    rows, json_path, png_path = bench.run_benchmark(family, quick=True, out=tmp_path)
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(rows, default=float))
    assert png_path.stat().st_size > 1000
    assert len(rows) >= 4
    for row in rows:
        name, nats = row["dataset"], row["test_nats_per_dim"]
        assert name in data.names() and math.isfinite(nats)
        assert row["test_bits_per_dim"] == pytest.approx(metrics.bits_per_dim(nats), rel=1e-9)
        entropy = data.info(name).entropy
        assert row["entropy_nats_per_dim"] == (pytest.approx(entropy) if entropy is not None else None)
        if entropy is not None:
            assert row["gap_percent"] == pytest.approx(metrics.gap_percent(nats, entropy), rel=1e-6)
