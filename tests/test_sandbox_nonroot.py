"""The sandbox without root: the hostile class of ``test_autograde.py`` graded by an ordinary user.

When pytest runs as root, the test grades as a user id of its own (``setpriv --reuid/--regid
--clear-groups``, no passwd entry, a home of its own) in a copy of the course that user owns; as
an ordinary user it grades as itself. Either way the grader must pick the unprivileged sandbox
(bubblewrap) and give the root sandbox's results: every student the points of the honest content,
the same statuses, the gradebook and ``grades.csv`` in agreement with no row forged, and the
course copy and the submissions byte for byte as they were. Skips, with the reason, where
bubblewrap is missing or the kernel forbids unprivileged user namespaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import test_autograde as hostile
import test_autograde_parts as parts

from deepul_helpers.autograde import isolation, sandbox, transport
from deepul_helpers.autograde.student import StudentResult

pytestmark = pytest.mark.xdist_group("autograde")
ROOT = os.geteuid() == 0

DRIVER = '''
import dataclasses, json, os, sys, warnings
from deepul_helpers.autograde import isolation
from deepul_helpers.autograde.grade import autograde

if __name__ == "__main__":  # the grader's worker processes import this file again
    args = json.loads(sys.argv[1])
    caps = isolation.capabilities()
    report = {"mode": caps.mode, "warnings": caps.warnings, "uid": os.getuid()}
    if caps.mode == "bwrap":
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            results = autograde(args["assignment"], args["subs"], **args["kwargs"])
        report["grader_warnings"] = [str(w.message) for w in seen]
        report["results"] = [dataclasses.asdict(r) for r in results]
    json.dump(report, open(args["report"], "w"))
'''


def tree_hash(path: Path) -> dict[str, str]:
    """Every file's hash (``__pycache__`` aside: the trusted grader's import of the verdict writes it)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*")) if "__pycache__" not in p.parts}


def free_uid() -> int:
    import pwd

    for uid in range(43_000 + os.getpid() % 1000, 60_000):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise RuntimeError("no free uid")


def as_user(cmd: list[str], uid: int, home: Path) -> list[str]:
    """``cmd`` as ``uid`` (no groups); where the Python installation sits in a private folder
    (e.g. /root/.pyenv), a private mount namespace shows it, and only it, to that user."""
    env = ["env", "-i", f"HOME={home}", f"USER=u{uid}", f"LOGNAME=u{uid}", "PATH=/usr/bin:/bin",
           "LANG=C.UTF-8", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"]
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *env, *cmd]
    blocked = {isolation._blocking_ancestor(p) for p in isolation.runtime_paths()} - {None}
    if not blocked:
        return cmd
    wrap = ["bwrap", "--bind", "/", "/", "--dev-bind", "/dev", "/dev"]
    for anc in sorted(blocked):
        wrap += ["--tmpfs", anc]
    for p in isolation.runtime_paths():
        anc = isolation._blocking_ancestor(p)
        if anc:
            for d in reversed(Path(p).parents):  # the folders bubblewrap creates, open to the user
                if len(d.parts) > len(Path(anc).parts):
                    wrap += ["--perms", "0755", "--dir", str(d)]
            wrap += ["--ro-bind", p, p]
    return [*wrap, "--", *cmd]


