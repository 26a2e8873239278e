"""The benchmark dispatcher: table formatting, outputs, and a clear error for an unknown family."""

from __future__ import annotations

import json
import sys
import types

import pytest

from deepul_helpers import bench


def test_format_table_aligns_columns_in_first_seen_order():
    text = bench.format_table([{"model": "made", "bits/dim": 2.2}, {"model": "pixelcnn", "extra": None}])
    lines = text.splitlines()
    assert lines[0].split() == ["model", "bits/dim", "extra"]
    assert "2.2" in lines[2] and "-" in lines[3]


def test_run_benchmark_writes_json_and_png(tmp_path, monkeypatch):
    fake = types.ModuleType("deepul_helpers.bench.fake_family")
    fake.run = lambda quick, device: [{"dataset": "x", "nll": 1.5}]
    monkeypatch.setitem(sys.modules, "deepul_helpers.bench.fake_family", fake)
    monkeypatch.setattr(bench, "available", lambda: ["fake_family"])
    monkeypatch.delenv("DEEPUL_QUICK", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    rows, json_path, png_path = bench.run_benchmark("fake_family", quick=True, out=tmp_path)
    # the run's metadata is stamped on every row: the JSON says it was a quick run
    assert json.loads(json_path.read_text()) == rows == [{"dataset": "x", "nll": 1.5, "quick": True}]
    assert png_path.exists() and png_path.stat().st_size > 1000
    rows, json_path, _ = bench.run_benchmark("fake_family", quick=False, out=tmp_path)
    assert json.loads(json_path.read_text())[0]["quick"] is False
    monkeypatch.setenv("DEEPUL_QUICK", "1")  # quick through the environment counts too
    rows, json_path, _ = bench.run_benchmark("fake_family", quick=False, out=tmp_path)
    assert json.loads(json_path.read_text())[0]["quick"] is True


def test_unknown_benchmark_lists_known_ones(tmp_path):
    with pytest.raises(SystemExit, match="unknown benchmark 'nope'; known:"):
        bench.run_benchmark("nope", out=tmp_path)
