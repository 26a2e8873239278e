"""Write grades into the nbgrader gradebook (SQLite file or any SQLAlchemy URL, PostgreSQL included).

Only the trusted parent process writes, one transaction per student, right after that student
was graded: a crash loses nothing already graded. Rows follow nbgrader's own layout (assignment,
notebook, grade cells with their max score, solution/source cells, students, submissions, one
``Grade`` per test cell with ``auto_score``), so formgrader and ``nbgrader export`` work on it.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.utils import compute_checksum

from deepul_helpers.autograde.cells import SourceNotebook, grade_id, nbgrader_meta


def default_url(source_root: str | Path = ".") -> str:
    """``$DEEPUL_GRADEBOOK``, else SQLite at ``<source_root>/grading/out/gradebook.db``."""
    if os.environ.get("DEEPUL_GRADEBOOK"):
        return os.environ["DEEPUL_GRADEBOOK"]
    return "sqlite:///" + str((Path(source_root) / "grading" / "out" / "gradebook.db").resolve())


def sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def ensure_alembic_on_path() -> None:
    """nbgrader's Gradebook runs the ``alembic`` command when it creates a new gradebook; put the
    interpreter's own bin folder (the venv's) on PATH so that it is found without an activated venv."""
    bindir = os.path.dirname(sys.executable)
    if shutil.which("alembic") is None and os.path.exists(os.path.join(bindir, "alembic")):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def open_gradebook(url: str) -> Gradebook:
    """nbgrader's Gradebook at ``url`` for the course's id (nbgrader's default course when the
    configuration is missing)."""
    from deepul_helpers.autograde.course import course_id

    ensure_alembic_on_path()
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        course = course_id()
    except Exception:  # the configuration is missing or broken
        course = "deepul"
    return Gradebook(url, course_id=course)


class GradebookWriter:
    """Records one assignment's grades; ``write(result)`` after each student."""

    def __init__(self, url: str, assignment: str, source: SourceNotebook):
        self.url, self.assignment, self.source = url, assignment, source
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
        with open_gradebook(url) as gb:
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
        with open_gradebook(self.url) as gb, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy autoflush warnings
            gb.update_or_create_student(result.student)
            stamp = result.timestamp or datetime.now(timezone.utc).replace(tzinfo=None)
            gb.update_or_create_submission(self.assignment, result.student, timestamp=stamp)
            for gid in self.source.tests:
                grade = gb.find_grade(gid, self.notebook, self.assignment, result.student)
                grade.auto_score = float(result.scores.get(gid, 0.0))
                grade.needs_manual_grade = gid in result.review
            for cell, text in self.comments(result).items():
                gb.find_comment(cell, self.notebook, self.assignment, result.student).auto_comment = text
            gb.db.commit()

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
