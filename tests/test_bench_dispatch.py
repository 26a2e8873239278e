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


def test_bench_folder_follows_the_course_rule(tmp_path, monkeypatch):
    """--out wins; else out/bench in the course found from the current folder (from lectures/ too), else
    out/bench in the current folder; a benchmark whose run takes ``out`` gets that folder."""
    monkeypatch.delenv("DEEPUL_COURSE", raising=False)
    course = tmp_path / "course"
    (course / "grading").mkdir(parents=True)
    (course / "grading" / "nbgrader_config.py").write_text("")
    (course / "solutions").mkdir()
    (course / "lectures").mkdir()
    monkeypatch.chdir(course / "lectures")
    assert bench.bench_dir() == course.resolve() / "out" / "bench"
    assert bench.bench_dir(tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.chdir(tmp_path)
    assert bench.bench_dir() == tmp_path.resolve() / "out" / "bench"

    seen = {}
    fake = types.ModuleType("deepul_helpers.bench.fake_family")

    def run(quick, device, out=None):
        seen["out"] = out
        return [{"dataset": "x"}]

    fake.run = run
    monkeypatch.setitem(sys.modules, "deepul_helpers.bench.fake_family", fake)
    monkeypatch.setattr(bench, "available", lambda: ["fake_family"])
    monkeypatch.chdir(course / "lectures")
    _, json_path, _ = bench.run_benchmark("fake_family", quick=True)
    assert seen["out"] == json_path.parent == course.resolve() / "out" / "bench"


def test_the_lecture_never_shows_a_quick_run_as_the_measured_one(tmp_path, monkeypatch):
    """load_or_run reads roundup.json only when it comes from a full run; a --quick one is refused, and
    the note says why and where it looked."""
    import numpy as np

    from deepul_helpers.bench import roundup

    monkeypatch.delenv("DEEPUL_QUICK", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(roundup, "run", lambda **kw: [{"label": "ran now"}])
    np.savez_compressed(tmp_path / roundup.ARTIFACTS, a=np.zeros(2))
    (tmp_path / "roundup.json").write_text(json.dumps([{"label": "saved", "quick": False}]))
    rows, artifacts, note = roundup.load_or_run(out=tmp_path)
    assert rows == [{"label": "saved", "quick": False}] and list(artifacts) == ["a"]
    assert note.startswith(f"Loaded {tmp_path / 'roundup.json'}")
    (tmp_path / "roundup.json").write_text(json.dumps([{"label": "saved", "quick": True}]))
    rows, _, note = roundup.load_or_run(out=tmp_path)
    assert rows == [{"label": "ran now"}] and "comes from a --quick run" in note
    rows, _, note = roundup.load_or_run(out=tmp_path / "empty")
    assert rows == [{"label": "ran now"}] and f"in {tmp_path / 'empty'}" in note


def _tiny_job(seed: int) -> dict:
    """A seeded training job, as a benchmark hands to ``workers.map_jobs`` (module level: workers import it)."""
    import torch

    from deepul_helpers import config

    config.seed_everything(seed)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.randn(64, 3)
    for _ in range(20):
        loss = (net(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"seed": seed, "weight": net.weight.detach().numpy().tolist(), "threads": torch.get_num_threads()}


def test_map_jobs_gives_the_same_results_in_order_whatever_the_workers(monkeypatch):
    from deepul_helpers.bench import workers

    here = workers.map_jobs(_tiny_job, [3, 1, 2], workers=1)
    spread = workers.map_jobs(_tiny_job, [3, 1, 2], workers=2)
    assert [r["seed"] for r in spread] == [3, 1, 2]
    assert [r["weight"] for r in spread] == [r["weight"] for r in here]  # seeded by the job, not the process
    assert {r["threads"] for r in spread} == {1}  # each worker runs PyTorch on one thread
    assert here[0]["weight"] != here[1]["weight"]


def test_workers_come_from_the_environment_or_the_cores(monkeypatch):
    from deepul_helpers import config

    monkeypatch.delenv("DEEPUL_WORKERS", raising=False)
    assert config.workers() >= 1
    monkeypatch.setenv("DEEPUL_WORKERS", "3")
    assert config.workers() == 3
    monkeypatch.setenv("DEEPUL_WORKERS", "0")
    with pytest.raises(ValueError, match="DEEPUL_WORKERS='0'"):
        config.workers()
