"""``deepul validate``: visible checks scored per test cell, problems reported, limits enforced."""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from deepul_helpers.autograde import release as rel
from deepul_helpers.autograde import validate as val

FIXTURES = Path(__file__).parent / "fixtures" / "hw0_release_fixture" / "solutions"
FIXTURE = "hw0_release_fixture"
pytestmark = pytest.mark.xdist_group("validate")  # the module fixture releases once


@pytest.fixture(scope="module")
def homeworks(tmp_path_factory):
    """A release folder holding the fixture's release (as homeworks/ would)."""
    dest = tmp_path_factory.mktemp("homeworks")
    rel.release([FIXTURE], source_dir=FIXTURES, release_dir=dest)
    return dest


def _student_copy(homeworks, tmp_path, edit=None) -> Path:
    """A student's notebook at <tmp>/<assignment>/hw0.ipynb, edited by ``edit(nb)``."""
    folder = tmp_path / FIXTURE
    folder.mkdir()
    nb = nbformat.read(homeworks / FIXTURE / "hw0.ipynb", as_version=4)
    if edit is not None:
        edit(nb)
    nbformat.write(nb, folder / "hw0.ipynb")
    return folder / "hw0.ipynb"


def _cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _by_id(report):
    return {c.grade_id: c for c in report.checks}


def test_unanswered_release_earns_nothing(homeworks, tmp_path):
    report = val.validate(_student_copy(homeworks, tmp_path), release_dir=homeworks, timeout_s=120)
    checks = _by_id(report)
    assert (report.total, report.max_total) == (0, 3)
    assert checks["q1_tests"].status == "not answered"
    assert checks["q2_tests"].status == "not answered" and "square" in checks["q2_tests"].message
    assert checks["q3_answer"].status == "by hand"
    assert "hidden tests" in report.format()


def test_partial_answer_tampering_deletion_and_a_crashing_cell(homeworks, tmp_path):
    def edit(nb):
        _cell(nb, "q1_solution").source = "def double(x):\n    return 2 * x"
        _cell(nb, "q2_solution").source = "def square(x):\n    return x + 1"  # wrong
        _cell(nb, "q2_tests").source = "pass"  # an attempt to pass q2 by editing its test
        nb.cells.insert(3, new_code_cell("1 / 0"))
        nb.cells.remove(_cell(nb, "parameters"))  # deleted: reported
        q1 = _cell(nb, "q1_tests")
        nb.cells.append(nbformat.from_dict(dict(q1, id="dup")))  # a duplicated test cell counts once
        nb.cells[nb.cells.index(q1)] = new_markdown_cell(q1.source, metadata=q1.metadata)  # turned to markdown
    report = val.validate(_student_copy(homeworks, tmp_path, edit), release_dir=homeworks, timeout_s=120)
    checks = _by_id(report)
    assert checks["q1_tests"].points == 2 and checks["q1_tests"].status == "passed"
    assert checks["q2_tests"].points == 0 and "AssertionError" in checks["q2_tests"].message
    assert (report.total, report.max_total) == (2, 3)
    text = "\n".join(report.problems)
    assert "changed the locked cell 'q2_tests'" in text
    assert "cell 3 ('1 / 0') raised ZeroDivisionError" in text
    assert "no cell is tagged 'parameters'" in text
    assert "test cell 'q1_tests' appears more than once" in text
    assert "changed the locked cell 'q1_tests'" in text


def test_full_solution_passes_and_cli_exit_code(homeworks, tmp_path, capsys):
    def edit(nb):
        _cell(nb, "q1_solution").source = "def double(x):\n    return x * 2"
        _cell(nb, "q2_solution").source = "def square(x):\n    return x ** 2"
    path = _student_copy(homeworks, tmp_path, edit)
    args = argparse.Namespace(notebook=str(path), timeout=120.0, cell_timeout=60, keep=str(tmp_path / "run.ipynb"),
                              release=str(homeworks / FIXTURE / "hw0.ipynb"), out=None)
    # main() looks for the release in the course's homeworks/, which has no fixture: --release names it.
    assert val.main(args) == 0
    out = capsys.readouterr().out
    assert "visible checks: 3/3 points" in out
    assert (tmp_path / "run.ipynb").exists()


def test_deleted_test_cell_and_misnamed_function_are_reported(homeworks, tmp_path):
    def edit(nb):
        nb.cells.remove(_cell(nb, "q2_tests"))
        _cell(nb, "q1_solution").source = "def twice(x):\n    return 2 * x"  # misnamed
        nb.cells.append(new_code_cell("import os\nos._exit(3)"))  # the kernel dies at the end
    report = val.validate(_student_copy(homeworks, tmp_path, edit), release_dir=homeworks, timeout_s=120)
    checks = _by_id(report)
    assert checks["q2_tests"].status == "missing" and checks["q2_tests"].max_points == 1
    assert checks["q1_tests"].status == "failed" and "double" in checks["q1_tests"].message
    assert (report.total, report.max_total) == (0, 3)
    text = "\n".join(report.problems)
    assert "'q2_tests' of the release is missing" in text
    assert "'double' is not defined" in text
    assert "the run stopped in cell 10 ('import os'): DeadKernelError" in text


