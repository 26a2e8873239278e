"""One student on the way through grading: what the stages of ``pipeline.STAGES`` read and write.

- :class:`Context`: everything a worker needs to grade any student of one assignment;
- :class:`StudentResult`: what comes out (scores, status, messages), for the gradebook,
  ``grades.csv`` and the feedback page;
- :class:`Grading`: one submission between the stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat

from deepul_helpers.autograde import cells, sandbox


@dataclass
class StudentResult:
    student: str
    assignment: str
    scores: dict[str, float]
    max_scores: dict[str, float]
    status: str = "graded"          # graded | review | flagged | missing | malformed | grader-error
    messages: list[str] = field(default_factory=list)
    question_messages: dict[str, list[str]] = field(default_factory=dict)
    review: list[str] = field(default_factory=list)     # grade_ids a human should look at
    claims: dict[str, bool] = field(default_factory=dict)  # in-notebook test passed?
    timestamp: datetime | None = None
    feedback: str | None = None
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return float(sum(self.scores.values()))

    @property
    def max_total(self) -> float:
        return float(sum(self.max_scores.values()))

    def add_question_message(self, grade_id: str, message: str) -> None:
        if message not in self.question_messages.setdefault(grade_id, []):
            self.question_messages[grade_id].append(message)


@dataclass(frozen=True)
class Context:
    """Everything a worker needs to grade any student of one assignment (plain, picklable)."""

    assignment: str
    source_path: str
    verdict_path: str
    out_dir: str
    run_root: str
    hide: tuple[str, ...]
    hide_tmp: bool
    limits: sandbox.Limits
    cell_timeout_s: float
    uid_offset: int
    keep: bool = False
    run_notebook: bool = True
    # nbgrader's folders <dir>/<student>/<assignment>/ that formgrader reads ("" = not written)
    submitted_dir: str = ""
    autograded_dir: str = ""


@dataclass
class Grading:
    """One submission on its way through the stages."""

    ctx: Context
    index: int                      # the student's number in this run (gives the sandbox's uid)
    nb: nbformat.NotebookNode       # the submitted notebook, parsed, never run here
    source: cells.SourceNotebook
    verdict: object                 # the verdict module (QUESTIONS, HIDDEN_SEED)
    result: StudentResult
    box: Path                       # control/ (the grader's) and work/ (the sandbox's) live here
    log: list[str]                  # the instructor's log of this student
    code: cells.StudentCode | None = None            # read_solution_code
    spec: dict = field(default_factory=dict)         # runs.prepare_sandbox: what both runs share
    probe: VerdictRun | None = None                  # runs.verdict_run
    executed: nbformat.NotebookNode | None = None    # runs.feedback_run


@dataclass
class VerdictRun:
    """What the verdict run left behind (all of it written by an untrusted process)."""

    run: sandbox.RunResult
    probe_dir: Path
    results: dict            # grade_id -> {"status": ...} (probe/results.json)
    loaded: dict | None      # probe/load.json: None when the solution cells never finished loading
    tampered: bool           # the audit channel was interfered with