@pytest.fixture(scope="module")
def graded_nonroot():
    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    if ROOT and not shutil.which("setpriv"):
        pytest.skip("util-linux setpriv is missing")
    # As root: a folder outside /tmp and outside any home, so that the sandbox's own empty mounts
    # over solutions/, grading/, the submissions and outputs are what hides them.
    base = Path(tempfile.mkdtemp(prefix="deepul-nonroot-", dir="/var/lib" if ROOT else None))
    try:
        uid = free_uid() if ROOT else os.getuid()
        root, subs, home = base / "course", base / "submitted", base / "home"
        shutil.copytree(hostile.FIXTURE, root)
        home.mkdir()
        gradebook = base / "gb" / "gradebook.db"
        gradebook.parent.mkdir()
        secrets = {"solution": str(root / "solutions" / hostile.ASSIGNMENT / "hw0.ipynb"),
                   "other_student": str(subs / "a_full" / hostile.ASSIGNMENT / "hw0.ipynb"),
                   "gradebook": str(gradebook)}
        expected = hostile.hostile_class(subs, secrets)
        before = {"course": tree_hash(root), "submitted": tree_hash(subs)}
        db = f"sqlite:///{gradebook}"
        kwargs = dict(workers=2, timeout_s=90, cell_timeout_s=5, memory_mb=2048, db=db, source_root=str(root),
                      progress=False, out=str(base / "out"))
        (base / "driver.py").write_text(DRIVER)
        args = json.dumps({"assignment": hostile.ASSIGNMENT, "subs": str(subs), "kwargs": kwargs,
                           "report": str(base / "report.json")})
        cmd = [sys.executable, str(base / "driver.py"), args]
        if ROOT:
            for p in [base, *base.rglob("*")]:
                os.lchown(p, uid, uid)
            os.chmod(base, 0o700)
            cmd = as_user(cmd, uid, home)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=base)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        report = json.loads((base / "report.json").read_text())
        if report["mode"] != "bwrap":
            pytest.skip("no unprivileged sandbox here: " + "; ".join(report["warnings"]))
        results = {d["student"]: StudentResult(**d) for d in report["results"]}
        yield dict(base=base, root=root, subs=subs, db=db, expected=expected, results=results, kwargs=kwargs,
                   uid=uid, report=report, before=before, stderr=proc.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.grading
def test_hostile_class_as_an_ordinary_user_gets_the_root_sandbox_results(graded_nonroot):
    g = graded_nonroot
    assert g["report"]["uid"] == g["uid"] != 0
    assert not g["report"]["warnings"] and not any("NOT ISOLATED" in w for w in g["report"]["grader_warnings"])
    # The same checks as the root run of test_autograde.py, on this run's results and files.
    hostile.test_every_student_gets_exactly_the_points_of_the_honest_content(g)
    hostile.test_statuses_say_what_happened(g)
    hostile.test_gradebook_csv_and_feedback_agree_and_nothing_leaks(g)
    assert all(r.status != "grader-error" for r in g["results"].values())


@pytest.mark.grading
def test_ordinary_user_grading_leaves_course_and_submissions_untouched(graded_nonroot):
    g = graded_nonroot
    assert tree_hash(g["root"]) == g["before"]["course"]
    assert tree_hash(g["subs"]) == g["before"]["submitted"]


@pytest.mark.grading
def test_bwrap_walls_seen_from_inside(tmp_path, monkeypatch):
    """The walls test of test_autograde_parts.py, in the bubblewrap mode (forced as root)."""
    monkeypatch.setenv("DEEPUL_SANDBOX", "bwrap")
    isolation.capabilities.cache_clear()
    try:
        if not isolation.capabilities().bwrap:
            pytest.skip("no unprivileged sandbox here: " + "; ".join(isolation.capabilities().warnings))
        outside = Path(tempfile.mkdtemp(prefix="deepul-test-", dir="/var/lib" if ROOT else None))
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        other = Path(tempfile.mkdtemp(prefix="deepul-test-other-")) / "nb.ipynb"
        box = Path(tempfile.mkdtemp(prefix="deepul-test-box-"))
        try:
            secret = outside / "solutions" / "hw.ipynb"
            secret.parent.mkdir()
            secret.write_text("solution")
            gradebook = outside / "gb" / "gradebook.db"
            gradebook.parent.mkdir()
            gradebook.write_text("db")
            other.write_text("another student's notebook")
            verdict = outside / "verdicts" / "v.py"
            verdict.parent.mkdir()
            verdict.write_text(parts.PROBE.format(port=listener.getsockname()[1], secret=str(secret),
                                                  gradebook=str(gradebook), other=str(other)))
            work, control = box / "work", box / "control"
            work.mkdir()
            control.mkdir(mode=0o700)
            isolation.prepare_workdir(work, None)
            spec = {"mode": "verdict", "workdir": str(work), "uid": None, "expose": isolation.runtime_paths(),
                    "hide": [str(secret.parent), str(gradebook.parent), str(verdict.parent)], "hide_tmp": True,
                    "verdict_path": str(verdict), "seed": 1, "setup_source": "", "parameters": {}, "cells": [],
                    "questions": [{"grade_id": "q", "requires": [], "forbidden": [], "timeout_s": 30}]}
            run = sandbox.run(spec, control, sandbox.Limits(timeout_s=60, memory_mb=2048), event_pipe=True)
            assert run.returncode == 0, run.output
            seen = transport.load(work / "probe", "q")
            assert gradebook.read_text() == "db" and secret.read_text() == "solution"
        finally:
            listener.close()
            for d in (outside, other.parent, box):
                shutil.rmtree(d, ignore_errors=True)
    finally:
        isolation.capabilities.cache_clear()
    assert not seen["read_secret"] and not seen["write_gradebook"] and not seen["read_other"]
    runtime_under_tmp = {os.path.realpath(p).split("/")[2] for p in isolation.runtime_paths()
                         if os.path.realpath(p).startswith("/tmp/")}
    assert sorted(seen["tmp"]) == sorted({"sandbox"} | runtime_under_tmp)
    assert not seen["network"] and seen["write_own"]
    assert seen["pids"] < 10 and seen["as_limit"] == 2048 * 2**20


DAEMON = '''
import os, time
from deepul_helpers.autograde.verdict import Question
HIDDEN_SEED = 1

def probe(ns, seed):
    if os.fork() == 0:  # a daemon: new session, its parent gone; it keeps writing beside the submission
        os.setsid()
        if os.fork() == 0:
            while True:
                with open("/tmp/sandbox/alive.txt", "a") as f:
                    f.write("x")
                time.sleep(0.05)
        os._exit(0)
    time.sleep(0.5)
    return {"ok": 1}

QUESTIONS = [Question(grade_id="q", points=1, requires=(), probe=probe, judge=None, timeout_s=30)]
'''


@pytest.mark.grading
def test_bwrap_process_tree_dies_with_the_run(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("DEEPUL_SANDBOX", "bwrap")
    isolation.capabilities.cache_clear()
    box = Path(tempfile.mkdtemp(prefix="deepul-test-box-"))
    try:
        if not isolation.capabilities().bwrap:
            pytest.skip("no unprivileged sandbox here: " + "; ".join(isolation.capabilities().warnings))
        verdict = box / "v.py"
        verdict.write_text(DAEMON)
        work, control = box / "work", box / "control"
        work.mkdir()
        control.mkdir(mode=0o700)
        isolation.prepare_workdir(work, None)
        spec = {"mode": "verdict", "workdir": str(work), "uid": None, "expose": isolation.runtime_paths(),
                "hide": [], "hide_tmp": True, "verdict_path": str(verdict), "seed": 1, "setup_source": "",
                "parameters": {}, "cells": [],
                "questions": [{"grade_id": "q", "requires": [], "forbidden": [], "timeout_s": 30}]}
        run = sandbox.run(spec, control, sandbox.Limits(timeout_s=60, memory_mb=2048), event_pipe=True)
        assert run.returncode == 0, run.output
        grown = (work / "alive.txt").stat().st_size
        assert grown > 0  # the daemon did run
        time.sleep(1.0)
        assert (work / "alive.txt").stat().st_size == grown  # and died with the run
    finally:
        isolation.capabilities.cache_clear()
        shutil.rmtree(box, ignore_errors=True)
