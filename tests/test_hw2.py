"""Homework 2 (flows): the verdict module against the solution notebook, the release, the helper.

- the verdict's questions and points are the notebook's graded test cells;
- every judge gives full marks to what its probe gets from the solution's own functions, and
  fewer to deliberately wrong ones (a logdet with the wrong sign, bits/dim without the
  1/levels term, a sequential pass where one suffices, ...);
- the solution notebook runs in quick mode, passes its own visible tests, and what it records
  is what the same functions give in this process on the same seed;
- the release holds no solution code and no hidden tests.
"""

from __future__ import annotations

import ast
import importlib.util
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from deepul_helpers.autograde import transport
from deepul_helpers.autograde.cells import strip_hidden_tests
from deepul_helpers.homework import hw2 as helper

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "solutions" / "hw2_flows" / "hw2.ipynb"
RELEASE = ROOT / "homeworks" / "hw2_flows" / "hw2.ipynb"
VERDICT = ROOT / "grading" / "verdicts" / "hw2_flows.py"


def _load_verdict():
    spec = importlib.util.spec_from_file_location("hw2_flows_verdict", VERDICT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verdict = _load_verdict()


def _cells(path=SOURCE):
    return nbformat.read(str(path), as_version=4).cells


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


def _solution_namespace() -> dict:
    """The setup cell and the solution cells executed, as the grader loads them."""
    ns: dict = {"quick": True, "seed": 0, "device": "cpu"}
    for cell in _cells():
        gid = _meta(cell).get("grade_id", "")
        if gid == "setup" or _meta(cell).get("solution"):
            exec(compile(cell.source, f"<{gid}>", "exec"), ns)
    return ns


@pytest.fixture(scope="module")
def ns():
    return _solution_namespace()


def _grade(question, ns, seed=verdict.HIDDEN_SEED, tmp=None):
    """probe -> the transport the sandbox uses (plain data, no pickle) -> judge."""
    out = question.probe(ns, seed)
    if tmp is not None:
        transport.dump(out, tmp, question.grade_id)
        out = transport.load(tmp, question.grade_id)
    return question.judge(out, seed)


# ----------------------------------------------------------------------------- structure


def test_verdict_points_equal_the_notebooks_test_cells():
    cells = {_meta(c)["grade_id"]: _meta(c) for c in _cells() if _meta(c).get("grade")}
    assert sorted(cells) == sorted(q.grade_id for q in verdict.QUESTIONS)
    for q in verdict.QUESTIONS:
        assert cells[q.grade_id]["points"] == q.points, q.grade_id
        assert q.forbidden and all(m.startswith("deepul_helpers.models.flows") for m in q.forbidden)


def test_solution_cells_hold_only_definitions_and_define_what_the_verdict_requires():
    defined = set()
    for cell in _cells():
        if not _meta(cell).get("solution"):
            continue
        for stmt in ast.parse(cell.source).body:
            assert isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign)), \
                f"{_meta(cell)['grade_id']}: top-level {type(stmt).__name__}"
            if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                defined.add(stmt.name)
            assert "deepul_helpers.models" not in ast.unparse(stmt), "a solution must not use the reference models"
    for q in verdict.QUESTIONS:
        assert set(q.requires) <= defined, q.grade_id


def test_parameters_and_setup_cells_follow_the_contract():
    cells = _cells()
    code = [c for c in cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert code[0].source == 'quick = False\nseed = 0\ndevice = "auto"'
    assert _meta(code[0]).get("locked") and _meta(code[1])["grade_id"] == "setup" and _meta(code[1])["locked"]
    assert all(not c.get("outputs") for c in code), "committed notebooks carry no outputs"


def test_verdict_module_does_not_import_the_reference_at_load_time():
    """The probe process loads the verdict; a module-level import of the reference flows would be
    reported as the student's."""
    tree = ast.parse(VERDICT.read_text())
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            assert "models" not in ast.unparse(stmt)


# ----------------------------------------------------------------------------- the judges


@pytest.mark.parametrize("index", range(4), ids=["q1", "q2", "q3", "q4"])
def test_solution_scores_full_marks(ns, index, tmp_path):
    q = verdict.QUESTIONS[index]
    points, messages = _grade(q, ns, tmp=tmp_path)
    assert points == q.points, messages
    assert messages == []


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


def test_solution_maf_iaf_agree_with_the_reference_flows_with_a_made(ns):
    """The judge's reference path (MAF/IAF layers run with a given conditioner) checked once more
    with the reference's own MADE conditioner and a closed form: MAF and IAF are inverses."""
    from deepul_helpers.models.flows.autoregressive import MAFLayer

    torch.manual_seed(0)
    layer = MAFLayer(5, hidden=16)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    cond = layer._params
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
        if _meta(cell).get("grade"):
            text = "".join(o.get("text", "") for o in cell.get("outputs", []))
            assert "visible checks passed" in text, _meta(cell)["grade_id"]
    assert (tmp_path / "out" / "hw2" / "q3_samples.png").exists()
    # the recorded losses are what the same functions give here, on the same seed
    tr, te = data.load(helper.Q1_DATA, "train"), data.load(helper.Q1_DATA, "test")
    _, test_losses, _ = ns["q1_fit"](tr, te, quick=True, seed=0, device="cpu")
    assert records["q1_test_losses"] == pytest.approx(list(test_losses), abs=1e-4)
    for name in helper.Q2_DATA:
        assert len(records[f"q2_{name}_test_losses"]) == 3  # quick mode: before training + 2 epochs
    assert records["q3_final_bits_per_dim"] == pytest.approx(records["q3_test_losses"][-1] / math.log(2))
    assert records["q4_speedups"]["sampling"] > 1 and records["q4_speedups"]["density"] > 1


def test_release_has_no_solutions_and_no_hidden_tests():
    assert RELEASE.exists(), "run: .venv/bin/python -m deepul_helpers release hw2_flows"
    text = RELEASE.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "HIDDEN TESTS"):
        assert marker not in text
    released = {_meta(c).get("grade_id"): c for c in _cells(RELEASE) if _meta(c)}
    for cell in _cells():
        gid = _meta(cell).get("grade_id")
        if _meta(cell).get("solution"):
            assert "raise NotImplementedError" in released[gid].source
            inside = False
            for line in cell.source.splitlines():  # no line between the solution markers survives
                inside = (inside or "BEGIN SOLUTION" in line) and "END SOLUTION" not in line
                if inside and len(line.strip()) > 20:
                    assert line.strip() not in released[gid].source, (gid, line)
        if _meta(cell).get("grade"):
            # the grader restores test cells from the source with the hidden tests stripped: a
            # submission of the untouched release must match that exactly
            assert released[gid].source == strip_hidden_tests(cell.source), gid
            assert "HIDDEN" not in released[gid].source
    assert not any(c.get("outputs") for c in _cells(RELEASE) if c.cell_type == "code")
    # a student can run every released solution cell before writing anything: the stubs raise only
    # when called, so each cell defines its names (no stub at a class body's top level)
    ns: dict = {}
    for cell in _cells(RELEASE):
        if _meta(cell).get("grade_id") == "setup" or _meta(cell).get("solution"):
            exec(compile(cell.source, _meta(cell)["grade_id"], "exec"), ns)
    assert all(set(q.requires) <= set(ns) for q in verdict.QUESTIONS)


def test_expected_numbers_are_measured_and_stated_in_the_notebook():
    text = SOURCE.read_text()
    for key, value in helper.EXPECTED.items():
        assert np.isfinite(value) and value > 0, f"EXPECTED[{key!r}] was never measured"
        assert f"{value:.3f}" in text, key
