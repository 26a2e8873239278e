"""Homework 3 (latent-variable models), what is specific to it (the contract every assignment keeps is checked
by tests/test_assignments.py):

- the reference solution scores every point through the real transport, and deliberately wrong components
  lose exactly their points (a KL without its 1/2, an IWAE average that underflows, probabilities where
  log-probabilities belong, the farthest code instead of the nearest, a straight-through without gradient,
  a sigmoid belief net without its prior);
- the judges' own references agree with the course's reference models (models.latent) on the same inputs;
- the solution notebook runs in quick mode and passes its visible tests, and its records obey the bounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepul_helpers import data, notebook
from deepul_helpers.autograde.grade import load_verdict
from deepul_helpers.autograde.verdict import grade_here, notebook_namespace

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "solutions" / "hw3_latent_variable" / "hw3.ipynb"
verdict = load_verdict(ROOT / "grading" / "verdicts" / "hw3_latent_variable.py")
Q = {q.grade_id: q for q in verdict.QUESTIONS}


@pytest.fixture(scope="module")
def ns():
    """The setup cell and the solution cells executed, as the grader loads them."""
    return notebook_namespace(SOURCE)


def _grade(grade_id, ns):
    """probe -> the transport the sandbox uses (plain data, no pickle) -> judge."""
    return grade_here(Q[grade_id], ns, verdict.HIDDEN_SEED)


def _with(ns, source):
    bad = dict(ns)
    exec(source, bad)
    return bad


@pytest.mark.parametrize("grade_id", list(Q))
def test_reference_solution_scores_every_point(ns, grade_id):
    points, messages = _grade(grade_id, ns)
    assert points == Q[grade_id].points, messages


MISTAKES = {
    "kl without its 1/2": ("q1_tests", 1.0,
                           "def gaussian_kl(mu, logvar):\n    return mu**2 + logvar.exp() - 1 - logvar"),
    "iwae by exp then log": ("q2_tests", 1.0,
                             "def iwae_bound(log_w):\n    return torch.log(torch.exp(log_w).mean(0))"),
    "softmax for log_softmax": ("q2_tests", 1.0, "def categorical_log_likelihood(logits, x):\n"
                                "    p = torch.softmax(logits, -1)\n"
                                "    return p.gather(-1, x.long().unsqueeze(-1)).squeeze(-1).sum(-1)"),
    "the farthest code": ("q3_tests", 1.0, "def quantize(z_e, codebook):\n"
                          "    flat = z_e.reshape(-1, z_e.shape[-1])\n"
                          "    idx = torch.cdist(flat, codebook).argmax(1)\n"
                          "    return codebook[idx].reshape(z_e.shape), idx.reshape(z_e.shape[:-1])"),
    "no straight-through gradient": ("q3_tests", 0.5, "def straight_through(z_e, z_q):\n"
                                     "    return z_q + 0 * z_e"),
    "belief net without its prior": ("q4_tests", 1.0, "def sbn_log_prob(x, prior_logits, weight, bias):\n"
                                     "    L = len(prior_logits)\n"
                                     "    z = ((torch.arange(2**L)[:, None] >> torch.arange(L)) & 1).to(x.dtype)\n"
                                     "    logits = z @ weight.T + bias\n"
                                     "    lp = x @ logits.T - torch.nn.functional.softplus(logits).sum(1)\n"
                                     "    return torch.logsumexp(lp, dim=1) - L * np.log(2.0)"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_wrong_component_loses_exactly_its_points(ns, mistake):
    grade_id, lost, source = MISTAKES[mistake]
    points, messages = _grade(grade_id, _with(ns, source))
    assert points == Q[grade_id].points - lost, messages
    assert messages


def test_judge_references_agree_with_the_course_models():
    from deepul_helpers.models.latent import HelmholtzMachine, gaussian_kl, log_mean_exp

    mu, logvar = verdict._q1_inputs(verdict.HIDDEN_SEED)
    want = 0.5 * (mu.astype(np.float64) ** 2 + np.exp(logvar.astype(np.float64)) - 1 - logvar)
    np.testing.assert_allclose(gaussian_kl(torch.from_numpy(mu).double(), torch.from_numpy(logvar).double()),
                               want, rtol=1e-12)
    log_w, _, _ = verdict._q2_inputs(verdict.HIDDEN_SEED)
    m = log_w.max(0)
    np.testing.assert_allclose(log_mean_exp(torch.from_numpy(log_w)), m + np.log(np.exp(log_w - m).mean(0)),
                               rtol=1e-12)
    # the Helmholtz machine's enumeration against the judge's literal sum over configurations
    torch.manual_seed(0)
    hm = HelmholtzMachine((2, 2, 1), 3).double()
    x = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.uint8).reshape(2, 2, 2, 1)
    out = {"lp": hm.log_prob(x).detach().numpy(), "fit_error": "skipped"}
    vin = (x.reshape(2, 4).double().numpy(), hm.prior_logits.detach().numpy(), hm.gen.weight.detach().numpy(),
           hm.gen.bias.detach().numpy())
    original = verdict._q4_inputs
    try:
        verdict._q4_inputs = lambda seed: vin
        points, messages = verdict.judge_q4(out, 0)
    finally:
        verdict._q4_inputs = original
    assert points == 1.0, messages


@pytest.mark.notebook
def test_solution_runs_quick_and_its_records_obey_the_bounds(tmp_path):
    path, rec = notebook.execute(SOURCE, out_dir=tmp_path, cwd=tmp_path, timeout=300,
                                 env={"DEEPUL_OUT": str(tmp_path / "out")})
    h = data.info("bars").entropy
    assert all(v >= h - 0.1 for v in rec["q4/bars/Helmholtz machine, exact NLL/test_losses"])
    iwae, nelbo = rec["q2/digits/VAE, -ELBO/iwae"], rec["q2/digits/VAE, -ELBO/test_losses"][-1]
    assert 0 < iwae <= nelbo + 0.05
    assert rec["q3/digits/VQ-VAE + PixelCNN prior, bound/bound"] > 0
    for name in ("gaussian_aligned", "gaussian_rotated"):
        assert np.all(np.array(rec[f"q1/{name}/2D VAE/kl_per_dim"]) >= 0)
