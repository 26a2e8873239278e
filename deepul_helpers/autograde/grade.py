"""Grade a folder of submissions: ``autograde(assignment, submissions, ...)``.

The trusted parent process checks the assignment (source notebook and verdict module agree),
collects the submissions (``collect.py``, bytes only), hides the private paths from the sandbox,
and hands each student to a pool worker, which runs ``pipeline.STAGES`` on it:

    read_solution_code -> prepare_sandbox -> verdict_run -> score -> feedback_run -> review_claims

(verdict run, judging and feedback run: ``runs.py``, ``judging.py``). The parent writes the
gradebook and ``grades.csv`` after each student, so a crash loses nothing already graded.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
import tempfile
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path

from deepul_helpers.autograde import cells as nbcells
from deepul_helpers.autograde import course, isolation, sandbox
from deepul_helpers.autograde.collect import Submission, collect, layouts
from deepul_helpers.autograde.grades_csv import previous_rows, write_csv
from deepul_helpers.autograde.pipeline import grade_submission
from deepul_helpers.autograde.student import Context, StudentResult


class GradingSetupError(course.CourseError):
    """The assignment, verdict module or output location is not usable (an infrastructure problem)."""


def load_verdict(path: str | Path):
    """Import a verdict module from its file (trusted code) and check its shape."""
    path = Path(path)
    if not path.is_file():
        raise GradingSetupError(f"verdict module {path} not found; write it as CONTRIBUTING.md describes")
    spec = importlib.util.spec_from_file_location(f"deepul_verdict_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not getattr(module, "QUESTIONS", None) or not isinstance(getattr(module, "HIDDEN_SEED", None), int):
        raise GradingSetupError(f"{path} must define QUESTIONS (a list of Question) and HIDDEN_SEED (an int)")
    return module


@lru_cache(maxsize=4)
def _assignment(source_path: str, verdict_path: str):
    source = nbcells.SourceNotebook.read(Path(source_path))
    verdict = load_verdict(verdict_path)
    return source, verdict


def check_assignment(source: nbcells.SourceNotebook, verdict) -> list[str]:
    """Problems that make grading impossible (raised) and warnings (returned)."""
    errors, warns = [], []
    ids = [q.grade_id for q in verdict.QUESTIONS]
    if len(set(ids)) != len(ids):
        errors.append("QUESTIONS has a grade_id twice")
    for q in verdict.QUESTIONS:
        if q.grade_id not in source.tests:
            errors.append(f"question {q.grade_id} has no graded test cell in {source.name}")
        elif not math.isclose(q.points, source.tests[q.grade_id]):
            errors.append(f"question {q.grade_id}: {q.points} points in the verdict, "
                          f"{source.tests[q.grade_id]} in the test cell")
    if not source.setup_source:
        errors.append(f"{source.name} has no setup cell (grade_id 'setup')")
    if errors:
        raise GradingSetupError("; ".join(errors))
    for gid in source.tests:
        if gid not in ids:
            warns.append(f"test cell {gid} has no verdict question: it scores 0")
    return warns


def _grade_task(ctx: Context, index: int, sub: Submission) -> StudentResult:
    try:
        return grade_submission(ctx, index, sub, *_assignment(ctx.source_path, ctx.verdict_path))
    except Exception as e:
        log = Path(ctx.out_dir) / "logs" / f"{sub.student}.grader-error.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc(), encoding="utf-8")
        _, verdict = _assignment(ctx.source_path, ctx.verdict_path)
        return StudentResult(student=sub.student, assignment=ctx.assignment,
                             scores={q.grade_id: 0.0 for q in verdict.QUESTIONS},
                             max_scores={q.grade_id: float(q.points) for q in verdict.QUESTIONS},
                             status="grader-error", messages=[f"grader error: {type(e).__name__}: {e} (see {log})"])


def _init_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


# ----------------------------------------------------------------------------- the whole class


def _hidden_paths(paths, keep_visible) -> tuple[tuple[str, ...], list[str]]:
    """(existing paths to hide, none inside another; those left visible because they hold
    ``keep_visible``)."""
    hide, skipped = [], []
    for p in paths:
        if p is None or not Path(p).exists():
            continue
        p = Path(p).resolve()
        if any(k == p or p in k.parents for k in keep_visible):
            skipped.append(str(p))
            continue
        if str(p) not in hide:
            hide.append(str(p))
    hide = [h for h in hide if not any(Path(o) in Path(h).parents for o in hide)]  # a hidden folder hides its insides
    return tuple(hide), skipped


def output_paths(assignment: str, source_root=None, out=None, db: str | None = None) -> tuple[Path, str]:
    """(the output folder of grades.csv, feedback/ and logs/, the gradebook URL) as :func:`autograde` uses them
    (``source_root``: the course folder, by ``course.root``'s rule when None)."""
    from deepul_helpers.autograde.gradebook import default_url

    root = course.root(source_root)
    return (Path(out) if out is not None else root / "grading" / "out" / assignment), db or default_url(root)


def _nbgrader_folders(root) -> tuple[str, str]:
    """(submitted, autograded) folders of the course configuration under ``root`` ("" when unconfigured)."""
    try:
        cd = course.load_config(root).CourseDirectory
        return tuple(str((Path(root) / str(cd[k])).resolve()) for k in ("submitted_directory", "autograded_directory"))
    except Exception:  # no usable configuration: formgrader cannot read this course anyway
        return "", ""


def autograde(assignment: str, submissions, *, workers: int = 2, timeout_s: float = 600.0,
              memory_mb: int = 3072, cell_timeout_s: float | None = None, db: str | None = None,
              out=None, source_root=None, verdict_root=course.VERDICT_DIR, students=None,
              shard: tuple[int, int] | None = None, progress: bool = True, keep: bool = False,
              run_notebook: bool = True, nbgrader_folders: bool | None = None) -> list[StudentResult]:
    """Grade every submission of ``assignment`` found in ``submissions`` (see ``collect.py`` for
    the layouts). Writes the gradebook (``db``: SQLAlchemy URL; default ``$DEEPUL_GRADEBOOK`` or
    ``<source_root>/grading/out/gradebook.db``), ``out/feedback/<student>.html``,
    ``out/logs/<student>.txt`` and ``out/grades.csv`` (default ``out``:
    ``<source_root>/grading/out/<assignment>``). ``source_root`` is the course folder (default: found
    by ``course.root``'s rule: ``$DEEPUL_COURSE``, else the current folder or a parent of it).
    ``shard=(k, n)`` grades every n-th student from the k-th (several machines sharing one PostgreSQL
    gradebook). ``run_notebook=False`` skips the feedback run (verdict only: same grades, no executed
    notebook, no review of in-notebook claims; for a fast regrade). ``nbgrader_folders`` (default: when
    ``out`` is the default) also writes nbgrader's ``submitted/`` and ``autograded/`` folders where the
    course configuration puts them (under ``source_root``), which formgrader reads. Raises
    GradingSetupError when grading cannot start (also when ``submissions`` holds no submission at all:
    the message names the expected layouts); a student's own failures never raise."""
    from tqdm import tqdm

    from deepul_helpers.autograde.gradebook import GradebookWriter, sqlite_path

    root = course.root(source_root)
    try:
        source_path = course.source_notebook(assignment, root)
    except course.CourseError as e:
        raise GradingSetupError(str(e)) from None
    verdict_path = course.verdict_path(assignment, root, verdict_root)
    source, verdict = _assignment(str(source_path), str(verdict_path))
    for w in check_assignment(source, verdict):
        print(f"deepul autograde: warning: {w}", file=sys.stderr)
    isolation.warn_once()
    subs = collect(submissions, assignment)
    if not subs:
        raise GradingSetupError(f"no submission found in {Path(submissions).resolve()}; expected "
                                + layouts(assignment))
    if students:
        unknown = sorted(set(students) - {s.student for s in subs})
        if unknown:
            print(f"deepul autograde: warning: no submission from {', '.join(unknown)} in {submissions}",
                  file=sys.stderr)
        subs = [s for s in subs if s.student in set(students)]
    if shard is not None:
        k, n = shard
        subs = [s for i, s in enumerate(subs) if i % n == k]
    out_dir, db_url = output_paths(assignment, root, out, db)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = GradebookWriter(db_url, assignment, source, root)
    db_file = sqlite_path(db_url)
    if nbgrader_folders is None:
        nbgrader_folders = out is None
    submitted_dir, autograded_dir = _nbgrader_folders(root) if nbgrader_folders else ("", "")
    if nbgrader_folders and not submitted_dir:
        print(f"deepul autograde: warning: no usable {course.CONFIG} in {root}: nbgrader's submitted/ and "
              "autograded/ folders are not written, so formgrader will not list these submissions", file=sys.stderr)
    for d in (submitted_dir, autograded_dir):
        if d:
            Path(d).mkdir(parents=True, exist_ok=True)  # before hiding them from the sandbox
    package = Path(__file__).resolve().parents[1]
    visible = [Path(sys.prefix).resolve(), package, Path(tempfile.gettempdir()).resolve()]
    private = [r / d for r in dict.fromkeys(filter(None, (root, course.installed_root())))
               for d in ("solutions", "grading", ".git", "tests")]  # also the installed checkout's, if a course
    hide, skipped = _hidden_paths([*private, verdict_path.parent, Path(submissions), out_dir, submitted_dir or None,
                                   autograded_dir or None, db_file.parent if db_file else None], visible)
    for s in skipped:
        print(f"deepul autograde: warning: {s} holds the Python environment or the package and stays "
              "visible to student code", file=sys.stderr)
    tmp = Path(tempfile.gettempdir()).resolve()
    hide_tmp = not any(tmp == p or tmp in p.parents for p in (Path(sys.prefix).resolve(), package))
    run_root = tempfile.mkdtemp(prefix="deepul-grade-")
    os.chmod(run_root, 0o711)
    ctx = Context(assignment=assignment, source_path=str(source_path), verdict_path=str(verdict_path),
                  out_dir=str(out_dir.resolve()), run_root=run_root, hide=hide, hide_tmp=hide_tmp,
                  limits=sandbox.Limits(timeout_s=timeout_s, memory_mb=memory_mb),
                  cell_timeout_s=cell_timeout_s or min(300.0, timeout_s), uid_offset=isolation.run_offset(),
                  keep=keep, run_notebook=run_notebook, submitted_dir=submitted_dir, autograded_dir=autograded_dir)
    qids = [q.grade_id for q in verdict.QUESTIONS]
    results: dict[str, StudentResult] = {}
    csv_path = out_dir / "grades.csv"
    earlier = previous_rows(csv_path, qids)  # a regrade of some students keeps the others' rows
    try:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            futures = {pool.submit(_grade_task, ctx, i, s): s for i, s in enumerate(subs)}
            bar = tqdm(as_completed(futures), total=len(futures), disable=not progress, desc=f"grading {assignment}",
                       unit="student")
            for fut in bar:
                sub = futures[fut]
                try:
                    r = fut.result()
                except Exception as e:  # the worker itself died
                    r = StudentResult(student=sub.student, assignment=assignment,
                                      scores=dict.fromkeys(qids, 0.0),
                                      max_scores={q.grade_id: float(q.points) for q in verdict.QUESTIONS},
                                      status="grader-error", messages=[f"grader error: {type(e).__name__}: {e}"])
                writer.write(r)
                results[r.student] = r
                write_csv(csv_path, list(results.values()), qids, earlier)
        if not subs:
            write_csv(csv_path, [], qids, earlier)
    finally:
        if not keep:
            shutil.rmtree(run_root, ignore_errors=True)
    return [results[k] for k in sorted(results)]
