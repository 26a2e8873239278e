"""``deepul validate PATH.ipynb``: what a student runs before submitting.

Runs the notebook in quick mode (the course's notebook executor ``deepul_helpers.notebook.run``,
a per-cell and a whole-notebook time limit, in a separate process), then reports for each
visible test cell the points it would earn, a total, and the problems found on the way:
malformed notebook, test cells edited or deleted, functions the release asks for that are
missing or that the grader would not load, syntax errors, cells that raised. The released
version of the notebook is found by what the notebook carries (its nbgrader cells' grade_ids,
matched against every release in the course's ``homeworks/``; the folder name first), or given with
``--release``; its locked and test cells are then run instead of the student's copies, by the
grader's own rules (``cells.py``). The course is found by the one rule of ``course.root`` (``--course``,
``$DEEPUL_COURSE``, else the current folder or one above it); without one (or when no release matches)
the report says so and the visible checks still run. Plots go to ``<notebook's folder>/out/`` (or
``--out``), never into the course's checkout.

The grade itself is decided by hidden tests; these visible checks are feedback only.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from deepul_helpers.autograde import cells
from deepul_helpers.autograde import course as course_folder

NOTE = ("Note: these are the visible checks only. Your grade is decided by hidden tests that call your "
        "functions on other inputs, so passing every visible check does not guarantee full marks.")


@dataclass
class Check:
    grade_id: str
    points: float
    max_points: float
    status: str  # passed | failed | not answered | did not run | missing | by hand
    message: str = ""


@dataclass
class Report:
    path: Path
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fatal: bool = False  # the notebook could not be run at all

    @property
    def total(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def max_total(self) -> float:
        return sum(c.max_points for c in self.checks if c.status != "by hand")

    def format(self) -> str:
        lines = [f"deepul validate: {self.path}"]
        for c in self.checks:
            pts = "by hand" if c.status == "by hand" else f"{c.points:g}/{c.max_points:g}"
            lines.append(f"  {c.grade_id:<22} {pts:>9}  {c.status}{': ' + c.message if c.message else ''}")
        if not self.fatal:
            lines.append(f"visible checks: {self.total:g}/{self.max_total:g} points")
        if self.problems:
            lines.append("problems:")
            lines += [f"  - {p}" for p in self.problems]
        lines.append(NOTE)
        return "\n".join(lines)


def _first_line(cell) -> str:
    line = next((s for s in cell.source.splitlines() if s.strip()), "")
    return (line[:50] + "...") if len(line) > 50 else line


def _grade_ids(nb) -> set[str]:
    return {gid for c in nb.cells if (gid := cells.grade_id(c)) is not None}


def find_release(path: Path, release_dir: Path, nb=None) -> Path | None:
    """The released notebook this submission comes from: by assignment folder and file name, else by
    identity, the release whose nbgrader cells (grade_ids) the notebook ``nb`` shares most, at least
    half of them (a renamed copy, one in ~/Downloads)."""
    folder = release_dir / path.parent.name
    if (folder / path.name).is_file():
        return folder / path.name
    nbs = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    if len(nbs) == 1:
        return nbs[0]
    if nb is None or not Path(release_dir).is_dir():
        return None
    mine, best, best_share = _grade_ids(nb), None, 0.5
    for candidate in sorted(Path(release_dir).glob("*/*.ipynb")):
        try:
            theirs = _grade_ids(nbformat.read(candidate, as_version=4))
        except Exception:
            continue
        share = len(mine & theirs) / len(theirs) if theirs else 0.0
        if share >= best_share:
            best, best_share = candidate, share
    return best


def _loaded_by_the_grader(nb, release_path: Path, report: Report) -> None:
    """What the grader loads (``cells.solution_code``: the definitions of every unlocked code cell) and
    what it would miss: a name the release's solution cells define that the loaded code does not."""
    source = cells.SourceNotebook.read(release_path)
    wanted = set().union(*[cells.defined_names(c.source) for c in source.nb.cells
                           if cells.is_solution(c) and c.cell_type == "code"])
    code = cells.solution_code(nb, source, wanted)
    loaded = set().union(*[cells.defined_names(src) for _, src in code.cells])
    have = set().union(*[cells.defined_names(c.source) for c in nb.cells if c.cell_type == "code"])
    for name in sorted((wanted & have) - loaded):
        report.problems.append(f"{name!r} is defined in a cell the grader does not load from (it loads imports, "
                               "def, class and constant assignments at the top level of your unlocked cells)")


