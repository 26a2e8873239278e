"""The contract every assignment keeps (CONTRIBUTING, "Homework and how it is graded"), checked once
for every folder under ``solutions/`` and for the template homework (``templates/homework/``):

- the verdict's questions and points are the notebook's graded test cells;
- the parameters and setup cells are as CONTRIBUTING says; solution cells hold only definitions and
  define every name a question requires; hidden tests live in the verdict only;
- the release is fresh and leaks nothing;
- the expected numbers live once, in the runner's ``EXPECTED`` table: the notebook states each row's
  ``markdown()`` line and no other bold nats/dim figure; every runner has the one runner signature;
- the verdict imports neither the reference models nor the homework runners at load time;
- through the real grading (``autograde``, verdict only): the reference solution scores full marks
  and the blank release scores 0.

What is specific to one homework (a wrong implementation loses exactly its points) stays in
``tests/test_hwN.py``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from deepul_helpers.autograde import release as rel
from deepul_helpers.autograde.grade import autograde, load_verdict
from deepul_helpers.homework import kit

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "templates" / "homework"
REAL = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and any(p.glob("*.ipynb")))
TEMPLATE_NAMES = sorted(p.name for p in (TEMPLATE / "solutions").iterdir() if p.is_dir())
pytestmark = pytest.mark.grading


@dataclass
class Assignment:
    name: str
    root: Path  # the course root: the repository, or a scratch copy of the template
    source: Path
    release: Path
    verdict_path: Path
    real: bool

    @property
    def cells(self):
        return nbformat.read(self.source, as_version=4).cells

    @property
    def verdict(self):
        return load_verdict(self.verdict_path)

    @property
    def runner(self):
        """The runner module the setup cell imports (``from deepul_helpers.homework import hwN as helper``)."""
        setup = next(c for c in self.cells if _meta(c).get("grade_id") == "setup")
        for node in ast.parse(setup.source).body:
            if isinstance(node, ast.ImportFrom) and node.module == "deepul_helpers.homework":
                return importlib.import_module(f"deepul_helpers.homework.{node.names[0].name}")
        return None


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


# one xdist group per assignment: its tests share one release and one grading run, in one worker
@pytest.fixture(scope="module", params=[pytest.param(n, marks=pytest.mark.xdist_group(f"assignment-{n}"))
                                        for n in REAL + TEMPLATE_NAMES])
def assignment(request, tmp_path_factory) -> Assignment:
    name = request.param
    if name in REAL:
        root = ROOT
        (source,) = sorted((root / "solutions" / name).glob("*.ipynb"))
        return Assignment(name, root, source, root / "homeworks" / name / source.name,
                          root / "grading" / "verdicts" / f"{name}.py", real=True)
    root = tmp_path_factory.mktemp("course")  # the template as a course of its own, released here
    for part in ("solutions", "grading"):
        shutil.copytree(TEMPLATE / part, root / part)
    (source,) = sorted((root / "solutions" / name).glob("*.ipynb"))
    rel.release([name], source_dir=root / "solutions", release_dir=root / "homeworks")
    return Assignment(name, root, source, root / "homeworks" / name / source.name,
                      root / "grading" / "verdicts" / f"{name}.py", real=False)


def test_verdict_points_equal_the_test_cells(assignment):
    cells = {_meta(c)["grade_id"]: _meta(c).get("points") for c in assignment.cells if _meta(c).get("grade")}
    verdict = assignment.verdict
    assert {q.grade_id: q.points for q in verdict.QUESTIONS} == cells
    assert isinstance(verdict.HIDDEN_SEED, int)
    for c in assignment.cells:
        if _meta(c).get("grade"):
            assert _meta(c).get("locked") and _meta(c)["grade_id"].endswith("_tests") and _meta(c)["points"] > 0


def test_parameters_and_setup_cells(assignment):
    code = [c for c in assignment.cells if c.cell_type == "code"]
    params, setup = code[0], code[1]
    assert params.metadata.get("tags") == ["parameters"] and _meta(params).get("locked")
    assert params.source.strip().splitlines() == ["quick = False", "seed = 0", 'device = "auto"']
    assert _meta(setup).get("grade_id") == "setup" and _meta(setup).get("locked")
    for node in ast.parse(setup.source).body:
        assert isinstance(node, (ast.Import, ast.ImportFrom)), "the setup cell holds imports only"
    assert all(not c.get("outputs") for c in code), "committed notebooks carry no outputs"


def test_solution_cells_hold_definitions_and_define_what_each_question_requires(assignment):
    defined = set()
    for c in assignment.cells:
        if not _meta(c).get("solution"):
            continue
        assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source, _meta(c)["grade_id"]
        for node in ast.parse(c.source).body:
            assert isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign)), \
                f"{_meta(c)['grade_id']}: top-level {type(node).__name__}"
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for q in assignment.verdict.QUESTIONS:  # a solution never uses a reference that a question forbids
            assert not any(f in c.source for f in q.forbidden), (_meta(c)["grade_id"], q.forbidden)
    for q in assignment.verdict.QUESTIONS:
        assert set(q.requires) <= defined, (q.grade_id, set(q.requires) - defined)


def test_hidden_tests_live_in_the_verdict_only(assignment):
    for c in assignment.cells:
        assert "HIDDEN TESTS" not in c.source, f"{_meta(c).get('grade_id')}: move hidden tests into the verdict"


def test_release_is_fresh_and_leaks_nothing(assignment):
    if assignment.real:
        problems = rel.check([assignment.name])
        assert problems == [], "\n".join(problems) + f"\nrun: deepul release {assignment.name}"
    cfg = rel.load_config()
    released = nbformat.read(assignment.release, as_version=4)
    text = assignment.release.read_text()
    assert not [d for d in rel.DELIMITERS if d in text], f"{assignment.release} holds a solution/hidden-test delimiter"
    assert rel.leak_problems(nbformat.read(assignment.source, as_version=4), released,
                             cfg.ClearSolutions.code_stub["python"], cfg.ClearSolutions.text_stub) == []
    # the grader restores test cells from the source: the untouched release must match them exactly
    tests = {_meta(c)["grade_id"]: c.source for c in assignment.cells if _meta(c).get("grade")}
    assert {_meta(c)["grade_id"]: c.source for c in released.cells if _meta(c).get("grade")} == tests
    # a student can run every released cell before writing anything: the stubs raise only when called
    ns: dict = {}
    for c in released.cells:
        if _meta(c).get("grade_id") == "setup" or _meta(c).get("solution"):
            exec(compile(c.source, _meta(c)["grade_id"], "exec"), ns)
    assert all(set(q.requires) <= set(ns) for q in assignment.verdict.QUESTIONS)


def test_verdict_imports_no_reference_and_no_runner(assignment):
    """The probe process loads the verdict beside the student's code: a module-level import of a
    reference model would hand it to the student unnoticed; a runner is student-facing code that
    must be free to change without changing a grade."""
    tree = ast.parse(assignment.verdict_path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert not any(n.startswith("deepul_helpers.homework") for n in names), ast.unparse(node)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            assert "deepul_helpers.models" not in ast.unparse(node), ast.unparse(node)
    for node in ast.walk(tree):  # only public APIs of the package: no private names, no patched internals
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("deepul_helpers"):
            assert not any(a.name.startswith("_") for a in node.names), ast.unparse(node)
        if isinstance(node, ast.Attribute):
            assert node.attr != "__dict__", f"line {node.lineno}: a verdict does not patch objects' internals"


def test_expected_numbers_live_in_the_runner_table_once(assignment):
    runner = assignment.runner
    assert runner is not None, "the setup cell imports the runner: from deepul_helpers.homework import hwN as helper"
    assert runner.ASSIGNMENT == assignment.name
    text = "\n".join(c.source for c in assignment.cells if c.cell_type == "markdown")
    stated = {r.markdown() for r in runner.EXPECTED.values()}
    for line in stated:
        assert line in text, f"the notebook must state the runner's row verbatim: {line}"
    for line in re.findall(r"^.*\*\*[0-9.]+ nats/dim\*\*.*$", text, flags=re.M):
        assert line in stated, f"a figure in the notebook that is not a row of {runner.__name__}.EXPECTED: {line}"
    header = assignment.cells[0].source  # the overview table: "| k | ... | ~N s ... |"
    for k, row in re.findall(r"^\| (\d+) \|(.*)$", header, flags=re.M):
        stated, seconds = re.search(r"~(\d+) s", row), [r.seconds for r in kit.rows(runner.EXPECTED, f"q{k}")]
        if stated and seconds:
            assert int(stated.group(1)) == round(sum(seconds)), f"question {k}: the overview's time is not the table's"
    run_cells = "\n".join(c.source for c in assignment.cells if c.cell_type == "code" and not _meta(c))
    for name, fn in vars(runner).items():
        if re.fullmatch(r"run_q\d+", name):
            params = inspect.signature(fn).parameters
            assert list(params)[1:] == ["quick", "seed", "device", "out"], name
            assert [params[k].default for k in ("quick", "seed", "device", "out")] == [None, 0, "auto", None], name
            assert f"helper.{name}(" in run_cells, f"no run cell calls helper.{name}"


def test_reference_scores_full_marks_and_the_blank_release_zero(assignment, tmp_path):
    subs = tmp_path / "submitted"
    for student, nb in (("reference", assignment.source), ("blank", assignment.release)):
        (subs / student / assignment.name).mkdir(parents=True)
        shutil.copy(nb, subs / student / assignment.name / nb.name)
    results = {r.student: r for r in autograde(
        assignment.name, subs, workers=2, timeout_s=400, db=f"sqlite:///{tmp_path / 'gradebook.db'}",
        out=tmp_path / "out", source_root=assignment.root, progress=False, run_notebook=False)}
    points = {q.grade_id: float(q.points) for q in assignment.verdict.QUESTIONS}
    assert results["reference"].scores == points, results["reference"].question_messages
    assert results["reference"].status != "flagged"
    assert results["blank"].total == 0


@pytest.mark.xdist_group(f"assignment-{TEMPLATE_NAMES[0]}")
def test_the_template_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    """The template, as a student runs it (quick mode, in this process): every code cell, the
    runner and the visible checks included."""
    monkeypatch.setenv("DEEPUL_OUT", str(tmp_path))
    (name,) = TEMPLATE_NAMES
    (source,) = sorted((TEMPLATE / "solutions" / name).glob("*.ipynb"))
    ns: dict = {}
    for c in nbformat.read(source, as_version=4).cells:
        if c.cell_type == "code":
            exec(compile(c.source, _meta(c).get("grade_id", "run cell"), "exec"), ns)
            ns["quick"] = True  # the parameters cell as papermill would set it
    assert sorted(p.name for p in (tmp_path / "hw0").iterdir()) == ["q1.png"]
