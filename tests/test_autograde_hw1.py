"""End to end on homework 1: partial and hostile submissions graded by its real verdict module.

Verdict runs only (``run_notebook=False``): the grade comes from the verdict, and the notebook
run (feedback, in-notebook claims) is covered on the small fixture in test_autograde.py; running
homework 1's whole notebook for every student would not fit the test budget. The reference
(full marks) and the blank release (0) are graded for every assignment by tests/test_assignments.py.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest

from deepul_helpers.autograde import cells as nbcells
from deepul_helpers.autograde.grade import autograde

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "hw1_autoregressive"
SOURCE = ROOT / "solutions" / ASSIGNMENT / "hw1.ipynb"
RELEASE = ROOT / "homeworks" / ASSIGNMENT / "hw1.ipynb"
VERDICT = ROOT / "grading" / "verdicts" / f"{ASSIGNMENT}.py"
pytestmark = [pytest.mark.grading, pytest.mark.slow, pytest.mark.xdist_group("autograde_hw1"),
              pytest.mark.skipif(not (SOURCE.is_file() and RELEASE.is_file() and VERDICT.is_file()),
                                 reason="homework 1 (source, release, verdict) is not in the repository")]


def _cell(nb, gid):
    return next(c for c in nb.cells if nbcells.grade_id(c) == gid)


def _solved(release, source, prefixes):
    """The release with the solution cells of the questions in ``prefixes`` (e.g. "q1") solved."""
    nb = copy.deepcopy(release)
    for c in nb.cells:
        gid = nbcells.grade_id(c)
        if gid and nbcells.nbgrader_meta(c).get("solution") and gid.split("_")[0] in prefixes:
            c.source = _cell(source, gid).source
    return nb


@pytest.fixture(scope="module")
def hw1(tmp_path_factory):
    base = tmp_path_factory.mktemp("hw1")
    src = nbformat.read(SOURCE, as_version=4)
    rel = nbformat.read(RELEASE, as_version=4)
    points = nbcells.SourceNotebook.read(SOURCE).tests
    partial = _solved(rel, src, {"q1", "q3"})
    forbid = _solved(rel, src, {"q1", "q2", "q3", "q4", "q5"})
    _cell(forbid, "q2_solution_a").source = "from deepul_helpers.models.autoregressive.made import made_masks\n" \
        + _cell(src, "q2_solution_a").source.split("def made_masks", 1)[0]
    fake = copy.deepcopy(partial)  # q1 and q3 honest; q4 returns an object that equals anything
    _cell(fake, "q4_solution_a").source = (
        "class Always:\n    def __eq__(self, other):\n        return True\n    shape = (1, 1, 1, 1)\n\n"
        "def causal_attention(q, k, v):\n    return Always()\n\n"
        "def attention_step(q, k, v, cache=None):\n    return Always(), (k, v)\n")
    _cell(fake, "q3_solution_b").source = "_bomb = bytearray(64 << 30)\n" + _cell(fake, "q3_solution_b").source
    subs = {"partial": partial, "forbid": forbid, "fake": fake}
    for name, nb in subs.items():
        d = base / "submitted" / name / ASSIGNMENT
        d.mkdir(parents=True)
        nbformat.write(nb, d / "hw1.ipynb")
    kwargs = dict(workers=2, timeout_s=400, db=f"sqlite:///{base / 'gradebook.db'}", source_root=ROOT,
                  progress=False, run_notebook=False)
    results = {r.student: r for r in autograde(ASSIGNMENT, base / "submitted", out=base / "out", **kwargs)}
    return dict(base=base, results=results, points=points, kwargs=kwargs)


def test_partial_submission_gets_exactly_its_questions(hw1):
    r, points = hw1["results"], hw1["points"]
    assert r["partial"].scores == {g: (p if g in ("q1_tests", "q3_tests") else 0.0) for g, p in points.items()}


def test_hostile_submissions_in_the_same_batch(hw1):
    r = hw1["results"]
    forbid = r["forbid"]
    assert forbid.status == "flagged" and forbid.scores["q2_tests"] == 0 and "q2_tests" in forbid.review
    assert any("made" in m for m in forbid.question_messages["q2_tests"])
    # Importing the package loads every reference model: every question forbidding one is flagged.
    assert forbid.total == 0
    fake = r["fake"]
    assert fake.scores == r["partial"].scores, fake.question_messages
    assert any("MemoryError" in m for m in fake.messages)


def test_grading_again_alone_gives_identical_grades(hw1, tmp_path):
    again = autograde(ASSIGNMENT, hw1["base"] / "submitted", students=["partial"], out=tmp_path / "o",
                      **dict(hw1["kwargs"], db=f"sqlite:///{tmp_path / 'gb.db'}"))
    for r in again:
        assert r.scores == hw1["results"][r.student].scores
        assert r.status == hw1["results"][r.student].status
