"""Homework 2 (flows), what is specific to it (the contract every assignment keeps is checked by
tests/test_assignments.py):

- deliberately wrong components lose points (a logdet with the wrong sign, bits/dim without the
  1/levels term, a sequential pass where one suffices, ...);
- the judge's reference path (the public MAF/IAF layers run with a given conditioner) and the
  runner's conditioner are right by closed forms and Jacobians;
- the solution notebook runs in quick mode, passes its own visible tests, and what it records
  is what the same functions give in this process on the same seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
import torch

from deepul_helpers.autograde.grade import load_verdict
from deepul_helpers.autograde.verdict import grade_here, notebook_namespace
from deepul_helpers.homework import hw2 as helper
from deepul_helpers.homework import kit

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "solutions" / "hw2_flows" / "hw2.ipynb"
VERDICT = ROOT / "grading" / "verdicts" / "hw2_flows.py"


verdict = load_verdict(VERDICT)


@pytest.fixture(scope="module")
def ns():
    return notebook_namespace(SOURCE)


def _grade(question, ns, seed=verdict.HIDDEN_SEED):
    return grade_here(question, ns, seed)


# ----------------------------------------------------------------------------- the judges


def _with(ns, source: str) -> dict:
    """A copy of the namespace with some functions/classes redefined (a student's mistake)."""
    bad = dict(ns)
    exec(source, bad)
    return bad


def _no_fit(ns, name):
    """Skips the (slow) training call: the mistakes below are in components, not in training."""
    def fit(*args, **kwargs):
        raise RuntimeError("not run in this test")

    return {**ns, name: fit}


WRONG = {
    "q1_weights_ignored": (0, "q1_fit", '''
def mixture_cdf(x, logits, means, log_scales):
    u = (x[:, None] - means) * torch.exp(-log_scales)
    cdf = 0.5 * (1.0 + torch.erf(u / math.sqrt(2.0)))
    log_pdf = -0.5 * u**2 - log_scales - 0.5 * math.log(2 * math.pi)
    k = logits.shape[-1]
    return cdf.mean(-1), torch.logsumexp(log_pdf, -1) - math.log(k)
''', "mixture_cdf"),
    "q2_logdet_sign": (1, "q2_fit", '''
class AffineCoupling2D(AffineCoupling2D):
    def forward(self, x):
        z, ld = super().forward(x)
        return z, -ld
''', "forward logdet"),
    "q3_no_levels_term": (2, "q3_fit", '''
def dequantized_bits_per_dim(log_p_y, dim, levels):
    return float(-torch.as_tensor(log_p_y, dtype=torch.float64).mean() / dim / math.log(2))
''', "dequantized_bits_per_dim"),
    "q3_logit_logdet_sign": (2, "q3_fit", '''
_right_logit = logit_transform
def logit_transform(y, alpha=0.05):
    s, ld = _right_logit(y, alpha)
    return s, -ld
''', "logit_transform"),
    "q4_extra_passes": (3, None, '''
def iaf_sample(z, conditioner):
    x = z
    for _ in range(z.shape[1]):
        mu, log_s = conditioner(z)
        x = mu + torch.exp(log_s) * z
    return x
def q4_answers():
    return {"fit_to_data": "iaf", "fast_sampling": "maf"}
''', "iaf_sample"),
}


@pytest.fixture(scope="module")
def points_without_training(ns):
    """Each question's points for the solution with its training function stubbed out (computed once)."""
    cache = {}

    def get(index, fit_name):
        if index not in cache:
            cache[index] = _grade(verdict.QUESTIONS[index], _no_fit(ns, fit_name) if fit_name else ns)[0]
        return cache[index]

    return get


@pytest.mark.parametrize("case", sorted(WRONG))
def test_wrong_components_lose_points(ns, points_without_training, case):
    index, fit_name, source, expected_word = WRONG[case]
    q = verdict.QUESTIONS[index]
    bad = _with(_no_fit(ns, fit_name) if fit_name else ns, source)
    good_points = points_without_training(index, fit_name)
    bad_points, messages = _grade(q, bad)
    assert bad_points < good_points
    assert any(expected_word in m for m in messages), messages


def test_dequantized_model_missing_the_levels_term_fails_the_normalisation(ns):
    """log_prob without - D log(levels): the implied discrete probabilities sum to levels^D, not 1."""
    q = verdict.QUESTIONS[2]
    bad = _with(_no_fit(ns, "q3_fit"), '''
class DequantizedRealNVP(DequantizedRealNVP):
    def log_prob(self, x):
        return super().log_prob(x) + self.dim * math.log(self.levels)
''')
    out = q.probe(bad, verdict.HIDDEN_SEED)
    assert out["m_mass"] > 10  # 2^4 = 16 times too much
    points, messages = q.judge(out, verdict.HIDDEN_SEED)
    assert points <= q.points - 1.75 and any("summed over every image" in m for m in messages)


def test_probes_report_exceptions_by_builtin_class_only(ns):
    bad = _with(ns, '''
def mixture_cdf(x, logits, means, log_scales):
    raise ValueError("secret hidden input " + str(x.tolist()))
''')
    bad = _no_fit(bad, "q1_fit")
    out = verdict.QUESTIONS[0].probe(bad, verdict.HIDDEN_SEED)
    assert out["cdf_error"] == "ValueError" and out["fit_error"] == "RuntimeError"
    points, messages = verdict.QUESTIONS[0].judge(out, verdict.HIDDEN_SEED)
    assert points <= 1.0 and not any("secret" in m for m in messages)


def test_timings_must_be_the_students_own_ratios(ns):
    q = verdict.QUESTIONS[3]
    out = q.probe(ns, 1)
    full, _ = q.judge(out, 1)
    out["t_sampling_speedup"] *= 2  # reported, not computed from the returned times
    fewer, messages = q.judge(out, 1)
    assert fewer == full - 0.25 and any("ratios" in m for m in messages)


def test_q4_direction_is_judged_by_passes_not_by_the_machines_load(ns):
    """Timings measured on a busy machine (IAF sampling slower than MAF, consistent ratios) cost nothing:
    the direction is judged by counted network passes; the seconds appear as information only."""
    q = verdict.QUESTIONS[3]
    out = q.probe(ns, 1)
    full, _ = q.judge(out, 1)
    assert full == q.points
    out["t_iaf_sample_s"] = out["t_maf_sample_s"] * 3  # as if another process stole IAF's turn
    out["t_sampling_speedup"] = out["t_maf_sample_s"] / out["t_iaf_sample_s"]
    slow, messages = q.judge(out, 1)
    assert slow == full and any("for information" in m and "0.3x" in m for m in messages), messages
    out["p_iaf_sample"] = out["p_maf_sample"]  # IAF sampling with as many passes as MAF: the claim is wrong
    fewer, messages = q.judge(out, 1)
    assert fewer == full - 0.25 and any("fewer network passes" in m for m in messages), messages


# ----------------------------------------------------------------------------- the helper


def test_conditioner_is_autoregressive_by_its_jacobian():
    cond = helper.make_conditioner(6, seed=3)
    v = torch.randn(6)
    for k in (0, 1):
        jac = torch.autograd.functional.jacobian(lambda t, k=k: cond(t[None])[k][0], v)  # (D, D): d out_i / d v_j
        assert torch.all(torch.triu(jac) == 0), "output i may depend on inputs j < i only"
        assert torch.any(torch.tril(jac, -1) != 0)
    with pytest.raises(ValueError, match="positive integer"):
        helper.make_conditioner(0)


def test_maf_and_iaf_layers_run_a_given_conditioner_with_one_or_d_calls():
    """The judge's reference path: the public layers with ``conditioner=``, against the closed forms."""
    from deepul_helpers.models.flows.autoregressive import IAFLayer, MAFLayer

    cond, calls = helper.make_conditioner(5, seed=2), []

    def counted(v):
        calls.append(1)
        return cond(v)

    x = torch.randn(7, 5)
    maf, iaf = MAFLayer(5, conditioner=counted), IAFLayer(5, conditioner=counted)
    assert list(maf.parameters()) == [], "a given conditioner replaces the MADE"
    with torch.no_grad():
        z, ld = maf(x)
        mu, ls = cond(x)
        assert torch.allclose(z, (x - mu) * torch.exp(-ls)) and torch.allclose(ld, -ls.sum(1)) and len(calls) == 1
        calls.clear()
        assert torch.allclose(maf.inverse(z)[0], x, atol=1e-5) and len(calls) == 5
        calls.clear()
        xs, ld = iaf.inverse(z)
        mu, ls = cond(z)
        assert torch.allclose(xs, z * torch.exp(ls) + mu) and torch.allclose(ld, ls.sum(1)) and len(calls) == 1
        calls.clear()
        assert torch.allclose(iaf(xs)[0], z, atol=1e-5) and len(calls) == 5


def test_solution_maf_iaf_agree_with_the_reference_flows_with_a_made(ns):
    """The judge's reference path (MAF/IAF layers run with a given conditioner) checked once more
    with the reference's own MADE conditioner and a closed form: MAF and IAF are inverses."""
    from deepul_helpers.models.flows.autoregressive import MAFLayer

    torch.manual_seed(0)
    layer = MAFLayer(5, hidden=16)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    cond = layer.params
    x = torch.randn(8, 5)
    with torch.no_grad():
        z, logdet = layer(x)
        lp = ns["maf_log_prob"](x, cond)
        expected = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1) + logdet
        assert torch.allclose(lp, expected, atol=1e-5)
        assert torch.allclose(ns["maf_sample"](z, cond), x, atol=1e-4)
        # IAF: the density of its own sample is log N(z) - sum of the log-scales computed from z
        assert torch.allclose(ns["iaf_log_prob"](ns["iaf_sample"](z, cond), cond),
                              (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1) - cond(z)[1].sum(1), atol=1e-4)