def _syntax_errors(nb, report: Report) -> None:
    """One problem per code cell that does not parse, named by its grade_id (or its number)."""
    for i, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") != "code" or cells.is_locked(cell):
            continue
        code, msgs = cells.filter_cell(cell.source)
        if code is None:
            line = msgs[-1].split("syntax error on line ", 1)[-1].split(":", 1)[0]
            report.problems.append(f"syntax error in your cell {cells.grade_id(cell) or i}, line {line}: that "
                                   "cell does not run, and the grader does not load it")


def _restore_locked_cells(nb, release_nb, report: Report):
    """The notebook with the release's locked / test cells run in place of the student's copies
    (``cells.restore_locked``, as the grader does); what was changed or is missing is reported."""
    restored = cells.restore_locked(nb, cells.locked_cells(release_nb))
    for gid in restored.changed:
        report.problems.append(f"you changed the locked cell {gid!r}; its released version was run "
                               "instead (the grader does the same)")
    tests = {cells.grade_id(c) for c in release_nb.cells if cells.is_test(c)}
    for gid in dict.fromkeys(restored.duplicates):
        if gid in tests:
            report.problems.append(f"test cell {gid!r} appears more than once; it counts once")
    present = {cells.grade_id(c) for c in nb.cells}
    for ref in release_nb.cells:
        gid, meta = cells.grade_id(ref), cells.nbgrader_meta(ref)
        if gid is not None and gid not in present and (meta.get("grade") or meta.get("solution")):
            report.problems.append(f"cell {gid!r} of the release is missing (deleted, or its nbgrader "
                                   "metadata removed): copy it back from the released notebook")
            if cells.is_test(ref):
                report.checks.append(Check(gid, 0.0, cells.points(ref), "missing",
                                           "this test cell is not in your notebook"))
    wanted = set().union(*[cells.defined_names(c.source) for c in release_nb.cells
                           if cells.is_solution(c) and c.cell_type == "code"])
    have = set().union(*[cells.defined_names(c.source) for c in nb.cells if c.cell_type == "code"])
    for name in sorted(wanted - have):
        report.problems.append(f"{name!r} is not defined at the top level of any code cell, but the "
                               "release asks for it")
    return restored.nb


_STOPPED = "DEEPUL-VALIDATE-STOPPED"


