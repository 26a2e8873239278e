"""A grade is not a lottery on the hidden seed: correct implementations written differently from the
course's reference (float32 with a small clamp, a mid-point approximation in the tails, one mask call per
case, the alternatives of ``tests/fairness_alternatives.py`` for every homework) earn every point of the
sub-checks they answer, over many hidden seeds, in this process (``verdict.grade_here`` /
``verdict.subchecks`` on those parts only; the training functions are stubbed out, so each run is fast).
Wrong implementations still lose them (tests/test_hwN.py hold the lists of wrong ones at the real seed).
The long sweep, training functions in quick mode included: ``tools/seed_sweep.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fairness_alternatives import FIT_NAMES, VARIANTS, logistic_clamped, logistic_midpoint, namespace

from deepul_helpers.autograde.grade import load_verdict
from deepul_helpers.autograde.verdict import grade_here, notebook_namespace, subchecks

REPO = Path(__file__).resolve().parents[1]
SEEDS = list(range(50))


@pytest.fixture(scope="module")
def hw1():
    return load_verdict(REPO / "grading" / "verdicts" / "hw1_autoregressive.py")


def _question(verdict, grade_id):
    (q,) = [q for q in verdict.QUESTIONS if q.grade_id == grade_id]
    return q


def _unfit(*args, **kwargs):
    raise NotImplementedError


# ----------------------------------------------------------------------------- hw1 question 1(a)


@pytest.mark.parametrize("impl", [logistic_clamped, logistic_midpoint], ids=lambda f: f.__name__)
def test_hw1_q1a_correct_float32_formulas_pass_at_every_seed(hw1, impl):
    q = _question(hw1, "q1_tests")
    ns = {"logistic_mixture_log_probs": impl, "q1_fit": _unfit}
    lost = {}
    for seed in SEEDS + [hw1.HIDDEN_SEED]:
        points, messages = grade_here(q, ns, seed)
        if points != q.points - 2:  # the two stubbed fits lose their points, nothing else may
            lost[seed] = [m for m in messages if "q1_fit" not in m]
    assert not lost, lost


def test_hw1_q1a_unclamped_sigmoid_difference_is_not_finite(hw1):
    """What "must stay finite" means: log(sigmoid(b) - sigmoid(a)) without a clamp gives -inf where every
    component is far from the value, at every seed, and loses exactly that sub-check's 0.25 point."""
    q = _question(hw1, "q1_tests")

    def unclamped(x, logit_weights, means, log_scales, levels):
        xf = x.float().unsqueeze(-1)
        inv_s = torch.exp(-log_scales)
        up = torch.where(xf >= levels - 1, torch.ones_like(xf), torch.sigmoid((xf + 0.5 - means) * inv_s))
        lo = torch.where(xf <= 0, torch.zeros_like(xf), torch.sigmoid((xf - 0.5 - means) * inv_s))
        return torch.logsumexp(F.log_softmax(logit_weights, -1) + torch.log(up - lo), -1)

    for seed in SEEDS[:10]:
        points, messages = grade_here(q, {"logistic_mixture_log_probs": unclamped, "q1_fit": _unfit}, seed)
        assert points <= q.points - 2 - 0.25, (seed, messages)  # (it may also underflow on moderate inputs)
        assert any("sharp" in m and "NaN or inf" in m for m in messages), (seed, messages)


# ----------------------------------------------------------------------------- hw1 question 3 masks


def test_hw1_q3_one_failing_colour_case_keeps_the_other(hw1):
    """Each hidden mask case is its own attempt: an error in one case costs that case only."""
    q = _question(hw1, "q3_tests")
    ns = notebook_namespace(REPO / "solutions" / "hw1_autoregressive" / "hw1.ipynb")
    ref = ns["pixelcnn_mask"]

    def fails_on_colour_b(mask_type, in_channels, out_channels, kernel_size, color_channels=1):
        if color_channels == 3 and mask_type == "B":
            raise RuntimeError("not written yet")
        return ref(mask_type, in_channels, out_channels, kernel_size, color_channels)

    for seed in SEEDS[:5]:
        points, messages = grade_here(q, {**ns, "pixelcnn_mask": fails_on_colour_b, "q3_fit": _unfit}, seed)
        assert points == pytest.approx(q.points - 2 - 1.0), (seed, messages)  # colour B's half of 2 points
        assert sum("pixelcnn_mask" in m for m in messages) == 1, messages


# ----------------------------------------------------------------------------- the grade does not depend on layout


def grader_namespace(nb, source_path, required) -> tuple[dict, list]:
    """What the grader's sandbox loads from a student's notebook (``cells.solution_code``: setup cell,
    then the definitions of every unlocked code cell), here in this process."""
    import nbformat

    from deepul_helpers.autograde import cells

    source = cells.SourceNotebook.read(source_path)
    code = cells.solution_code(nbformat.from_dict(nb), source, set(required))
    ns = {**cells.PARAMETERS, "device": "cpu"}
    exec(compile(source.setup_source, "<setup>", "exec"), ns)
    for label, src in code.cells:
        exec(compile(src, f"<{label}>", "exec"), ns)
    return ns, code.cells


