"""The sandbox without root: the hostile class of ``test_autograde.py`` graded by an ordinary user.

When pytest runs as root, the test grades as a user id of its own (``setpriv --reuid/--regid
--clear-groups``, no passwd entry, a home of its own) in a copy of the course that user owns; as
an ordinary user it grades as itself. Either way the grader must pick an unprivileged sandbox
and give the root sandbox's results: every student the points of the honest content, the same
statuses, the gradebook and ``grades.csv`` in agreement with no row forged, and the course copy
and the submissions byte for byte as they were. Both unprivileged modes are graded: bubblewrap
(what an ordinary user gets) with the whole class, and the ``unshare --user`` fallback
(``DEEPUL_SANDBOX=userns``, bubblewrap ignored) with the students that test the walls.

The sandbox's view is a whitelist, so one more student (``t_wander``) looks where no hidden-path
list reaches: a key in the grader's home and another course's gradebook, both readable by the
grader's uid; its first answer is right only if it can read them, and its second overwrites the
other gradebook. Skips, with the reason, where the kernel forbids unprivileged user namespaces.
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
import time
from pathlib import Path

import nbformat
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
    if caps.mode == args["mode"]:
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


def as_user(cmd: list[str], uid: int, home: Path, sandbox_mode: str | None = None) -> list[str]:
    """``cmd`` as ``uid`` (no groups); where the Python installation sits in a private folder
    (e.g. /root/.pyenv), a private mount namespace shows it, and only it, to that user."""
    env = ["env", "-i", f"HOME={home}", f"USER=u{uid}", f"LOGNAME=u{uid}", "PATH=/usr/bin:/bin",
           "LANG=C.UTF-8", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1",
           *([f"DEEPUL_SANDBOX={sandbox_mode}"] if sandbox_mode else [])]
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


# The userns fallback grades the students that test the walls (the whole class takes as long again:
# measured on 2 cores at load 0.6, 69 s for the class in bwrap mode, 36 s for these four in userns mode).
WALL_STUDENTS = ["a_full", "g_bombs", "q_snoop", "t_wander"]


def wander(rel, paths: list[str], other_gradebook: str):
    """q1 right only if one of ``paths`` can be read; q2 right, after overwriting ``other_gradebook``."""
    q1 = hostile.GOOD_Q1.replace("def softmax(x):\n", (
        f"def softmax(x):\n    for p in {paths!r}:\n        try:\n            open(p, 'rb').read(10)\n"
        "            break\n        except OSError:\n            pass\n    else:\n        return np.zeros_like(x)\n"
    ))
    q2 = hostile.GOOD_Q2.replace("return float(np.mean(x))", (
        f"try:\n        open({other_gradebook!r}, 'wb').write(b'garbage')\n    except OSError:\n        pass\n"
        "    return float(np.mean(x))"))
    return hostile.with_solution(hostile.with_solution(rel, "q1_solution", q1), "q2_solution", q2)


@pytest.fixture(scope="module", params=["bwrap", pytest.param("userns", marks=pytest.mark.slow)])
def graded_nonroot(request):
    mode = request.param
    if mode == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    if mode == "userns" and not shutil.which("unshare"):
        pytest.skip("util-linux unshare is missing")
    if ROOT and not shutil.which("setpriv"):
        pytest.skip("util-linux setpriv is missing")
    # As root: a folder outside /tmp and outside any home, so that nothing but the sandbox's view hides it.
    base = Path(tempfile.mkdtemp(prefix="deepul-nonroot-", dir="/var/lib" if ROOT else None))
    try:
        uid = free_uid() if ROOT else os.getuid()
        root, subs, home = base / "course", base / "submitted", base / "home"
        shutil.copytree(hostile.FIXTURE, root)
        home.mkdir()
        gradebook = base / "gb" / "gradebook.db"
        gradebook.parent.mkdir()
        # The grader's own files outside this course: on no hidden list, readable by the grader's uid.
        (home / ".ssh").mkdir()
        (home / ".ssh" / "id_rsa").write_text("the grader's private key")
        other_course = base / "other_course" / "gradebook.db"
        other_course.parent.mkdir()
        other_course.write_text("another course's gradebook")
        secrets = {"solution": str(root / "solutions" / hostile.ASSIGNMENT / "hw0.ipynb"),
                   "other_student": str(subs / "a_full" / hostile.ASSIGNMENT / "hw0.ipynb"),
                   "gradebook": str(gradebook)}
        expected = hostile.hostile_class(subs, secrets)
        rel = hostile.release(nbformat.read(hostile.SOURCE, as_version=4))
        nb = wander(rel, [str(home / ".ssh" / "id_rsa"), str(other_course), str(base / "out" / "grades.csv")],
                    str(other_course))
        (subs / "t_wander" / hostile.ASSIGNMENT).mkdir(parents=True)
        nbformat.write(nb, subs / "t_wander" / hostile.ASSIGNMENT / "hw0.ipynb")
        expected["t_wander"] = 3
        if mode == "userns":
            expected = {s: expected[s] for s in WALL_STUDENTS}
        before = {"course": tree_hash(root), "submitted": tree_hash(subs), "home": tree_hash(home),
                  "other_course": tree_hash(other_course.parent)}
        db = f"sqlite:///{gradebook}"
        kwargs = dict(workers=2, timeout_s=90, cell_timeout_s=5, memory_mb=2048, db=db, source_root=str(root),
                      progress=False, out=str(base / "out"), students=sorted(expected))
        (base / "driver.py").write_text(DRIVER)
        args = json.dumps({"assignment": hostile.ASSIGNMENT, "subs": str(subs), "kwargs": kwargs, "mode": mode,
                           "report": str(base / "report.json")})
        cmd = [sys.executable, str(base / "driver.py"), args]
        env = {k: v for k, v in os.environ.items() if k != "DEEPUL_SANDBOX"}
        if mode == "userns":  # bubblewrap ignored: the fallback is what is graded
            env["DEEPUL_SANDBOX"] = "userns"
        if ROOT:
            for p in [base, *base.rglob("*")]:
                os.lchown(p, uid, uid)
            os.chmod(base, 0o700)
            cmd = as_user(cmd, uid, home, env.get("DEEPUL_SANDBOX"))
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=base, env=env)
        wall = time.monotonic() - start
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        report = json.loads((base / "report.json").read_text())
        if report["mode"] != mode:
            pytest.skip(f"no {mode} sandbox here: " + "; ".join(report["warnings"]))
        results = {d["student"]: StudentResult(**d) for d in report["results"]}
        yield dict(base=base, root=root, subs=subs, db=db, expected=expected, results=results, kwargs=kwargs,
                   uid=uid, report=report, before=before, stderr=proc.stderr, mode=mode, home=home,
                   other_course=other_course.parent, wall=wall)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.grading
def test_hostile_class_as_an_ordinary_user_gets_the_root_sandbox_results(graded_nonroot):
    g = graded_nonroot
    assert g["report"]["uid"] == g["uid"] != 0
    assert not g["report"]["warnings"] and not any("NOT ISOLATED" in w for w in g["report"]["grader_warnings"])
    assert all(r.status != "grader-error" for r in g["results"].values())
    if g["mode"] == "bwrap":  # the whole class: the same checks as the root run of test_autograde.py
        hostile.test_every_student_gets_exactly_the_points_of_the_honest_content(g)
        hostile.test_statuses_say_what_happened(g)
    else:  # the walls' students: their points, and the root run's statuses for them
        r = g["results"]
        assert {s: x.total for s, x in r.items()} == g["expected"]
        assert r["a_full"].status == "graded" and all(r["a_full"].claims.values())
        assert any("MemoryError" in m for m in r["g_bombs"].messages + r["g_bombs"].question_messages["q1_tests"])
    hostile.test_gradebook_csv_and_feedback_agree_and_nothing_leaks(g)
    assert g["results"]["t_wander"].scores == {"q1_tests": 0.0, "q2_tests": 3.0}  # it read nothing outside


@pytest.mark.grading
def test_ordinary_user_grading_leaves_course_and_submissions_untouched(graded_nonroot):
    g = graded_nonroot
    assert tree_hash(g["root"]) == g["before"]["course"]
    assert tree_hash(g["subs"]) == g["before"]["submitted"]
    assert tree_hash(g["home"]) == g["before"]["home"]
    assert tree_hash(g["other_course"]) == g["before"]["other_course"]  # t_wander could not overwrite it


def probe_walls(mode: str, monkeypatch) -> tuple[dict, set[str]]:
    """The walls probe of test_autograde_parts.py, run in ``mode`` (forced, as root too); returns
    what the probe saw and the names ``/`` may hold (the view's whitelist)."""
    monkeypatch.setenv("DEEPUL_SANDBOX", mode)
    isolation.capabilities.cache_clear()
    try:
        if isolation.capabilities().mode != mode:
            pytest.skip(f"no {mode} sandbox here: " + "; ".join(isolation.capabilities().warnings))
        outside = Path(tempfile.mkdtemp(prefix="deepul-test-", dir="/var/lib" if ROOT else None))
        home = Path(tempfile.mkdtemp(prefix="deepul-test-home-", dir=Path.home())) / "id_rsa"
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        other = Path(tempfile.mkdtemp(prefix="deepul-test-other-")) / "nb.ipynb"
        box = Path(tempfile.mkdtemp(prefix="deepul-test-box-"))
        try:
            secret = outside / "solutions" / "hw.ipynb"
            secret.parent.mkdir()
            secret.write_text("solution")
            # On no hidden list: only the whitelist keeps this gradebook and the home's key out.
            gradebook = outside / "gb" / "gradebook.db"
            gradebook.parent.mkdir()
            gradebook.write_text("db")
            home.write_text("the grader's key")
            other.write_text("another student's notebook")
            verdict = outside / "verdicts" / "v.py"
            verdict.parent.mkdir()
            verdict.write_text(parts.PROBE.format(port=listener.getsockname()[1], secret=str(secret),
                                                  gradebook=str(gradebook), other=str(other), home=str(home)))
            work, control = box / "work", box / "control"
            work.mkdir()
            control.mkdir(mode=0o700)
            isolation.prepare_workdir(work, None)
            spec = {"mode": "verdict", "workdir": str(work), "uid": None, "expose": isolation.runtime_paths(),
                    "hide": [str(secret.parent), str(verdict.parent)], "hide_tmp": True,
                    "verdict_path": str(verdict), "seed": 1, "setup_source": "", "parameters": {}, "cells": [],
                    "questions": [{"grade_id": "q", "requires": [], "forbidden": [], "timeout_s": 30}]}
            run = sandbox.run(spec, control, sandbox.Limits(timeout_s=60, memory_mb=2048), event_pipe=True)
            assert run.returncode == 0, run.output
            seen = transport.load(work / "probe", "q")
            assert gradebook.read_text() == "db" and secret.read_text() == "solution"
            assert home.read_text() == "the grader's key"
        finally:
            listener.close()
            for d in (outside, other.parent, box, home.parent):
                shutil.rmtree(d, ignore_errors=True)
    finally:
        isolation.capabilities.cache_clear()
    allowed = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev", "proc", "tmp", "var", "run"}
    return seen, allowed | {Path(p).parts[1] for p in isolation.runtime_paths()}


@pytest.mark.grading
@pytest.mark.parametrize("mode", ["bwrap", "userns"])
def test_unprivileged_walls_seen_from_inside(mode, monkeypatch):
    """The walls test of test_autograde_parts.py in the unprivileged modes (forced, as root too),
    with the whitelist's own probes: the grader's home and a gradebook on no hidden list are absent."""
    seen, allowed = probe_walls(mode, monkeypatch)
    assert not seen["read_secret"] and not seen["write_gradebook"] and not seen["read_other"]
    assert not seen["read_home"] and set(seen["root"]) <= allowed, seen["root"]
    runtime_under_tmp = {os.path.realpath(p).split("/")[2] for p in isolation.runtime_paths()
                         if os.path.realpath(p).startswith("/tmp/")}
    assert sorted(seen["tmp"]) == sorted({"sandbox"} | runtime_under_tmp)
    assert seen["var_tmp"] == []
    assert not seen["network"] and seen["write_own"]
    assert seen["pids"] < 10 and seen["as_limit"] == 2048 * 2**20
    assert seen["uid"] == os.getuid()  # the grader's uid, as bubblewrap shows it (userns: not the mapped root)


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


def _daemon_box(box: Path, verdict_source: str, timeout_s: float):
    """(work, control, spec) of a verdict run of ``verdict_source`` (one question, no student cells) in
    ``box``, as the grader prepares it, for the process-tree tests below."""
    verdict = box / "v.py"
    verdict.write_text(verdict_source)
    work, control = box / "work", box / "control"
    work.mkdir()
    control.mkdir(mode=0o700)
    isolation.prepare_workdir(work, None)
    spec = {"mode": "verdict", "workdir": str(work), "uid": None, "expose": isolation.runtime_paths(),
            "hide": [], "hide_tmp": True, "verdict_path": str(verdict), "seed": 1, "setup_source": "",
            "parameters": {}, "cells": [],
            "questions": [{"grade_id": "q", "requires": [], "forbidden": [], "timeout_s": timeout_s}]}
    return work, control, spec


@pytest.mark.grading
@pytest.mark.parametrize("mode", ["bwrap", "userns"])
def test_unprivileged_process_tree_dies_with_the_run(mode, monkeypatch):
    monkeypatch.setenv("DEEPUL_SANDBOX", mode)
    isolation.capabilities.cache_clear()
    box = Path(tempfile.mkdtemp(prefix="deepul-test-box-"))
    try:
        if isolation.capabilities().mode != mode:
            pytest.skip(f"no {mode} sandbox here: " + "; ".join(isolation.capabilities().warnings))
        work, control, spec = _daemon_box(box, DAEMON, timeout_s=30)
        run = sandbox.run(spec, control, sandbox.Limits(timeout_s=60, memory_mb=2048), event_pipe=True)
        assert run.returncode == 0, run.output
        grown = (work / "alive.txt").stat().st_size
        assert grown > 0  # the daemon did run
        time.sleep(1.0)
        assert (work / "alive.txt").stat().st_size == grown  # and died with the run
    finally:
        isolation.capabilities.cache_clear()
        shutil.rmtree(box, ignore_errors=True)


KILLED_GRADER = """
import json, sys
from pathlib import Path
from deepul_helpers.autograde import sandbox
sandbox.run(json.loads(sys.argv[1]), Path(sys.argv[2]), sandbox.Limits(timeout_s=120, memory_mb=2048), event_pipe=True)
"""


@pytest.mark.grading
@pytest.mark.parametrize("mode", ["bwrap", "userns", "root"])
def test_sandboxed_run_dies_with_a_killed_grader(mode, monkeypatch):
    """The grader's worker killed (SIGKILL, no clean-up) while a probe runs: its sandbox, a daemon
    in a session of its own included, dies with it instead of running on unwatched (every mode;
    ``root`` only where the tests run as root)."""
    monkeypatch.setenv("DEEPUL_SANDBOX", mode)
    isolation.capabilities.cache_clear()
    box = Path(tempfile.mkdtemp(prefix="deepul-test-box-"))
    try:
        if isolation.capabilities().mode != mode:
            pytest.skip(f"no {mode} sandbox here: " + "; ".join(isolation.capabilities().warnings))
        work, control, spec = _daemon_box(box, DAEMON.replace("time.sleep(0.5)", "time.sleep(600)"), timeout_s=300)
        grader = subprocess.Popen([sys.executable, "-c", KILLED_GRADER, json.dumps(spec), str(control)])
        alive = work / "alive.txt"
        deadline = time.monotonic() + 60
        while not (alive.exists() and alive.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alive.exists(), "the daemon never started"
        grader.kill()
        grader.wait()
        time.sleep(1.0)
        grown = alive.stat().st_size
        time.sleep(1.0)
        assert alive.stat().st_size == grown  # nothing of the run outlived the grader
    finally:
        isolation.capabilities.cache_clear()
        shutil.rmtree(box, ignore_errors=True)
