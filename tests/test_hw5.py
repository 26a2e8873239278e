"""Homework 5 (self-supervised), what is specific to it: wrong implementations lose exactly their
points, the solution's components agree with the reference, the solution notebook runs in quick
mode. The contract every assignment keeps (points, cells, release, full marks through the grader,
blank release 0) is checked by tests/test_assignments.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepul_helpers.autograde.grade import load_verdict
from deepul_helpers.autograde.verdict import grade_here, notebook_namespace

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "solutions" / "hw5_self_supervised" / "hw5.ipynb"
VERDICT = REPO / "grading" / "verdicts" / "hw5_self_supervised.py"
FITS = {"q1_tests": "q1_fit", "q2_tests": "q2_fit", "q4_tests": "q4_fit"}
FIT_POINTS = {"q1_tests": 2.0, "q2_tests": 1.5, "q3_tests": 0.0, "q4_tests": 3.0}


@pytest.fixture(scope="module")
def verdict():
    return load_verdict(VERDICT)  # the grader's own loader


@pytest.fixture(scope="module")
def solution_ns():
    """The namespace the grader builds: parameters, the setup cell, then the solution cells."""
    return notebook_namespace(SOURCE)


def _unfit(*args, **kwargs):
    raise NotImplementedError


def _info_nce_over_columns(scores):
    return F.cross_entropy(scores.T, torch.arange(len(scores)))


def _nt_xent_keeps_self(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    b = len(z1)
    return F.cross_entropy(z @ z.T / temperature, torch.cat([torch.arange(b, 2 * b), torch.arange(b)]))


def _augment_unseeded(x, generator):
    return (x + 0.05 * torch.randn(x.shape, dtype=x.dtype)).clamp(0, 1)  # the global RNG, not the generator


@torch.no_grad()
def _momentum_swapped(target, online, m):
    for pt, po in zip(target.parameters(), online.parameters()):
        pt.mul_(1 - m).add_(po, alpha=m)


@torch.no_grad()
def _enqueue_without_wrap(queue, ptr, keys):
    n = min(len(keys), len(queue) - ptr)
    queue[ptr:ptr + n] = keys[:n].to(queue.dtype)
    return (ptr + n) % len(queue)


def _moco_loss_unnormalised_queue(q, k, queue, temperature=0.2):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


# (question, name, wrong implementation, words of the message, the points it must lose)
WRONG = [
    ("q1_tests", "info_nce", _info_nce_over_columns, "info_nce", 1.0),
    ("q2_tests", "nt_xent", _nt_xent_keeps_self, "nt_xent", 1.5),
    ("q2_tests", "augment", _augment_unseeded, "same generator state", 0.5),
    ("q3_tests", "momentum_update", _momentum_swapped, "momentum_update", 1.0),
    ("q3_tests", "enqueue", _enqueue_without_wrap, "enqueue", 1.0),
    ("q3_tests", "moco_loss", _moco_loss_unnormalised_queue, "moco_loss", 1.0),
]


@pytest.mark.parametrize("grade_id,name,wrong,where,lost", WRONG, ids=[w[2].__name__.strip("_") for w in WRONG])
def test_judge_takes_exactly_the_points_of_a_wrong_component(verdict, solution_ns, grade_id, name, wrong, where,
                                                               lost):
    (q,) = [q for q in verdict.QUESTIONS if q.grade_id == grade_id]
    base_ns = {**solution_ns, **({FITS[grade_id]: _unfit} if grade_id in FITS else {})}  # only components differ
    base, _ = grade_here(q, base_ns, verdict.HIDDEN_SEED)
    wrong_points, messages = grade_here(q, {**base_ns, name: wrong}, verdict.HIDDEN_SEED)
    assert base == q.points - FIT_POINTS[grade_id], "the stubbed training function loses its points, nothing else"
    assert wrong_points == pytest.approx(base - lost), (base, wrong_points, messages)
    assert any(where in m for m in messages), messages
    assert all(str(verdict.HIDDEN_SEED) not in m for m in messages)


def test_a_bound_that_is_not_log_n_minus_the_loss_loses_its_point(verdict, solution_ns):
    (q,) = [q for q in verdict.QUESTIONS if q.grade_id == "q1_tests"]

    def fit_claims_more(train, test, batch_size, **kw):
        tr, te, bound = solution_ns["q1_fit"](train, test, batch_size, **kw)
        return tr, te, bound + 1.0

    points, messages = grade_here(q, {**solution_ns, "q1_fit": fit_claims_more}, verdict.HIDDEN_SEED)
    assert points == pytest.approx(q.points - 1) and any("log(batch_size)" in m for m in messages), messages


def test_solution_components_agree_with_the_reference(solution_ns):
    from deepul_helpers.models import selfsupervised as ssl

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(solution_ns["nt_xent"](z1, z2, 0.3), ssl.nt_xent(z1, z2, 0.3))
    s = torch.randn(9, 9, generator=g, dtype=torch.float64)
    torch.testing.assert_close(solution_ns["info_nce"](s), ssl.info_nce(s))
    queue = torch.randn(11, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(solution_ns["moco_loss"](z1, z2, queue, 0.2), ssl.queue_info_nce(z1, z2, queue, 0.2))
    mine, ref = torch.zeros(4, 1), ssl.KeyQueue(4, 1)
    ptr = 0
    for b in (3, 3, 6, 1):
        keys = torch.randn(b, 1, generator=g)
        ptr = solution_ns["enqueue"](mine, ptr, keys)
        ref.push(keys)
        assert ptr == int(ref.ptr)
        torch.testing.assert_close(torch.roll(mine, -ptr, 0)[-min(b, 4):], ref.in_order()[-min(b, 4):])


@pytest.mark.notebook
def test_solution_notebook_runs_in_quick_mode_and_passes_its_tests(tmp_path):
    from deepul_helpers import notebook

    path, records = notebook.execute(SOURCE, out_dir=tmp_path, env={"DEEPUL_OUT": str(tmp_path / "plots")},
                                     timeout=300)
    nb = json.loads(Path(path).read_text())
    assert [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"] == []
    q1 = "q1/gaussian_pairs/InfoNCE, N = 128"
    assert records[f"{q1}/bound"] == pytest.approx(math.log(128) - records[f"{q1}/test_losses"][-1], abs=1e-6)
    for key in ("q2/digits/SimCLR NT-Xent, batch 256", "q4/signals/CPC, 4 steps ahead, batch 64"):
        assert 0.0 <= records[f"{key}/probe_accuracy"] <= 1.0
        assert records[f"{key}/test_losses"][-1] < records[f"{key}/test_losses"][0]
    assert sorted(p.name for p in (tmp_path / "plots" / "hw5").glob("*.png")) == ["q1.png", "q2.png", "q4.png"]
    assert np.isfinite(records[f"{q1}/train_losses"]).all()
