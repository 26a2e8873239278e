"""Shared pytest set-up: no display, no stray quick-mode switches from the caller's shell."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def clean_quick_env(monkeypatch):
    """Neither quick-mode environment switch is set inside the test."""
    monkeypatch.delenv("DEEPUL_QUICK", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    return monkeypatch


@pytest.fixture
def repo() -> Path:
    return REPO