# ----------------------------------------------------------------------------- notebook and release


@pytest.mark.notebook
def test_solution_notebook_runs_quick_and_passes_its_visible_tests(ns, tmp_path):
    from deepul_helpers import data, notebook

    executed, records = notebook.execute(SOURCE, out_dir=tmp_path, timeout=300, cwd=tmp_path,
                                         env={"DEEPUL_OUT": str(tmp_path / "out")})
    nb = nbformat.read(str(executed), as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            text = "".join(o.get("text", "") for o in cell.get("outputs", []))
            assert "visible checks passed" in text, meta["grade_id"]
    assert (tmp_path / "out" / "hw2" / "q3_samples.png").exists()
    # the recorded losses are what the same functions give here, on the same seed
    tr, te = data.load("gaussians_8", "train"), data.load("gaussians_8", "test")
    _, test_losses, _ = ns["q1_fit"](tr, te, quick=True, seed=0, device="cpu")
    assert records["q1/gaussians_8/test_losses"] == pytest.approx(list(test_losses), abs=1e-4)
    for exp in kit.rows(helper.EXPECTED, "q2"):
        assert len(records[f"{exp.key}/test_losses"]) == 3  # quick mode: before training + 2 epochs
    assert records["q3/digits/bits_per_dim"] == pytest.approx(records["q3/digits/test_losses"][-1] / math.log(2))
    assert records["q4/speedups"]["sampling"] > 1 and records["q4/speedups"]["density"] > 1
