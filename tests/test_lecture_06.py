"""Lecture 06 (the round-up) executed in quick mode: its figures, its rows in the one schema, and its claims'
verdicts recomputed from the rows it recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from lecture_checks import INLINE, check_committed_lecture, check_executed_lecture

REPO = Path(__file__).resolve().parents[1]
LECTURE = REPO / "lectures" / "06_roundup.ipynb"


def test_lecture_is_committed_clean_and_follows_the_conventions():
    check_committed_lecture(LECTURE)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from deepul_helpers import notebook

    out = tmp_path_factory.mktemp("lecture06")
    path, rec = notebook.execute(LECTURE, out_dir=out, cwd=out, timeout=600, env=INLINE)
    check_executed_lecture(path, min_figures=10)
    return rec


@pytest.mark.notebook
def test_lecture_says_it_ran_the_quick_benchmark_and_its_verdicts_follow_its_rows(records):
    from deepul_helpers.bench import claims, roundup, schema

    assert records["note"].startswith("Ran the QUICK benchmark") and roundup.REGENERATE in records["note"]
    for row in records["rows"]:
        schema.validate_row(row)
    assert records["verdicts"] == {c["claim"]: c["verdict"] for c in claims.table(records["rows"])}
    assert {roundup.PIXELCNN, roundup.PARALLEL, roundup.VAE, roundup.VQVAE, roundup.DCGAN, roundup.DCGAN_HINGE,
            roundup.FLOW_U} <= set(records["panels"])
