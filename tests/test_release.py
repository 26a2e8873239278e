"""``deepul release``: nbgrader strips solutions and hidden tests, reproducibly; committed releases are fresh."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from deepul_helpers.autograde import release as rel

FIXTURES = Path(__file__).parent / "fixtures" / "hw0_release_fixture" / "solutions"
FIXTURE = "hw0_release_fixture"
pytestmark = pytest.mark.xdist_group("release")  # the module fixture releases once
STUB_LINES = ("# YOUR CODE HERE", "raise NotImplementedError()")
# Text that exists only inside solution regions, hidden-test regions or whole-cell solutions of the fixture.
SECRETS = ("doubled_by_the_reference", "hidden_q1_marker", "square_solution_marker", "x + x")


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """The fixture released twice into two folders."""
    a, b = tmp_path_factory.mktemp("release_a"), tmp_path_factory.mktemp("release_b")
    rel.release([FIXTURE], source_dir=FIXTURES, release_dir=a)
    rel.release([FIXTURE], source_dir=FIXTURES, release_dir=b)
    return a, b


def _nb_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_release_is_byte_identical_when_run_twice(released):
    a, b = released
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b == [Path(FIXTURE) / "hw0.ipynb"]
    assert (a / files_a[0]).read_bytes() == (b / files_b[0]).read_bytes()


def test_release_strips_solutions_and_hidden_tests(released):
    path = released[0] / FIXTURE / "hw0.ipynb"
    text = _nb_text(path)
    for secret in SECRETS + rel.DELIMITERS:
        assert secret not in text, f"{secret!r} leaked into the release"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    # Both solution cells carry nbgrader's placeholder; the given docstring of q1 stays.
    for gid in ("q1_solution", "q2_solution"):
        assert all(line in cells[gid].source for line in STUB_LINES), cells[gid].source
    assert '"""x: np.ndarray of any shape' in cells["q1_solution"].source
    assert cells["q3_answer"].source == "YOUR ANSWER HERE"
    # The visible test stays, with its points; outputs and counts are cleared.
    assert "double(np.arange(3))" in cells["q1_tests"].source
    assert cells["q1_tests"].metadata["nbgrader"]["points"] == 2
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    # The source still has everything (the release did not edit it).
    src = _nb_text(FIXTURES / FIXTURE / "hw0.ipynb")
    assert all(s in src for s in SECRETS)


def test_check_reports_stale_and_missing_release(released, tmp_path):
    dest = tmp_path / "homeworks"
    shutil.copytree(released[0], dest)
    assert rel.check([FIXTURE], source_dir=FIXTURES, release_dir=dest) == []
    nb_path = dest / FIXTURE / "hw0.ipynb"
    data = json.loads(nb_path.read_text())
    data["cells"][0]["source"] = ["# an edited title\n"]
    nb_path.write_text(json.dumps(data, indent=1) + "\n")
    (dest / FIXTURE / "orphan.ipynb").write_text(nb_path.read_text())
    problems = rel.check([FIXTURE], source_dir=FIXTURES, release_dir=dest)
    assert any("stale" in p and "hw0.ipynb" in p for p in problems), problems
    assert any("orphan.ipynb has no source" in p for p in problems), problems
    nb_path.unlink()
    assert any("missing" in p for p in rel.check([FIXTURE], source_dir=FIXTURES, release_dir=dest))


def test_cli_check_exit_codes(released, tmp_path, capsys):
    args = argparse.Namespace(assignments=[FIXTURE], check=True, db=None, source=str(FIXTURES),
                              dest=str(released[0]))
    assert rel.main(args) == 0 and "release is up to date" in capsys.readouterr().out
    args.dest = str(tmp_path / "empty")
    assert rel.main(args) == 1 and "stale: " in capsys.readouterr().out
    args.assignments = ["hw_nonexistent"]
    assert rel.main(args) == 1 and "unknown assignment" in capsys.readouterr().out


def test_leak_checker_catches_a_leaked_hidden_test():
    src = nbformat.read(FIXTURES / FIXTURE / "hw0.ipynb", as_version=4)
    leaked = nbformat.read(FIXTURES / FIXTURE / "hw0.ipynb", as_version=4)
    for c in leaked.cells:  # a release that forgot to strip anything
        c.source = c.source.replace("### BEGIN HIDDEN TESTS\n", "").replace("### END HIDDEN TESTS", "")
    problems = rel.leak_problems(src, leaked, "\n".join(STUB_LINES), "YOUR ANSWER HERE")
    assert any("HIDDEN TESTS region reached the release" in p for p in problems), problems
    assert any("lacks the placeholder" in p for p in problems), problems
    # A whole-cell solution (no delimiters) that reached the release is caught too.
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in leaked.cells}
    cells["q2_solution"].source += "\n# YOUR CODE HERE\nraise NotImplementedError()"
    problems = rel.leak_problems(src, leaked, "\n".join(STUB_LINES), "YOUR ANSWER HERE")
    assert any("SOLUTION cell region reached the release" in p and "square" in p for p in problems), problems


def test_solution_region_outside_a_solution_cell_is_refused(tmp_path):
    nb = new_notebook(cells=[new_code_cell("x = 1\n### BEGIN SOLUTION\nsecret = 2\n### END SOLUTION")])
    (tmp_path / "hw9_bad").mkdir()
    nbformat.write(nb, tmp_path / "hw9_bad" / "hw9.ipynb")
    with pytest.raises(rel.ReleaseError) as err:
        rel.release(["hw9_bad"], source_dir=tmp_path, release_dir=tmp_path / "out")
    assert str(err.value).startswith("nbgrader generate_assignment failed for 'hw9_bad': RuntimeError: Solution region")
    assert not (tmp_path / "out" / "hw9_bad" / "hw9.ipynb").exists()


def test_bad_input_gets_a_clear_error(tmp_path):
    (tmp_path / "hw8_broken").mkdir()
    (tmp_path / "hw8_broken" / "hw8.ipynb").write_text('{"cells": [')
    with pytest.raises(rel.ReleaseError, match="cannot read the source notebook .*hw8.ipynb"):
        rel.release(["hw8_broken"], source_dir=tmp_path, release_dir=tmp_path / "out")
    with pytest.raises(rel.ReleaseError, match="unknown assignment.*'hw7'.*known: hw8_broken"):
        rel.release(["hw7"], source_dir=tmp_path, release_dir=tmp_path / "out")


# Every committed release is checked fresh and leak-free by tests/test_assignments.py (one contract test
# over every assignment); this file tests the release machinery itself.