def test_time_limits_per_cell_and_whole_notebook(homeworks, tmp_path):
    def edit(nb):
        _cell(nb, "q1_solution").source = "def double(x):\n    return 2 * x"
        nb.cells.insert(3, new_code_cell("import time\nwhile True:\n    time.sleep(0.05)"))
    path = _student_copy(homeworks, tmp_path, edit)
    report = val.validate(path, release_dir=homeworks, timeout_s=120, cell_timeout_s=2)
    assert _by_id(report)["q1_tests"].status == "passed"  # execution went on after the interrupted cell
    assert any("per-cell limit of 2 s" in p for p in report.problems), report.problems
    report = val.validate(path, release_dir=homeworks, timeout_s=6, cell_timeout_s=300)
    assert any("did not finish within 6 s" in p for p in report.problems), report.problems
    assert report.total == 0


def test_malformed_or_missing_notebook_is_a_clear_fatal_error(tmp_path):
    bad = tmp_path / "hw0.ipynb"
    bad.write_text('{"cells": [')
    report = val.validate(bad)
    assert report.fatal and "not a readable notebook" in report.problems[0]
    report = val.validate(tmp_path / "nope.ipynb")
    assert report.fatal and "no notebook at" in report.problems[0]
    args = argparse.Namespace(notebook=str(bad), timeout=10.0, cell_timeout=5, keep=None)
    assert val.main(args) == 2


def test_a_renamed_copy_elsewhere_is_still_checked_against_its_release(homeworks, tmp_path):
    """The release is found by the nbgrader cells the notebook carries, not by its folder or file name:
    a copy renamed in another folder with a test cell replaced by ``pass`` is still caught."""
    def edit(nb):
        _cell(nb, "q1_solution").source = "def double(x):\n    return 2 * x"
        _cell(nb, "q2_tests").source = "pass"
    path = _student_copy(homeworks, tmp_path, edit)
    moved = tmp_path / "Downloads" / "my homework (1).ipynb"
    moved.parent.mkdir()
    path.rename(moved)
    report = val.validate(moved, release_dir=homeworks, timeout_s=120)
    assert any("changed the locked cell 'q2_tests'" in p for p in report.problems), report.problems
    assert _by_id(report)["q2_tests"].status == "not answered"  # the released test ran, not `pass`
    # Nothing to match it against: said, not silently skipped.
    report = val.validate(moved, release_dir=tmp_path / "Downloads", timeout_s=120)
    assert any("NOT checked" in p for p in report.problems), report.problems


def test_syntax_errors_layout_and_plots(homeworks, tmp_path):
    """A syntax error is named by its cell and line; a helper in an extra cell (all lines indented) is
    loaded as the grader loads it; the run's plots go beside the notebook (its out/), or to --out."""
    def edit(nb):
        _cell(nb, "q1_solution").source = "def double(x):\n    return 2 * x +\n"
        _cell(nb, "q2_solution").source = "def square(x):\n    return _mul(x, x)"
        nb.cells.insert(2, new_code_cell("    def _mul(a, b):\n        return a * b\n    run = _mul(3, 4)\n"))
        nb.cells.append(new_code_cell("import os, pathlib\npathlib.Path(os.environ['DEEPUL_OUT']).mkdir(parents=True)\n"
                                      "(pathlib.Path(os.environ['DEEPUL_OUT']) / 'plot.png').write_bytes(b'x')"))
    path = _student_copy(homeworks, tmp_path, edit)
    report = val.validate(path, release_dir=homeworks, timeout_s=120)
    text = "\n".join(report.problems)
    assert "syntax error in your cell q1_solution, line 2" in text, text
    assert "ipykernel" not in text and "/tmp" not in text
    assert _by_id(report)["q2_tests"].status == "passed"
    assert "the grader does not load from" not in text  # _mul is a def: loaded
    assert (path.parent / "out" / "plot.png").exists()
    report = val.validate(path, release_dir=homeworks, timeout_s=120, out=tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "plot.png").exists()


def test_a_definition_the_grader_would_not_load_is_reported(homeworks, tmp_path):
    def edit(nb):
        _cell(nb, "q1_solution").source = "if True:\n    def double(x):\n        return 2 * x"
    report = val.validate(_student_copy(homeworks, tmp_path, edit), release_dir=homeworks, timeout_s=120)
    assert _by_id(report)["q1_tests"].status == "passed"  # Jupyter runs it ...
    assert any("'double'" in p and "not" in p for p in report.problems), report.problems  # ... the grader would not