def _own_cells(nb) -> list:
    """The notebook's cells without the parameters cell the executor inserts."""
    return [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def _error_of(cell) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", "Error"), str(out.get("evalue", ""))
    return None


def _execute(in_path: str, out_path: str, cell_timeout: int, cwd: str) -> int:
    """Child process: execute in quick mode, continuing past errors. Exit code 0 whatever the cells did."""
    from deepul_helpers.notebook import run

    try:
        run(nbformat.read(in_path, as_version=4), cwd=cwd, cell_timeout=cell_timeout,
            parameters=cells.PARAMETERS, save_to=out_path)
    except Exception as e:  # the kernel died (os._exit, a crash, memory) or could not start
        print(f"{_STOPPED} {type(e).__name__}: {str(e)[:300]}")
    return 0


def validate(path, *, timeout_s: float | None = None, cell_timeout_s: int | None = None,
             release_dir=None, keep: str | Path | None = None, release: str | Path | None = None,
             out: str | Path | None = None, course: str | Path | None = None) -> Report:
    """Execute ``path`` in quick mode and score its visible test cells (see the module docstring).

    ``release_dir`` defaults to the course's ``homeworks/`` (the course: ``course``, else found by
    ``course.root``'s rule). Time limits default to ``c.Deepul.notebook_timeout_s`` / ``cell_timeout_s``
    of the course's grading/nbgrader_config.py.
    """
    path = Path(path)
    report = Report(path)
    try:
        root = course_folder.root(course)
    except course_folder.CourseNotFound as e:
        if course is not None:  # a folder given explicitly that is not a course: say so, run nothing
            report.fatal = True
            report.problems.append(str(e))
            return report
        root, no_course = None, str(e)
    if timeout_s is None or cell_timeout_s is None:
        setting = functools.partial(course_folder.setting, course=root) if root else (lambda _, v: v)
        timeout_s = setting("notebook_timeout_s", 900.0) if timeout_s is None else timeout_s
        cell_timeout_s = int(setting("cell_timeout_s", 300.0)) if cell_timeout_s is None else cell_timeout_s
    if release_dir is None and root is not None:
        release_dir = root / course_folder.RELEASE
    if not path.is_file():
        report.fatal = True
        report.problems.append(f"no notebook at {path}: give the path of your .ipynb file")
        return report
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:
        report.fatal = True
        report.problems.append(f"{path} is not a readable notebook ({type(e).__name__}: {e}); "
                               "restore it from a checkpoint or copy your code into a fresh release")
        return report
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as e:
        report.problems.append(f"the notebook does not follow the notebook format: {e.message}")
    if release is not None:
        release_path = Path(release)
    else:
        release_path = find_release(path, Path(release_dir), nb) if release_dir is not None else None
    _syntax_errors(nb, report)
    if release_path is not None and release_path.is_file():
        _loaded_by_the_grader(nb, release_path, report)
        nb = _restore_locked_cells(nb, nbformat.read(release_path, as_version=4), report)
    elif release is not None:
        report.problems.append(f"--release {release}: no such notebook; locked and test cells were NOT checked "
                               "against the release")
    elif release_dir is None:
        report.problems.append(f"{no_course}. Without the course, the released notebook cannot be looked up: "
                               "locked and test cells were NOT checked against the release (or give it with "
                               "--release PATH)")
    else:
        report.problems.append(f"the released notebook this one comes from was not found in {release_dir} (no "
                               "release shares its nbgrader cells): locked and test cells were NOT checked "
                               "against the release; give it with --release PATH")
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        report.problems.append("no cell is tagged 'parameters'; quick mode is set through the environment only")

    with tempfile.TemporaryDirectory(prefix="deepul-validate-") as tmp:
        in_path, out_path = Path(tmp) / "input.ipynb", Path(tmp) / "executed.ipynb"
        nbformat.write(nb, in_path)
        plots = Path(out) if out is not None else path.parent / "out"
        env = {**os.environ, "DEEPUL_QUICK": "1", "MPLBACKEND": "Agg", "DEEPUL_OUT": str(plots.resolve())}
        cmd = [sys.executable, "-m", "deepul_helpers.autograde.validate", "--execute",
               str(in_path), str(out_path), str(int(cell_timeout_s)), str(path.parent.resolve())]
        proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            log, _ = proc.communicate(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel
            log, _ = proc.communicate()
            timed_out = True
        if timed_out:
            report.problems.append(f"the notebook did not finish within {timeout_s:g} s (whole-notebook "
                                   "limit in quick mode): look for a loop that never ends or a run that "
                                   "ignores quick=quick")
        if not out_path.exists():
            report.fatal = True
            report.problems.append("the notebook could not be executed:\n" + log.decode(errors="replace")[-2000:])
            return report
        executed = nbformat.read(out_path, as_version=4)
        text = log.decode(errors="replace")
        if _STOPPED in text and not timed_out:
            why = text.split(_STOPPED, 1)[1].strip().splitlines()[0]
            own = _own_cells(executed)
            stopped = next((i for i, c in enumerate(own, 1) if c.cell_type == "code" and c.source.strip()
                            and "shell.execute_reply" not in (c.metadata.get("execution") or {})), None)
            where = f"cell {stopped} ({_first_line(own[stopped - 1])!r})" if stopped else "the notebook"
            hint = (" (os._exit, a crash, or memory exhausted)" if why.startswith("DeadKernelError") else "")
            report.problems.append(f"the run stopped in {where}: {why}{hint}; later cells did not run")
        if keep is not None:
            Path(keep).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(executed, keep)
    _score(executed, report, cell_timeout_s)
    return report


def _score(executed, report: Report, cell_timeout_s: int) -> None:
    own = _own_cells(executed)
    counted = {c.grade_id for c in report.checks}
    unanswered = False  # an earlier cell raised NotImplementedError (a placeholder left in)
    for i, cell in enumerate(own, start=1):
        meta = cells.nbgrader_meta(cell)
        if meta.get("grade") and meta.get("grade_id") in counted:
            report.problems.append(f"test cell {meta['grade_id']!r} appears more than once; it counts once")
            continue
        counted.add(meta.get("grade_id"))
        err = _error_of(cell) if cell.cell_type == "code" else None
        if err is not None and err[0] == "NotImplementedError" and not meta.get("grade"):
            unanswered = True
        if err is not None and err[0] in ("KeyboardInterrupt", "CellTimeoutError"):
            err = ("CellTimeoutError", f"ran longer than the per-cell limit of {cell_timeout_s} s")
        if meta.get("grade"):
            gid, pts = meta.get("grade_id", f"cell {i}"), float(meta.get("points", 0))
            if cell.cell_type != "code":
                report.checks.append(Check(gid, 0.0, pts, "by hand", "written answer, graded by the staff"))
            elif err is None and cell.get("execution_count") is None:
                report.checks.append(Check(gid, 0.0, pts, "did not run", "execution stopped before this cell"))
            elif err is None:
                report.checks.append(Check(gid, pts, pts, "passed"))
            elif err[0] == "NotImplementedError":
                report.checks.append(Check(gid, 0.0, pts, "not answered", "a function still raises "
                                           "NotImplementedError"))
            elif err[0] == "NameError" and unanswered:
                report.checks.append(Check(gid, 0.0, pts, "not answered", f"{err[1]}: an earlier cell still "
                                           "raises NotImplementedError"))
            elif err[0] == "NameError":
                report.checks.append(Check(gid, 0.0, pts, "failed", f"missing: {err[1]}"))
            else:
                report.checks.append(Check(gid, 0.0, pts, "failed", f"{err[0]}: {err[1]}"[:300]))
        elif err is not None and err[0] not in ("NotImplementedError", "SyntaxError", "IndentationError"):
            where = meta.get("grade_id") or f"cell {i} ({_first_line(cell)!r})"  # (syntax errors: _syntax_errors)
            report.problems.append(f"{where} raised {err[0]}: {err[1]}"[:300])


def add_arguments(parser) -> None:
    parser.add_argument("notebook", help="your homework notebook, e.g. homeworks/hw1_autoregressive/hw1.ipynb")
    parser.add_argument("--timeout", type=float, default=None,
                        help="whole-notebook limit in seconds (default: grading/nbgrader_config.py)")
    parser.add_argument("--cell-timeout", type=int, default=None, help="per-cell limit in seconds")
    parser.add_argument("--keep", default=None, help="also write the executed notebook here")
    parser.add_argument("--release", default=None, help="the released notebook yours comes from (found "
                        "automatically in the course's homeworks/ when not given)")
    course_folder.add_argument(parser)
    parser.add_argument("--out", default=None, help="where the quick run's plots go (default: out/ beside "
                        "your notebook)")


def main(args) -> int:
    report = validate(args.notebook, timeout_s=args.timeout, cell_timeout_s=args.cell_timeout, keep=args.keep,
                      release=getattr(args, "release", None), out=getattr(args, "out", None),
                      course=getattr(args, "course", None))
    print(report.format())
    if report.fatal:
        return 2
    return 0 if report.total == report.max_total and not report.problems else 1


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--execute":
    raise SystemExit(_execute(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]))