def test_hw1_helper_classes_in_an_extra_cell_score_the_same(hw1):
    """The reference's model classes moved out of q1_solution_b into a new cell above it (the layout
    "feel free to add cells" invites), and the run cell below it left in place: question 1 still gets
    full marks, and the run cell (``q1 = helper.run_q1(...)``, a training run) is not loaded."""
    import ast

    import nbformat

    from deepul_helpers.autograde import cells

    path = REPO / "solutions" / "hw1_autoregressive" / "hw1.ipynb"
    nb = nbformat.read(path, as_version=4)
    k = next(i for i, c in enumerate(nb.cells) if cells.grade_id(c) == "q1_solution_b")
    tree = ast.parse(nb.cells[k].source)
    classes = [s for s in tree.body if isinstance(s, ast.ClassDef)]
    assert [c.name for c in classes] == ["HistogramModel", "LogisticMixtureModel"]
    extra = "\n\n".join(ast.get_source_segment(nb.cells[k].source, c) for c in classes)
    extra = "\n".join("    " + line for line in f"import math\n\nQ1_COMPONENTS = 4\n\n{extra}".splitlines())
    nb.cells[k].source = ast.unparse(ast.Module([s for s in tree.body if not isinstance(s, ast.ClassDef)], []))
    nb.cells.insert(k, nbformat.v4.new_code_cell(extra))  # every line indented: Jupyter runs it as it is
    q = _question(hw1, "q1_tests")
    ns, loaded = grader_namespace(nb, path, {n for q in hw1.QUESTIONS for n in q.requires})
    assert "HistogramModel" in ns and "LogisticMixtureModel" in ns
    assert not any("run_q" in src for _, src in loaded), "a run cell was loaded"
    points, messages = grade_here(q, ns, hw1.HIDDEN_SEED)
    assert points == q.points, messages


# ----------------------------------------------------------------------------- every homework's components


HOMEWORKS = ["hw1_autoregressive", "hw2_flows", "hw3_latent_variable", "hw4_implicit", "hw5_self_supervised"]
SWEEP = list(range(20))


@pytest.mark.parametrize("assignment", HOMEWORKS)
def test_reference_components_score_the_same_at_every_seed(assignment):
    """The reference solution (float32, as a student's) with its training functions stubbed out earns the
    same points on every component sub-check at 20 other hidden seeds as at the real one: no tolerance or
    hidden input of a component check makes a correct answer's grade depend on the seed. (Training
    sub-checks are judged on their contract in quick mode; the closing note lists them.)"""
    verdict = load_verdict(REPO / "grading" / "verdicts" / f"{assignment}.py")
    ns = notebook_namespace(next((REPO / "solutions" / assignment).glob("*.ipynb")))
    changed = {}
    for q in verdict.QUESTIONS:
        stubbed = {**ns, **{r: _unfit for r in q.requires if r.endswith("_fit") or r in ("q4_timings", "q4_answers")}}
        base, base_messages = grade_here(q, stubbed, verdict.HIDDEN_SEED)
        assert all("fit" in m or "q4_" in m for m in base_messages), base_messages  # only the stubs lose points
        for seed in SWEEP:
            points, messages = grade_here(q, stubbed, seed)
            if points != base:
                changed[(q.grade_id, seed)] = [m for m in messages if m not in base_messages]
    assert not changed, changed


COMPONENT_VARIANTS = [(a, v) for a, vs in VARIANTS.items() for v in vs if v not in ("reference", "lr / 4")]
STUBBED = FIT_NAMES | {"q4_timings"}  # q4_timings: a second of timing per call; its checks are on its own ratios


@pytest.mark.parametrize(("assignment", "variant"), COMPONENT_VARIANTS)
def test_alternative_components_pass_every_sub_check_at_every_seed(assignment, variant):
    """Every component sub-check (its own line in the judge) of a correct implementation written differently
    (float32, other formulas, loops, a queue filled one key at a time) passes at 10 hidden seeds and the real
    one; only the stubbed training functions' sub-checks may fail."""
    verdict = load_verdict(REPO / "grading" / "verdicts" / f"{assignment}.py")
    ns = namespace(assignment, variant)
    failed = {}
    for q in verdict.QUESTIONS:
        stubs = [r for r in q.requires if r in STUBBED]
        stubbed = {**ns, **{r: _unfit for r in stubs}}
        for seed in SEEDS[:10] + [verdict.HIDDEN_SEED]:
            _, _, done = subchecks(q, stubbed, seed)
            assert done, q.grade_id
            bad = [t for t, _, ok in done if not ok and not any(t.startswith(f) for f in stubs)]
            if bad:
                failed[(q.grade_id, seed)] = bad
    assert not failed, failed


def test_subchecks_records_each_line_of_the_judge(hw1):
    """What the sweep counts: one entry per sub-check, in the judge's order, a raise as one failed entry."""
    q = _question(hw1, "q1_tests")
    points, _, done = subchecks(q, {"logistic_mixture_log_probs": logistic_clamped, "q1_fit": _unfit}, 0)
    assert [ok for _, _, ok in done] == [True, True, True, False, False]
    assert [p for _, p, _ in done] == [1.5, 0.25, 0.25, 0.0, 0.0] and points == 2.0
    assert done[3][0].startswith("q1_fit(model='histogram') raised")


def test_the_homework_report_does_not_call_a_better_model_outside_the_tolerance(tmp_path, monkeypatch):
    from deepul_helpers.homework import kit

    monkeypatch.delenv("DEEPUL_QUICK", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    run = kit.start("hw1_autoregressive", quick=False, out=tmp_path)
    row = kit.Expected("q1", "1d_a", loss=2.6271, tol=0.02, seconds=5, variant="histogram")
    assert "outside the tolerance" in run.report(row, 2.70)
    better = run.report(row, 2.55)
    assert "outside" not in better and "lower than the reference" in better
