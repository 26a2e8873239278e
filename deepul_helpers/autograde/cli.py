"""``deepul autograde ASSIGNMENT --submissions DIR``: grade a class, sandboxed, in parallel."""

from __future__ import annotations

import os
import sys


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"deepul autograde: --shard wants K/N (e.g. 0/3), got {text!r}") from None
    if not 0 <= k < n:
        raise SystemExit(f"deepul autograde: --shard K/N needs 0 <= K < N, got {text!r}")
    return k, n


def _shown(url: str) -> str:
    """A gradebook URL without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def add_arguments(parser) -> None:
    parser.add_argument("assignment", help="folder name under solutions/, e.g. hw1_autoregressive")
    parser.add_argument("--submissions", required=True,
                        help="DIR/<student>/<assignment>/*.ipynb (nbgrader), DIR/<student>[_*].zip or "
                             "DIR/<student>_*.ipynb")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="submissions graded at once (default: cores, at most 4)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="wall-clock seconds for each sandboxed run of a submission (default: "
                             "c.Deepul.notebook_timeout_s in grading/nbgrader_config.py, else 600)")
    parser.add_argument("--cell-timeout", type=float, default=None,
                        help="seconds per notebook cell (default: c.Deepul.cell_timeout_s, else 300)")
    parser.add_argument("--memory-mb", type=int, default=3072, help="address-space limit per process (default 3072)")
    parser.add_argument("--db", default=None,
                        help="gradebook SQLAlchemy URL (default $DEEPUL_GRADEBOOK or grading/out/gradebook.db)")
    parser.add_argument("--out", default=None, help="folder for grades.csv, feedback/, logs/ "
                                                    "(default grading/out/ASSIGNMENT)")
    parser.add_argument("--student", action="append", default=None, help="grade only this student (repeatable)")
    parser.add_argument("--shard", default=None, help="K/N: grade every N-th student from the K-th (several "
                                                      "machines sharing a PostgreSQL gradebook)")
    parser.add_argument("--course", "--source-root", dest="course", default=None, metavar="PATH",
                        help="the course folder holding solutions/ and grading/ (default: $DEEPUL_COURSE, else "
                             "the current folder or the first folder above it holding grading/nbgrader_config.py "
                             "and solutions/)")
    parser.add_argument("--no-notebook", action="store_true",
                        help="verdict only: skip executing the whole notebook (no executed notebook in the "
                             "feedback, no review of in-notebook claims); same grades, much faster")
    parser.add_argument("--formgrader", action="store_true", default=None,
                        help="also with --out: write nbgrader's submitted/ and autograded/ folders where "
                             "grading/nbgrader_config.py puts them (always done without --out), for formgrader")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox folders (for debugging)")


def main(args) -> int:
    from deepul_helpers.autograde.course import CourseError, root, setting
    from deepul_helpers.autograde.grade import autograde, output_paths

    try:
        course = root(args.course)
    except CourseError as e:
        print(f"deepul autograde: {e}", file=sys.stderr)
        return 2
    timeout = args.timeout if args.timeout is not None else setting("notebook_timeout_s", 600.0, course)
    cell_timeout = args.cell_timeout if args.cell_timeout is not None else setting("cell_timeout_s", 300.0, course)
    try:
        results = autograde(args.assignment, args.submissions, workers=args.workers, timeout_s=timeout,
                            memory_mb=args.memory_mb, cell_timeout_s=cell_timeout, db=args.db, out=args.out,
                            source_root=course, students=args.student,
                            shard=_shard(args.shard) if args.shard else None, keep=args.keep,
                            run_notebook=not args.no_notebook, nbgrader_folders=args.formgrader)
    except (CourseError, FileNotFoundError) as e:
        print(f"deepul autograde: {e}", file=sys.stderr)
        return 2
    broken = [r.student for r in results if r.status == "grader-error"]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    print(f"graded {len(results)} submissions: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    out_dir, db_url = output_paths(args.assignment, course, args.out, args.db)
    print(f"  course:    {course}\n"
          f"  grades:    {out_dir.resolve() / 'grades.csv'}\n"
          f"  feedback:  {out_dir.resolve() / 'feedback'}/<student>.html\n"
          f"  logs:      {out_dir.resolve() / 'logs'}/<student>.txt\n"
          f"  gradebook: {_shown(db_url)}")
    attention = [r for r in results if r.status in ("review", "flagged", "grader-error")]
    if attention:
        print("  look at: " + ", ".join(f"{r.student} ({r.status})" for r in attention[:20])
              + (f" and {len(attention) - 20} more" if len(attention) > 20 else ""))
    if broken:
        print(f"deepul autograde: the grader failed on {len(broken)} submission(s) ({', '.join(broken[:10])}); "
              "see their logs and grades.csv", file=sys.stderr)
        return 1
    return 0
