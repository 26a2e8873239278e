"""Homework 4 (implicit models), what is specific to it: the reference earns every point of the verdict,
wrong implementations lose exactly the points of their sub-check, the notebook states the runner's
quality rows, and the solution notebook runs in quick mode. The contract every assignment keeps (points,
cells, release, full marks through the grader) is checked by tests/test_assignments.py."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from torch import nn

from deepul_helpers import data, notebook
from deepul_helpers.autograde.grade import load_verdict
from deepul_helpers.autograde.verdict import grade_here, notebook_namespace
from deepul_helpers.homework import hw4

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "solutions" / "hw4_implicit" / "hw4.ipynb"
VERDICT = REPO / "grading" / "verdicts" / "hw4_implicit.py"
pytestmark = pytest.mark.grading


@pytest.fixture(scope="module")
def verdict():
    return load_verdict(VERDICT)  # the grader's own loader


@pytest.fixture(scope="module")
def solution_ns():
    """The namespace the grader builds: parameters, the setup cell, then the solution cells."""
    return notebook_namespace(SOURCE)


@pytest.fixture(scope="module")
def reference(verdict, solution_ns):
    """Each question's points for the reference, and its training functions' results cached (the wrong
    components below reuse them, so that only the component under test changes)."""
    ns, cached = dict(solution_ns), {}
    for name in ("q1_fit", "q2_fit", "q3_fit", "q4_fit"):
        fn = solution_ns[name]

        def once(*args, _fn=fn, _name=name, **kwargs):
            if _name not in cached:
                cached[_name] = _fn(*args, **kwargs)
            return cached[_name]

        ns[name] = once
    points = {q.grade_id: grade_here(q, ns, verdict.HIDDEN_SEED) for q in verdict.QUESTIONS}
    return ns, points


def test_reference_earns_every_point(verdict, reference):
    _, points = reference
    for q in verdict.QUESTIONS:
        assert points[q.grade_id] == (q.points, []), (q.grade_id, points[q.grade_id])


def _d_loss_summed(real, fake):  # sums over the batch instead of averaging
    return -(nn.functional.logsigmoid(real).sum() + nn.functional.logsigmoid(-fake).sum())


def _penalty_without_minus_one(critic, real, fake, eps):  # E |grad|^2: the "- 1" forgotten
    e = eps.reshape(-1, 1).to(real.dtype)
    x = (e * real + (1 - e) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return (g.norm(dim=1) ** 2).mean()


def _penalty_per_coordinate(critic, real, fake, eps):  # a fresh coefficient per coordinate, not per example
    e = torch.rand_like(real)
    x = (e * real + (1 - e) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((g.norm(dim=1) - 1) ** 2).mean()


def _frobenius_normalize(weight, u, iterations=1):  # divides by the Frobenius norm, not the spectral norm
    norm = weight.norm()
    return weight / norm, norm, u


def _mmd_biased(x, y, bandwidths):  # the V-statistic: keeps the i = j terms
    z = torch.cat([x, y]).double()
    k = sum(torch.exp(-((z[:, None] - z[None]) ** 2).sum(-1) / (2 * s * s)) for s in bandwidths)
    m = len(x)
    return k[:m, :m].mean() + k[m:, m:].mean() - 2 * k[:m, m:].mean()


def _q3_float_samples(ns):
    d, samples = ns["q3_fit"](data.load("digits")[:64], quick=True, seed=0, device="cpu")
    return lambda *a, **k: (d, samples.astype(np.float32) / 16.0)  # images in [0, 1], not levels


WRONG = [  # (question, name, wrong implementation, points lost)
    ("q1_tests", "d_loss", lambda ns: _d_loss_summed, 1.0),
    ("q1_tests", "g_loss_minimax", lambda ns: lambda fake: -nn.functional.logsigmoid(fake).mean(), 1.0),
    ("q1_tests", "g_loss_nonsaturating", lambda ns: lambda fake: nn.functional.logsigmoid(fake).mean(), 1.0),
    ("q2_tests", "gradient_penalty", lambda ns: _penalty_without_minus_one, 1.0),
    ("q2_tests", "gradient_penalty", lambda ns: _penalty_per_coordinate, 1.0),
    ("q2_tests", "spectral_normalize", lambda ns: _frobenius_normalize, 1.0),
    ("q3_tests", "q3_fit", _q3_float_samples, 1.0),
    ("q4_tests", "mmd2_unbiased", lambda ns: _mmd_biased, 1.0),
]


@pytest.mark.parametrize("question, name, wrong, lost", WRONG, ids=[f"{w[1]}-{i}" for i, w in enumerate(WRONG)])
def test_a_wrong_component_loses_exactly_its_points(verdict, reference, question, name, wrong, lost):
    ns, points = reference
    q = next(q for q in verdict.QUESTIONS if q.grade_id == question)
    bad = dict(ns)
    bad[name] = wrong(ns)
    got, messages = grade_here(q, bad, verdict.HIDDEN_SEED)
    assert got == pytest.approx(points[question][0] - lost), messages
    assert any(name in m for m in messages), messages


def test_a_missing_training_function_scores_nothing_for_it(verdict, reference):
    ns, points = reference
    q = next(q for q in verdict.QUESTIONS if q.grade_id == "q4_tests")

    def raises(*a, **k):
        raise RuntimeError("not written yet")

    got, messages = grade_here(q, dict(ns, q4_fit=raises), verdict.HIDDEN_SEED)
    assert got == 1.0 and any("q4_fit raised RuntimeError" in m for m in messages)


def test_the_notebook_states_every_quality_row():
    text = "\n".join(c.source for c in nbformat.read(str(SOURCE), as_version=4).cells if c.cell_type == "markdown")
    for row in hw4.QUALITY.values():
        assert row.markdown() in text, row.key
    assert all(r.better in ("lower", "higher") and r.tol > 0 for r in hw4.QUALITY.values())


@pytest.mark.notebook
def test_solution_notebook_runs_quick_and_records_what_the_runners_measure(tmp_path):
    _, rec = notebook.execute(SOURCE, out_dir=tmp_path, cwd=tmp_path, timeout=300, env={"DEEPUL_OUT": str(tmp_path)})
    for key in hw4.QUALITY:
        assert math.isfinite(rec[f"{key}/value"]), key
    for loss in ("minimax", "nonsaturating"):
        assert rec[f"q1/mixture_1d/{loss}/grad_at_start"] > 0
    assert 0 <= rec["q2/gaussians_25_narrow/modes covered (of 25)/value"] <= 25
    test_losses = rec["q4/moons/EBM, exact grid NLL/test_losses"]
    assert np.all(np.isfinite(test_losses))
    assert test_losses[-1] >= data.info("moons").entropy - 0.1  # an exact NLL: at or above the entropy
    assert (tmp_path / "hw4" / "q3_digits.png").exists()
