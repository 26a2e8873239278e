"""Write grades into the nbgrader gradebook (SQLite file or any SQLAlchemy URL, PostgreSQL included).

Only the trusted parent process writes, one transaction per student, right after that student
was graded: a crash loses nothing already graded. Rows follow nbgrader's own layout (assignment,
notebook, grade cells with their max score, solution/source cells, students, submissions, one
``Grade`` per test cell with ``auto_score``), so formgrader and ``nbgrader export`` work on it.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.utils import compute_checksum

from deepul_helpers.autograde.cells import SourceNotebook, grade_id, nbgrader_meta

ROSTER = Path("grading") / "roster.csv"  # relative to the course folder; optional
ROSTER_FIELDS = ("id", "first_name", "last_name", "email")  # as `nbgrader db student import` reads it


def default_url(source_root: str | Path | None = None) -> str:
    """``$DEEPUL_GRADEBOOK``, else SQLite at ``<course>/grading/out/gradebook.db`` (``source_root``: the
    course folder, by ``course.root``'s rule when None)."""
    from deepul_helpers.autograde import course

    if os.environ.get("DEEPUL_GRADEBOOK"):
        return os.environ["DEEPUL_GRADEBOOK"]
    return "sqlite:///" + str(course.root(source_root) / "grading" / "out" / "gradebook.db")


def read_roster(path: str | Path) -> dict[str, dict[str, str]]:
    """{student id: {first_name, last_name, email}} from a roster CSV (header ``id,first_name,last_name,email``,
    the format of ``nbgrader db student import``; only ``id`` is required); {} when ``path`` does not exist."""
    from deepul_helpers.autograde.course import CourseError

    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
        header = [h.strip() for h in (rows[0].keys() if rows else [])]
    if rows and "id" not in header:
        raise CourseError(f"the roster {path} has no 'id' column; its header must read "
                          f"{','.join(ROSTER_FIELDS)} (only id is required)")
    roster = {}
    for row in rows:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if row.get("id"):
            roster[row["id"]] = {k: row[k] for k in ROSTER_FIELDS[1:] if row.get(k)}
    return roster


def sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def ensure_alembic_on_path() -> None:
    """nbgrader's Gradebook runs the ``alembic`` command when it creates a new gradebook; put the
    interpreter's own bin folder (the venv's) on PATH so that it is found without an activated venv."""
    bindir = os.path.dirname(sys.executable)
    if shutil.which("alembic") is None and os.path.exists(os.path.join(bindir, "alembic")):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def open_gradebook(url: str, course_root: str | Path | None = None) -> Gradebook:
    """nbgrader's Gradebook at ``url`` for the course's id (the course folder ``course_root``, by
    ``course.root``'s rule when None; "deepul" when there is no course or no configuration)."""
    from deepul_helpers.autograde.course import course_id

    ensure_alembic_on_path()
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        course = course_id(course_root)
    except Exception:  # no course, or its configuration is missing or broken
        course = "deepul"
    return Gradebook(url, course_id=course)


class GradebookWriter:
    """Records one assignment's grades; ``write(result)`` after each student.

    Students get names for formgrader: from the course's roster ``grading/roster.csv`` when it lists them,
    else (a student new to the gradebook, or one with no name yet) the id as last name, so that formgrader's
    lists read "<id>, " instead of "None, None". Names already in the gradebook are kept when the roster is
    silent."""

    def __init__(self, url: str, assignment: str, source: SourceNotebook, course_root: str | Path | None = None):
        self.url, self.assignment, self.source, self.course_root = url, assignment, source, course_root
        from deepul_helpers.autograde import course

        folder = course.root_or_none(course_root)
        self.roster = read_roster(folder / ROSTER) if folder is not None else {}
        self.notebook = source.name[: -len(".ipynb")] if source.name.endswith(".ipynb") else source.name
        # The grader's messages go into nbgrader's comments, which belong to solution cells: a question's
        # messages to the nearest solution cell above its test cell, general ones to the first solution cell.
        self.solutions: list[str] = []
        self.comment_cell: dict[str, str] = {}
        for cell in source.nb.cells:
            gid = grade_id(cell)
            if gid is not None and nbgrader_meta(cell).get("solution"):
                self.solutions.append(gid)
            elif gid in source.tests and self.solutions:
                self.comment_cell[gid] = self.solutions[-1]
        with open_gradebook(url, course_root) as gb:
            gb.update_or_create_assignment(assignment)
            gb.update_or_create_notebook(self.notebook, assignment)
            for cell in source.nb.cells:
                gid, meta = grade_id(cell), nbgrader_meta(cell)
                if gid is None:
                    continue
                if meta.get("grade"):
                    gb.update_or_create_grade_cell(gid, self.notebook, assignment, max_score=float(
                        meta.get("points", 0)), cell_type=cell.cell_type)
                if meta.get("solution"):
                    gb.update_or_create_solution_cell(gid, self.notebook, assignment)
                if meta.get("grade") or meta.get("solution") or meta.get("locked"):
                    gb.update_or_create_source_cell(gid, self.notebook, assignment, cell_type=cell.cell_type,
                                                    locked=bool(meta.get("locked")), source=cell.source,
                                                    checksum=compute_checksum(cell))

    def write(self, result) -> None:
        """Store ``result`` (a StudentResult): scores, review flags, the submission's timestamp."""
        with open_gradebook(self.url, self.course_root) as gb, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy autoflush warnings
            gb.update_or_create_student(result.student, **self.names(gb, result.student))
            stamp = result.timestamp or datetime.now(timezone.utc).replace(tzinfo=None)
            gb.update_or_create_submission(self.assignment, result.student, timestamp=stamp)
            for gid in self.source.tests:
                grade = gb.find_grade(gid, self.notebook, self.assignment, result.student)
                grade.auto_score = float(result.scores.get(gid, 0.0))
                grade.needs_manual_grade = gid in result.review
            for cell, text in self.comments(result).items():
                gb.find_comment(cell, self.notebook, self.assignment, result.student).auto_comment = text
            gb.db.commit()

    def names(self, gb, student: str) -> dict[str, str]:
        """The name fields to store for ``student``: the roster's, else the id as last name unless the
        gradebook already has a name."""
        if self.roster.get(student):
            return self.roster[student]
        try:
            known = gb.find_student(student)
        except MissingEntry:
            known = None
        if known is not None and (known.first_name or known.last_name):
            return {}
        return {"first_name": "", "last_name": student}

    def comments(self, result) -> dict[str, str]:
        """{solution cell: the grader's comment} for ``result``: status, each question's points and messages."""
        lines: dict[str, list[str]] = {c: [] for c in self.solutions}
        if not self.solutions:
            return {}
        lines[self.solutions[0]] += [f"deepul autograde: status {result.status}, total {result.total:g} / "
                                     f"{result.max_total:g}", *result.messages]
        for gid in self.source.tests:
            flag = " (flagged for review)" if gid in result.review else ""
            msgs = result.question_messages.get(gid, []) or ["ok"]
            lines[self.comment_cell.get(gid, self.solutions[0])].append(
                f"{gid}: {result.scores.get(gid, 0.0):g} / {self.source.tests[gid]:g}{flag}: " + "; ".join(msgs))
        return {c: "\n".join(v) for c, v in lines.items() if v}


def read_scores(url: str, assignment: str, notebook: str) -> dict[str, dict[str, float]]:
    """{student: {grade_id: auto_score}} as stored (for checks and shard merging)."""
    out: dict[str, dict[str, float]] = {}
    with open_gradebook(url) as gb:
        for sub in gb.assignment_submissions(assignment):
            nb = gb.find_submission_notebook(notebook, assignment, sub.student.id)
            out[sub.student.id] = {g.name: g.auto_score for g in nb.grades}
    return out
