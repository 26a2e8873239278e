"""Shared pytest set-up: no display, no stray quick-mode switches from the caller's shell."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")
# One intra-op thread per test process (and per notebook kernel, which inherits it): with
# `pytest -n 2` on 2 cores, two threads per process oversubscribe the CPU and torch's small ops
# then run tens of times slower (measured: a 1D logistic-mixture step 0.7 ms -> 80 ms).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture
def clean_quick_env(monkeypatch):
    """Neither quick-mode environment switch is set inside the test."""
    monkeypatch.delenv("DEEPUL_QUICK", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    return monkeypatch


@pytest.fixture
def repo() -> Path:
    return REPO
