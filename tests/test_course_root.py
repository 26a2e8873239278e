"""One rule finds the course folder for every command (``course.root``), and the course's roster names students.

The rule: ``--course PATH``, else ``$DEEPUL_COURSE``, else the current folder or the first folder above it
holding ``grading/nbgrader_config.py`` and ``solutions/``; never the checkout the package is installed from.
A second clone of this repository with an edited solution is its own course: ``deepul release --check`` run
there reports it stale, while the same check in this checkout reports it fresh.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from deepul_helpers.autograde import course
from deepul_helpers.autograde import release as rel
from deepul_helpers.autograde.cells import SourceNotebook
from deepul_helpers.autograde.gradebook import GradebookWriter, open_gradebook, read_roster
from deepul_helpers.autograde.student import StudentResult

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "hw0_demo"
pytestmark = pytest.mark.xdist_group("release")


def _course(folder: Path) -> Path:
    (folder / "grading").mkdir(parents=True)
    (folder / "solutions").mkdir()
    (folder / "grading" / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\n"
                                                          "c.CourseDirectory.course_id = 'other'\n")
    return folder


def test_the_course_is_found_from_the_current_folder_then_the_flag_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(course.ENV, raising=False)
    a, b = _course(tmp_path / "a"), _course(tmp_path / "b")
    deep = a / "solutions" / "hw9" / "nested"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert course.root() == a.resolve()  # walks up to the first course folder
    assert course.course_id() == "other"  # ... and reads that course's configuration, not the installed one
    assert course.root(b) == b.resolve()  # the flag wins
    monkeypatch.setenv(course.ENV, str(b))
    assert course.root() == b.resolve()  # then the variable, over the current folder
    assert course.root(a) == a.resolve()  # the flag over the variable
    monkeypatch.setenv(course.ENV, str(a / "grading"))
    with pytest.raises(course.CourseNotFound, match=rf"\$DEEPUL_COURSE .*not a course folder.*did you mean {a}"):
        course.root()


def test_no_course_gives_a_message_saying_what_was_looked_for_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv(course.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert course.installed_root() == REPO  # the installed checkout is a course, and still no fallback to it
    with pytest.raises(course.CourseNotFound) as err:
        course.root()
    text = str(err.value)
    for part in (str(tmp_path), "grading/nbgrader_config.py", "solutions/", "--course", "DEEPUL_COURSE"):
        assert part in text, text
    env = {k: v for k, v in os.environ.items() if k != course.ENV}
    for argv in (["release", "--check"], ["autograde", "hw1_autoregressive", "--submissions", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-m", "deepul_helpers", *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "no course folder found" in proc.stdout + proc.stderr, (argv, proc)


def _smallest_assignment() -> str:
    return min(course.assignments(REPO / "solutions"), key=lambda a: course.source_notebook(a, REPO).stat().st_size)


@pytest.mark.skipif(not (REPO / ".git").exists() or not shutil.which("git"), reason="not a git checkout")
def test_release_check_in_a_second_clone_checks_that_clone(tmp_path, monkeypatch):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    name = _smallest_assignment()
    source = course.source_notebook(name, clone)
    nb = nbformat.read(source, as_version=4)
    nb.cells[0].source += "\n\nAn instructor's edit in the second clone."
    nbformat.write(nb, source)
    env = {k: v for k, v in os.environ.items() if k != course.ENV}
    proc = subprocess.run([sys.executable, "-m", "deepul_helpers", "release", "--check", name],
                          cwd=clone / "solutions", env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"stale: {clone / 'homeworks' / name}" in proc.stdout, proc.stdout  # the clone's release, not REPO's
    # The same check in the first checkout: fresh (its solutions are unedited).
    monkeypatch.delenv(course.ENV, raising=False)
    monkeypatch.chdir(REPO / "grading")
    assert rel.check([name]) == []
    # --course from an unrelated folder checks the clone.
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(assignments=[name], check=True, db=None, source=None, dest=None, course=str(clone))
    assert rel.main(args) == 1


def _result(student: str) -> StudentResult:
    return StudentResult(student=student, assignment="hw0_demo", scores={"q1_tests": 2.0, "q2_tests": 0.0},
                         max_scores={"q1_tests": 2.0, "q2_tests": 3.0})


def test_students_get_names_from_the_roster_else_their_id(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(FIXTURE, root)
    (root / "grading" / "roster.csv").write_text("id,first_name,last_name,email\n"
                                                 "alice,Alice,Liddell,alice@example.org\ncarol,,,\n")
    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    source = SourceNotebook.read(course.source_notebook("hw0_demo", root))
    writer = GradebookWriter(db, "hw0_demo", source, root)
    with open_gradebook(db, root) as gb:  # a name the instructor already gave stays when the roster is silent
        gb.update_or_create_student("dave", first_name="Dave", last_name="Bowman")
    for student in ("alice", "bob", "carol", "dave"):
        writer.write(_result(student))
    with open_gradebook(db, root) as gb:
        names = {s.id: (s.first_name, s.last_name, s.email) for s in gb.students}
    assert names == {"alice": ("Alice", "Liddell", "alice@example.org"), "bob": ("", "bob", None),
                     "carol": ("", "carol", None), "dave": ("Dave", "Bowman", None)}
    (root / "grading" / "roster.csv").write_text("student,name\nalice,Alice\n")
    with pytest.raises(course.CourseError, match="roster .* no 'id' column; its header must read "
                                                 "id,first_name,last_name,email"):
        read_roster(root / "grading" / "roster.csv")


def test_validate_follows_the_rule_and_says_when_there_is_no_course(tmp_path, monkeypatch):
    from deepul_helpers.autograde import validate as val

    monkeypatch.delenv(course.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "hw0.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    report = val.validate(path, course=tmp_path)  # a folder given that is not a course: said, nothing run
    assert report.fatal and "--course" in report.problems[0] and "not a course folder" in report.problems[0]
    report = val.validate(path, timeout_s=60, cell_timeout_s=30)  # no course at all: the visible checks still run
    assert not report.fatal, report.format()
    assert any("no course folder found" in p and "NOT checked" in p for p in report.problems), report.problems
