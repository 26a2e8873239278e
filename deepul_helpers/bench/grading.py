"""``deepul bench grading``: grading throughput of the autograde engine.

Grades N copies of an assignment's reference solution (the nbgrader source notebook, solutions
filled in) with ``deepul_helpers.autograde.autograde``, once with 1 worker and once with one
worker per CPU core, and reports seconds per submission (wall clock, and CPU time of all
grading processes), the throughput ratio, and the peak memory of the largest single grading
process (a pool worker, a sandboxed kernel or a probe).
Every copy must score full marks, or the row says how many did.

Each configuration runs in a fresh child process so that its peak memory is its own.
Targets for homework 1 on a 2-core CPU (DESIGN): at most 30 s per submission, and at least
1.7x the throughput of 1 worker with 2 workers.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepul_helpers import config
from deepul_helpers.autograde import course
from deepul_helpers.autograde.course import VERDICT_DIR, source_notebook


def measure(assignment: str, n: int, workers: int, *, source_root: str | Path | None = None,
            verdict_root: str = VERDICT_DIR, timeout_s: float = 600.0, db: str | None = None) -> dict:
    """Grade ``n`` copies of the reference solution with ``workers`` workers, in this process.

    ``db``: the gradebook URL (default: a throw-away SQLite file); ``source_root``: the course folder
    (default: found by ``course.root``'s rule)."""
    from deepul_helpers.autograde import autograde

    root = course.root(source_root)
    source = source_notebook(assignment, root)
    with tempfile.TemporaryDirectory(prefix="deepul-bench-grading-") as tmp:
        tmp = Path(tmp)
        for i in range(n):
            folder = tmp / "submitted" / f"student{i:03d}" / assignment
            folder.mkdir(parents=True)
            shutil.copy(source, folder / source.name)
        start = time.perf_counter()
        results = autograde(assignment, tmp / "submitted", workers=workers, timeout_s=timeout_s,
                            db=db or f"sqlite:///{tmp / 'gradebook.db'}", out=tmp / "out", source_root=root,
                            verdict_root=verdict_root, progress=False)
        wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every grading process, once it ended
    peak_kb = usage.ru_maxrss  # Linux: kilobytes, the largest single process
    per_student = sorted(r.seconds for r in results)
    return {
        "workers": workers,
        "submissions": n,
        "wall_s": wall,
        "s_per_submission": wall / n,
        "median_student_s": per_student[len(per_student) // 2] if per_student else None,
        # CPU time of all grading processes per submission: what the wall time would be on one
        # otherwise idle core; much less disturbed than wall time when the machine is shared.
        "cpu_s_per_submission": (usage.ru_utime + usage.ru_stime) / n,
        "peak_rss_mb_largest_process": peak_kb / 1024.0,
        "full_marks": f"{sum(r.total == r.max_total and r.max_total > 0 for r in results)}/{n}",
        "statuses": ",".join(sorted({r.status for r in results})),
    }


def _measure_in_child(assignment: str, n: int, workers: int, source_root, verdict_root: str) -> dict:
    arg = json.dumps({"assignment": assignment, "n": n, "workers": workers,
                      "source_root": str(source_root), "verdict_root": verdict_root})
    proc = subprocess.run([sys.executable, "-m", "deepul_helpers.bench.grading", "--measure", arg],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"grading benchmark child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool, device: str = "auto", *, assignment: str = "hw1_autoregressive", n: int | None = None,
        source_root: str | Path | None = None, verdict_root: str = VERDICT_DIR) -> list[dict]:
    """Rows for 1 worker and for one worker per core (``device`` is unused: grading runs on the CPU)."""
    source_root = course.root(source_root)
    cores = os.cpu_count() or 1
    n = n or config.pick(4 * cores, cores, quick=quick)
    rows = []
    for workers in sorted({1, cores}):
        rows.append(_measure_in_child(assignment, n, workers, source_root, verdict_root))
    base = rows[0]["wall_s"]
    for row in rows:
        row["throughput_vs_1_worker"] = base / row["wall_s"]
    return [{"assignment": assignment, **r} for r in rows]


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--measure":
    a = json.loads(sys.argv[2])
    row = measure(a["assignment"], a["n"], a["workers"], source_root=a["source_root"],
                  verdict_root=a["verdict_root"])
    print(json.dumps(row))
