"""Grade a folder of submissions: sandboxed runs, trusted judging, gradebook, feedback, grades.csv.

Per student (in a pool worker, a trusted process that never runs student code):

1. pick the notebook, parse it (bytes only), pull out the solution cells (``cells.py``);
2. **verdict run** in the sandbox: setup cell + solution cells + each question's probe; outputs
   come back as plain data (``transport.py``); forbidden imports come back from the audit hook;
3. **judge** each question here with the verdict module's ``judge`` (reference implementations);
4. **feedback run** in the sandbox: the whole notebook (locked cells restored, hidden tests never
   present) in quick mode; its in-notebook test results are compared with the verdict;
5. feedback HTML and an instructor log.

The parent process writes the gradebook and ``grades.csv`` after each student.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import nbformat

from deepul_helpers.autograde import cells as nbcells
from deepul_helpers.autograde import sandbox
from deepul_helpers.autograde.collect import Submission, collect, pick_notebook
from deepul_helpers.autograde.grades_csv import previous_rows, write_csv
from deepul_helpers.autograde.judging import forbidden_hit, question_result, read_json


class GradingSetupError(RuntimeError):
    """The assignment, verdict module or output location is not usable (an infrastructure problem)."""


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


@dataclass(frozen=True)
class Context:
    """Everything a worker needs (plain, picklable)."""

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


# ----------------------------------------------------------------------------- one student


def grade_submission(ctx: Context, index: int, sub: Submission) -> StudentResult:
    """Grade one student (in a trusted worker process)."""
    start = time.monotonic()
    source, verdict = _assignment(ctx.source_path, ctx.verdict_path)
    questions = verdict.QUESTIONS
    res = StudentResult(student=sub.student, assignment=ctx.assignment,
                        scores={q.grade_id: 0.0 for q in questions},
                        max_scores={q.grade_id: float(q.points) for q in questions},
                        messages=list(sub.notes), timestamp=sub.timestamp,
                        question_messages={q.grade_id: [] for q in questions})
    out_dir = Path(ctx.out_dir)
    feedback_path = out_dir / "feedback" / f"{sub.student}.html"
    log: list[str] = [f"student {sub.student} from {sub.origin}"]
    name, data, msgs = pick_notebook(sub, source.name, set(source.tests))
    res.messages += msgs
    executed = None
    box = None
    try:
        if data is None:
            res.status = "missing"
            return res
        try:
            nb = nbcells.read_submission(data)
        except ValueError as e:
            res.status = "malformed"
            res.messages.append(f"{name}: {e}")
            return res
        box = Path(tempfile.mkdtemp(prefix=f"s{index}-", dir=ctx.run_root))
        os.chmod(box, 0o711)  # the sandbox user may pass through to work/, not list or read control/
        executed = _grade_notebook(ctx, index, nb, source, verdict, res, box, log)
    finally:
        res.seconds = round(time.monotonic() - start, 2)
        if res.review and res.status == "graded":
            res.status = "review"
        try:
            from deepul_helpers.autograde.feedback import write_feedback

            try:
                write_feedback(feedback_path, res, questions, executed)
            except Exception:  # an executed notebook nbconvert cannot render: the summary alone
                log.append("feedback with the notebook failed:\n" + traceback.format_exc())
                res.messages.append("the executed notebook could not be rendered in this page")
                write_feedback(feedback_path, res, questions, None)
            res.feedback = str(feedback_path)
        except Exception:
            log.append("feedback page failed:\n" + traceback.format_exc())
        (out_dir / "logs").mkdir(parents=True, exist_ok=True)
        (out_dir / "logs" / f"{sub.student}.txt").write_text("\n".join(log), encoding="utf-8")
        if box is not None and not ctx.keep:
            shutil.rmtree(box, ignore_errors=True)
    return res


def _grade_notebook(ctx, index, nb, source, verdict, res: StudentResult, box: Path, log) -> dict | None:
    questions = verdict.QUESTIONS
    required = {n for q in questions for n in q.requires}
    code = nbcells.solution_code(nb, source, required)
    res.messages += code.messages
    for q in questions:
        for n in q.requires:
            for m in code.question_messages.get(n, []):
                if m not in res.question_messages[q.grade_id]:
                    res.question_messages[q.grade_id].append(m)
    control, work = box / "control", box / "work"
    control.mkdir(mode=0o700)
    work.mkdir()
    uid = sandbox.UID_BASE + ctx.uid_offset + index
    sandbox.prepare_workdir(work, uid if sandbox.capabilities().switch_user else None)
    base = {"workdir": str(work), "hide": list(ctx.hide), "hide_tmp": ctx.hide_tmp, "uid": uid,
            "expose": sandbox.runtime_paths()}

    # --- verdict run
    spec = dict(base, mode="verdict", verdict_path=ctx.verdict_path, seed=int(verdict.HIDDEN_SEED),
                setup_source=source.setup_source, parameters=nbcells.PARAMETERS, cells=code.cells,
                questions=[{"grade_id": q.grade_id, "requires": list(q.requires), "forbidden": list(q.forbidden),
                            "timeout_s": min(float(q.timeout_s), ctx.limits.timeout_s)} for q in questions])
    run = sandbox.run(spec, control, ctx.limits, event_pipe=True)
    log += ["--- verdict run: " + run.describe() + f" after {run.wall_s:.1f} s", run.output, *run.events]
    probe_dir = work / "probe"
    results = read_json(probe_dir / "results.json") or {}
    loaded = read_json(probe_dir / "load.json")
    if loaded is None:
        res.messages.append("your solution cells could not be loaded: " + run.describe())
    else:
        for label, err in list((loaded.get("load_errors") or {}).items())[:10]:
            res.messages.append(f"{str(label)[:40]}: a top-level statement raised {str(err)[:40]} while loading")
    tampered = "S" in run.events and (run.returncode != 0 or not run.events or run.events[-1] != "E")
    tampered = tampered and not run.timed_out and loaded is not None and len(results) == len(questions)
    tampered = tampered or run.events_cut  # only a submission writing to the channel itself can flood it
    for q in questions:
        hit = forbidden_hit(q, code, run.events, tampered)
        if hit:
            res.scores[q.grade_id] = 0.0
            res.review.append(q.grade_id)
            res.status = "flagged"
            res.question_messages[q.grade_id].append(
                f"{hit}: the reference implementation of what this question asks for; 0 points, "
                "flagged for the instructor")
            continue
        st = results.get(q.grade_id)
        if st is None and run.timed_out:
            points, msgs = 0.0, [f"not checked: grading stopped at the time limit ({ctx.limits.timeout_s:g} s)"]
        else:
            points, msgs = question_result(q, st, probe_dir, int(verdict.HIDDEN_SEED), log)
        res.scores[q.grade_id] = points
        res.question_messages[q.grade_id] += msgs

    # --- feedback run (the whole notebook, quick mode)
    if not ctx.run_notebook:
        return None
    fb, fb_msgs = nbcells.feedback_notebook(nb, source)
    res.messages += fb_msgs
    nb_name = "submission.ipynb"
    nbformat.write(fb, str(work / nb_name))
    if sandbox.capabilities().switch_user:
        os.chown(work / nb_name, uid, uid)
    spec = dict(base, mode="notebook", notebook=nb_name, cell_timeout=ctx.cell_timeout_s, output_cap=5 * 2**20)
    run = sandbox.run(spec, control, ctx.limits)
    log += ["--- notebook run: " + run.describe() + f" after {run.wall_s:.1f} s", run.output]
    executed = None
    path = work / "executed.ipynb"
    if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 * 2**20:
        try:
            executed = nbformat.read(str(path), as_version=4)
        except Exception:
            executed = None
    if run.timed_out:
        res.messages.append(f"the notebook did not finish within {ctx.limits.timeout_s:g} s; "
                            "the feedback shows the cells that ran")
    elif run.returncode != 0:
        res.messages.append("the notebook run ended early (the kernel died or was stopped); "
                            "the feedback shows the cells that ran")
    if executed is not None:
        res.claims = nbcells.passed_tests(executed, source.tests)
        for gid, passed in res.claims.items():
            if passed and source.tests[gid] > res.scores.get(gid, 0.0) + 1e-9:
                res.review.append(gid) if gid not in res.review else None
                res.question_messages.setdefault(gid, []).append(
                    f"the notebook's own test {gid} passed, but the grader's tests gave "
                    f"{res.scores.get(gid, 0.0):g}/{source.tests[gid]:g}: marked for review")
    return executed


def _grade_task(ctx: Context, index: int, sub: Submission) -> StudentResult:
    try:
        return grade_submission(ctx, index, sub)
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
    return tuple(hide), skipped


def autograde(assignment: str, submissions, *, workers: int = 2, timeout_s: float = 600.0,
              memory_mb: int = 3072, cell_timeout_s: float | None = None, db: str | None = None,
              out=None, source_root=".", verdict_root="grading/verdicts", students=None,
              shard: tuple[int, int] | None = None, progress: bool = True, keep: bool = False,
              run_notebook: bool = True) -> list[StudentResult]:
    """Grade every submission of ``assignment`` found in ``submissions`` (see ``collect.py`` for
    the layouts). Writes the gradebook (``db``: SQLAlchemy URL; default ``$DEEPUL_GRADEBOOK`` or
    ``<source_root>/grading/out/gradebook.db``), ``out/feedback/<student>.html``,
    ``out/logs/<student>.txt`` and ``out/grades.csv`` (default ``out``:
    ``<source_root>/grading/out/<assignment>``). ``shard=(k, n)`` grades every n-th student from
    the k-th (several machines sharing one PostgreSQL gradebook). ``run_notebook=False`` skips the
    feedback run (verdict only: same grades, no executed notebook, no review of in-notebook
    claims; for a fast regrade). Raises GradingSetupError when
    grading cannot start; a student's own failures never raise."""
    from tqdm import tqdm

    from deepul_helpers.autograde.gradebook import GradebookWriter, default_url, sqlite_path

    root = Path(source_root).resolve()
    folder = root / "solutions" / assignment
    sources = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    if len(sources) != 1:
        sol = root / "solutions"
        known = sorted(p.name for p in sol.iterdir() if p.is_dir()) if sol.is_dir() else []
        raise GradingSetupError(f"expected one source notebook in {folder}, found {len(sources)}; "
                                f"assignments: {', '.join(known) or 'none'}")
    verdict_path = (root / verdict_root / f"{assignment}.py") if not Path(verdict_root).is_absolute() \
        else Path(verdict_root) / f"{assignment}.py"
    source, verdict = _assignment(str(sources[0]), str(verdict_path.resolve()))
    for w in check_assignment(source, verdict):
        print(f"deepul autograde: warning: {w}", file=sys.stderr)
    sandbox.warn_once()
    subs = collect(submissions, assignment)
    if students:
        subs = [s for s in subs if s.student in set(students)]
    if shard is not None:
        k, n = shard
        subs = [s for i, s in enumerate(subs) if i % n == k]
    out_dir = Path(out) if out is not None else root / "grading" / "out" / assignment
    out_dir.mkdir(parents=True, exist_ok=True)
    db_url = db or default_url(root)
    writer = GradebookWriter(db_url, assignment, source)
    db_file = sqlite_path(db_url)
    package = Path(__file__).resolve().parents[1]
    visible = [Path(sys.prefix).resolve(), package, Path(tempfile.gettempdir()).resolve()]
    hide, skipped = _hidden_paths([root / "solutions", root / "grading", root / ".git", root / "tests",
                                   verdict_path.parent, Path(submissions), out_dir,
                                   db_file.parent if db_file else None], visible)
    for s in skipped:
        print(f"deepul autograde: warning: {s} holds the Python environment or the package and stays "
              "visible to student code", file=sys.stderr)
    tmp = Path(tempfile.gettempdir()).resolve()
    hide_tmp = not any(tmp == p or tmp in p.parents for p in (Path(sys.prefix).resolve(), package))
    run_root = tempfile.mkdtemp(prefix="deepul-grade-")
    os.chmod(run_root, 0o711)
    ctx = Context(assignment=assignment, source_path=str(sources[0]), verdict_path=str(verdict_path.resolve()),
                  out_dir=str(out_dir.resolve()), run_root=run_root, hide=hide, hide_tmp=hide_tmp,
                  limits=sandbox.Limits(timeout_s=timeout_s, memory_mb=memory_mb),
                  cell_timeout_s=cell_timeout_s or min(300.0, timeout_s), uid_offset=sandbox.run_offset(),
                  keep=keep, run_notebook=run_notebook)
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
