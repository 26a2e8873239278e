"""Grading one submission: a list of stages, run in order by :func:`grade_submission`.

Each stage is a function ``stage(g: Grading) -> None`` that reads what earlier stages left in
``g`` (``student.py``) and adds its own part. The grader process running them is trusted and never runs student
code itself: that happens in the two sandboxed runs (``runs.py`` starts them, ``runner.py`` is
what runs inside).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from deepul_helpers.autograde import cells, judging, runs
from deepul_helpers.autograde.collect import Submission, pick_notebook
from deepul_helpers.autograde.student import Context, Grading, StudentResult


def read_solution_code(g: Grading) -> None:
    """The student's solution cells, statically filtered to definitions (``cells.solution_code``)."""
    questions = g.verdict.QUESTIONS
    g.code = cells.solution_code(g.nb, g.source, {n for q in questions for n in q.requires})
    g.result.messages += g.code.messages
    for q in questions:
        for name in q.requires:
            for m in g.code.question_messages.get(name, []):
                g.result.add_question_message(q.grade_id, m)


# The stages of grading one submission, in order (nbgrader's autograde composes its
# preprocessors the same way). The feedback run and the review of the notebook's own
# claims are skipped when the run asks for no notebook (``--no-notebook``).
STAGES = (
    read_solution_code,      # solution cells -> the code the verdict run loads (nothing runs)
    runs.prepare_sandbox,    # a private working folder and user id for this submission
    runs.verdict_run,        # sandbox: setup + solution cells + probes -> plain data, audit events
    judging.score,           # trusted: forbidden use, then each question's judge -> points
    runs.feedback_run,       # sandbox: the whole notebook in quick mode -> the executed copy
    judging.review_claims,   # the notebook's own test results against the points -> review
)


def grade_submission(ctx: Context, index: int, sub: Submission, source, verdict) -> StudentResult:
    """Grade one student (in a trusted worker process): pick and parse the notebook, run
    :data:`STAGES`, then write the feedback page and the instructor's log."""
    start = time.monotonic()
    questions = verdict.QUESTIONS
    res = StudentResult(student=sub.student, assignment=ctx.assignment,
                        scores={q.grade_id: 0.0 for q in questions},
                        max_scores={q.grade_id: float(q.points) for q in questions},
                        messages=list(sub.notes), timestamp=sub.timestamp,
                        question_messages={q.grade_id: [] for q in questions})
    out_dir = Path(ctx.out_dir)
    log: list[str] = [f"student {sub.student} from {sub.origin}"]
    name, data, msgs = pick_notebook(sub, source.name, set(source.tests))
    res.messages += msgs
    g = None
    try:
        if data is None:
            res.status = "missing"
            return res
        try:
            nb = cells.read_submission(data)
        except ValueError as e:
            res.status = "malformed"
            res.messages.append(f"{name}: {e}")
            return res
        box = Path(tempfile.mkdtemp(prefix=f"s{index}-", dir=ctx.run_root))
        os.chmod(box, 0o711)  # the sandbox user may pass through to work/, not list or read control/
        g = Grading(ctx=ctx, index=index, nb=nb, source=source, verdict=verdict, result=res, box=box, log=log)
        for stage in STAGES:
            stage(g)
    finally:
        res.seconds = round(time.monotonic() - start, 2)
        if res.review and res.status == "graded":
            res.status = "review"
        if data is not None:
            _write_nbgrader_folders(ctx, sub, source.name, data, g, log)
        _write_feedback(out_dir / "feedback" / f"{sub.student}.html", res, questions,
                        g.executed if g is not None else None, log)
        (out_dir / "logs").mkdir(parents=True, exist_ok=True)
        (out_dir / "logs" / f"{sub.student}.txt").write_text("\n".join(log), encoding="utf-8")
        if g is not None and not ctx.keep:
            shutil.rmtree(g.box, ignore_errors=True)
    return res


def _write_nbgrader_folders(ctx: Context, sub: Submission, name: str, data: bytes, g, log: list[str]) -> None:
    """nbgrader's ``submitted/<student>/<assignment>/`` (the notebook as submitted, ``timestamp.txt``) and
    ``autograded/<student>/<assignment>/`` (the executed feedback copy, else the submission), so that
    formgrader lists the submission as autograded: its timestamp equals the gradebook's."""
    if not ctx.submitted_dir:
        return
    res = g.result if g is not None else None
    if res is None or res.status == "malformed":
        return
    if res.timestamp is None:
        res.timestamp = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    stamp = res.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    try:
        submitted = Path(ctx.submitted_dir) / sub.student / ctx.assignment
        submitted.mkdir(parents=True, exist_ok=True)
        target = submitted / name
        if not (target.is_file() and target.read_bytes() == data):  # the folder graded may be this one
            target.write_bytes(data)
        (submitted / "timestamp.txt").write_text(stamp, encoding="utf-8")
        autograded = Path(ctx.autograded_dir) / sub.student / ctx.assignment
        autograded.mkdir(parents=True, exist_ok=True)
        nbformat.write(g.executed if g.executed is not None else g.nb, str(autograded / name))
        (autograded / "timestamp.txt").write_text(stamp, encoding="utf-8")
    except Exception:
        log.append("writing nbgrader's submitted/autograded folders failed:\n" + traceback.format_exc())


def _write_feedback(path: Path, res: StudentResult, questions, executed, log: list[str]) -> None:
    try:
        from deepul_helpers.autograde.feedback import write_feedback

        try:
            write_feedback(path, res, questions, executed)
        except Exception:  # an executed notebook nbconvert cannot render: the summary alone
            log.append("feedback with the notebook failed:\n" + traceback.format_exc())
            res.messages.append("the executed notebook could not be rendered in this page")
            write_feedback(path, res, questions, None)
        res.feedback = str(path)
    except Exception:
        log.append("feedback page failed:\n" + traceback.format_exc())
