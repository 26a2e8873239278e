"""The grader's parts: reading solution cells, the feedback notebook, plain-data transport,
collecting submissions, and the sandbox's walls (checked from inside it)."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import tempfile
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from deepul_helpers.autograde import audit, isolation, sandbox, transport
from deepul_helpers.autograde import cells as nbcells
from deepul_helpers.autograde.collect import collect, pick_notebook

SOURCE = Path(__file__).parent / "fixtures" / "hw0_demo" / "solutions" / "hw0_demo" / "hw0.ipynb"


def test_filter_cell_keeps_definitions_and_drops_everything_else():
    src = "%matplotlib inline\nimport numpy as np\nX = 3\nfor i in range(10**9):\n    pass\n" \
          "def f(x):\n    return x\nprint(f(2))\nclass A:\n    pass\n"
    code, msgs = nbcells.filter_cell(src)
    ns: dict = {}
    exec(code, ns)
    assert {"np", "X", "f", "A"} <= set(ns) and "i" not in ns
    assert any("magic" in m for m in msgs) and any("For" in m and "Expr" in m for m in msgs)
    assert nbcells.filter_cell("def f(:\n")[0] is None


def test_cells_outside_the_solution_cells_give_their_definitions_but_run_nothing():
    """Any unlocked cell contributes imports, def, class and constant assignments; a run cell's
    assignment (it calls the course's helper or the student's own code) is dropped; a cell whose
    lines are all indented is dedented as IPython does."""
    src = ("    import math\n    EPS = math.log(2)\n    SETTINGS = dict(epochs=3, lr=1e-3)\n"
           "    q1 = helper.run_q1(q1_fit, quick=quick)\n    model = Net()\n    class Net:\n        pass\n"
           "    math.pi = 3\n")
    code, msgs = nbcells.filter_cell(src, solution=False, modules={"helper": "deepul_helpers.homework.hw1"})
    ns: dict = {}
    exec(code, ns)
    assert {"math", "EPS", "SETTINGS", "Net"} <= set(ns) and "q1" not in ns and "model" not in ns and not msgs
    assert "math.pi" not in code  # an attribute target patches a module: not a constant
    assert "model" in nbcells.filter_cell(src)[0]  # a solution cell keeps every assignment, as before


def test_static_import_scan_sees_every_spelling():
    src = ("import scipy.special as sp\nfrom scipy import special\nm = __import__('os.path')\n"
           "import importlib\nn = importlib.import_module('deepul_helpers.models')\n")
    mods = nbcells.imported_modules(src)
    assert {"scipy.special", "scipy", "os.path", "deepul_helpers.models"} <= mods
    assert audit.module_matches("scipy.special._x", "scipy.special")
    assert not audit.module_matches("scipy.specialty", "scipy.special")


def test_solution_code_falls_back_to_cells_defining_the_required_names():
    nb = nbformat.read(SOURCE, as_version=4)
    source = nbcells.SourceNotebook.read(SOURCE)
    for c in nb.cells:  # strip every solution cell's metadata
        if nbcells.nbgrader_meta(c).get("solution"):
            c.metadata = {}
    code = nbcells.solution_code(nb, source, {"softmax", "fit_bernoulli", "bernoulli_nll"})
    ns: dict = {"np": np}
    for _, src in code.cells:
        exec(src, ns)
    assert callable(ns["softmax"]) and callable(ns["bernoulli_nll"])
    assert any("without its solution metadata" in m for m in code.messages)


def test_feedback_notebook_restores_tests_without_hidden_parts():
    src_nb = nbformat.read(SOURCE, as_version=4)
    source = nbcells.SourceNotebook.read(SOURCE)
    assert source.tests == {"q1_tests": 2.0, "q2_tests": 3.0}
    nb = nbformat.from_dict(src_nb)
    t1 = next(c for c in nb.cells if nbcells.grade_id(c) == "q1_tests")
    t1.source = "pass  # edited"
    nb.cells = [c for c in nb.cells if nbcells.grade_id(c) != "q2_tests"]
    nb.cells.append(nbformat.from_dict(dict(t1)))  # a duplicate
    fb, msgs = nbcells.feedback_notebook(nb, source)
    tests = [c for c in fb.cells if nbcells.grade_id(c) in source.tests]
    assert [nbcells.grade_id(c) for c in tests] == ["q1_tests", "q2_tests"]
    assert all("HIDDEN" not in c.source and "assert" in c.source for c in tests)
    assert any("duplicate" in m for m in msgs) and any("missing" in m for m in msgs)
    # Only the restored parameters cell keeps its tag: the run's parameters go in after it.
    tagged = [nbcells.grade_id(c) for c in fb.cells if "parameters" in c.metadata.get("tags", [])]
    assert tagged == ["parameters"]


def test_validate_and_the_grader_restore_locked_cells_by_one_rule():
    source = nbcells.SourceNotebook.read(SOURCE)
    nb = nbformat.read(SOURCE, as_version=4)
    release = copy.deepcopy(nb)
    for c in release.cells:
        if nbcells.is_test(c):
            c.source = nbcells.strip_hidden_tests(c.source)
    assert nbcells.locked_cells(release).keys() == source.locked.keys()
    t1 = next(c for c in nb.cells if nbcells.grade_id(c) == "q1_tests")
    t1.source = nbcells.strip_hidden_tests(t1.source).replace("\n", "   \n") + "\n\n"  # trailing blanks only
    t2 = next(c for c in nb.cells if nbcells.grade_id(c) == "q2_tests")
    t2.source = "pass"
    own = next(c for c in nb.cells if nbcells.grade_id(c) == "q1_solution")
    own.metadata["tags"] = ["parameters"]
    for locked in (source.locked, nbcells.locked_cells(release)):  # the grader's and validate's reference
        restored = nbcells.restore_locked(nb, locked)
        assert restored.changed == ["q2_tests"] and not restored.missing and not restored.duplicates
        by_id = {nbcells.grade_id(c): c for c in restored.nb.cells}
        assert "HIDDEN" not in by_id["q2_tests"].source and "assert" in by_id["q2_tests"].source
        assert by_id["q1_solution"].metadata["tags"] == []
    names = nbcells.defined_names("import numpy as np\nfrom a import b as c\nX: int = 1\nY, Z = 1, 2\n"
                                  "def f():\n    inner = 1\nclass K:\n    pass\nprint(1)\n")
    assert names == {"np", "c", "X", "Y", "Z", "f", "K"}


def test_audit_events_survive_the_channel_and_noise_is_kept():
    events = [audit.START, audit.Event(audit.Kind.IMPORT, "scipy.special"),
              audit.Event(audit.Kind.OPEN, "/x/scipy/special/__init__.py"), audit.END]
    lines = b"".join(e.encode() for e in events).decode().splitlines()
    assert lines == ["S", "I scipy.special", "O /x/scipy/special/__init__.py", "E"]
    assert audit.read_events(lines) == events and audit.completed(events)
    assert audit.forbidden_use(events, ("scipy.special",)) == "your code imported scipy.special"
    assert audit.forbidden_use(events[1:], ("scipy.special",)) is None  # before START: the grader's own imports
    noisy = audit.read_events([*lines, "garbage"])
    assert noisy[-1].kind is audit.Kind.NOISE and not audit.completed(noisy)
    assert audit.read_events(["S extra"])[0].kind is audit.Kind.NOISE


def test_transport_round_trip_and_rejections(tmp_path):
    value = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [1, 2.5, "x", True, None],
             "c": {"d": np.array([True, False])}, "nan": float("nan")}
    transport.dump(value, tmp_path, "q")
    back = transport.load(tmp_path, "q")
    assert back["a"].dtype == np.float32 and np.array_equal(back["a"], value["a"])
    assert back["b"] == [1, 2.5, "x", True, None] and np.isnan(back["nan"])
    for bad in (np.array([object()]), {"k": object()}, {1: 2}, {"__ndarray__": "a0"}):
        with pytest.raises(transport.TransportError):
            transport.dump(bad, tmp_path, "bad")
    # A forged npz holding a pickled object array is refused by the reader.
    np.save(tmp_path / "evil.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "f.npz", "w") as z:
        z.write(tmp_path / "evil.npy", "a0.npy")
    (tmp_path / "f.json").write_text('{"value": {"__ndarray__": "a0"}, "arrays": ["a0"]}')
    with pytest.raises(transport.TransportError):
        transport.load(tmp_path, "f")
    (tmp_path / "g.json").write_text('{"value": {"__class__": 1}, "arrays": []}')
    with pytest.raises(transport.TransportError):
        transport.load(tmp_path, "g")


def test_collect_reads_every_layout_and_follows_no_link(tmp_path):
    nb = nbformat.writes(nbformat.read(SOURCE, as_version=4)).encode()
    (tmp_path / "ann" / "hw0_demo").mkdir(parents=True)
    (tmp_path / "ann" / "hw0_demo" / "hw0.ipynb").write_bytes(nb)
    (tmp_path / "ann" / "hw0_demo" / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")
    with zipfile.ZipFile(tmp_path / "ben_hw0.zip", "w") as z:
        z.writestr("../../etc/hw0.ipynb", nb)
        z.writestr("notes.txt", "hi")
    (tmp_path / "cat_hw0.ipynb").write_bytes(nb)
    (tmp_path / "dan").symlink_to(tmp_path / "ann")
    subs = {s.student: s for s in collect(tmp_path, "hw0_demo")}
    assert sorted(subs) == ["ann", "ben", "cat"]
    assert subs["ann"].timestamp.year == 2026
    assert "hw0.ipynb" in subs["ben"].notebooks and any("notes.txt" in n for n in subs["ben"].notes)
    name, data, msgs = pick_notebook(subs["cat"], "hw0.ipynb", {"q1_tests"})
    assert name == "hw0.ipynb" and data == nb and not msgs


PROBE = '''
import os, socket, resource
from deepul_helpers.autograde.verdict import Question
HIDDEN_SEED = 1

def _try(fn):
    try:
        fn()
        return True
    except Exception:
        return False

def probe(ns, seed):
    port = {port}
    return {{
        "uid": os.getuid(),
        "read_secret": _try(lambda: open({secret!r}).read()),
        "write_gradebook": _try(lambda: open({gradebook!r}, "a").write("x")),
        "read_other": _try(lambda: open({other!r}).read()),
        "read_home": _try(lambda: open({home!r}).read()),  # the grader's own file, outside any course
        "root": sorted(os.listdir("/")),
        "tmp": sorted(os.listdir("/tmp")),
        "var_tmp": sorted(os.listdir("/var/tmp")) if os.path.isdir("/var/tmp") else [],
        "network": _try(lambda: socket.create_connection(("127.0.0.1", port), timeout=2)),
        "pids": len([p for p in os.listdir("/proc") if p.isdigit()]),
        "as_limit": resource.getrlimit(resource.RLIMIT_AS)[0],
        "write_own": _try(lambda: open("probe/own.txt", "w").write("ok")),
    }}

QUESTIONS = [Question(grade_id="q", points=1, requires=(), probe=probe, judge=None, timeout_s=30)]
'''


@pytest.mark.grading
def test_sandbox_walls_seen_from_inside(tmp_path):
    caps = isolation.capabilities()
    if not (caps.namespaces and caps.switch_user):
        pytest.skip("needs root and unshare: " + "; ".join(caps.warnings))
    # Outside /tmp and readable (even writable) by everyone: only the sandbox's mounts protect them.
    outside = Path(tempfile.mkdtemp(prefix="deepul-test-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    os.chmod(outside, 0o755)
    secret_dir = outside / "solutions"
    secret_dir.mkdir(mode=0o755)
    (secret_dir / "hw.ipynb").write_text("solution")
    os.chmod(secret_dir / "hw.ipynb", 0o644)
    gradebook = outside / "gb" / "gradebook.db"
    gradebook.parent.mkdir(mode=0o777)
    gradebook.write_text("db")
    os.chmod(gradebook, 0o666)
    other = Path("/tmp") / f"deepul-test-other-{os.getpid()}.txt"
    other.write_text("another student's notebook")
    os.chmod(other, 0o644)
    home = Path(tempfile.mkdtemp(prefix="deepul-test-home-", dir=Path.home())) / "id_rsa"
    home.write_text("the grader's key")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    verdict = outside / "verdicts" / "v.py"
    verdict.parent.mkdir()
    verdict.write_text(PROBE.format(port=listener.getsockname()[1], secret=str(secret_dir / "hw.ipynb"),
                                    gradebook=str(gradebook), other=str(other), home=str(home)))
    box = Path(tempfile.mkdtemp(prefix="deepul-test-box-"))
    try:
        work, control = box / "work", box / "control"
        work.mkdir()
        control.mkdir(mode=0o700)
        uid = isolation.UID_BASE + isolation.run_offset()
        isolation.prepare_workdir(work, uid)
        spec = {"mode": "verdict", "workdir": str(work), "uid": uid, "expose": isolation.runtime_paths(),
                "hide": [str(secret_dir), str(gradebook.parent), str(verdict.parent)], "hide_tmp": True,
                "verdict_path": str(verdict), "seed": 1, "setup_source": "", "parameters": {}, "cells": [],
                "questions": [{"grade_id": "q", "requires": [], "forbidden": [], "timeout_s": 30}]}
        run = sandbox.run(spec, control, sandbox.Limits(timeout_s=60, memory_mb=2048), event_pipe=True)
        assert run.returncode == 0, run.output
        seen = transport.load(work / "probe", "q")
        assert gradebook.read_text() == "db" and (secret_dir / "hw.ipynb").read_text() == "solution"
    finally:
        listener.close()
        other.unlink()
        for d in (box, outside, home.parent):
            shutil.rmtree(d, ignore_errors=True)
    assert seen["uid"] == uid and seen["uid"] != 0
    assert not seen["read_secret"] and not seen["write_gradebook"] and not seen["read_other"]
    assert not seen["read_home"]  # the root sandbox's user id has no right to the grader's home
    # /tmp holds the submission's folder, plus the runtime paths bound back when the course itself lives under /tmp
    runtime_under_tmp = {os.path.realpath(p).split("/")[2] for p in isolation.runtime_paths()
                         if os.path.realpath(p).startswith("/tmp/")}
    assert sorted(seen["tmp"]) == sorted({"sandbox"} | runtime_under_tmp)
    assert seen["var_tmp"] == []  # its own empty /var/tmp: nothing to read from, or leave for, another submission
    assert not seen["network"] and seen["write_own"]
    assert seen["pids"] < 10 and seen["as_limit"] == 2048 * 2**20


def test_cli_reports_setup_problems_with_exit_code_2(tmp_path, capsys):
    from deepul_helpers.cli import main

    root = Path(__file__).parent / "fixtures" / "hw0_demo"
    assert main(["autograde", "hw_nope", "--submissions", str(tmp_path), "--source-root", str(root)]) == 2
    assert "hw0_demo" in capsys.readouterr().err  # the known assignments are listed
    assert main(["autograde", "hw0_demo", "--submissions", str(tmp_path / "absent"),
                 "--source-root", str(root), "--db", f"sqlite:///{tmp_path / 'gb.db'}"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_verdict_points_must_match_the_test_cells():
    from deepul_helpers.autograde.grade import GradingSetupError, check_assignment
    from deepul_helpers.autograde.verdict import Question

    source = nbcells.SourceNotebook.read(SOURCE)
    bad = type("V", (), {"QUESTIONS": [Question("q1_tests", 3, ("softmax",), None, None)]})
    with pytest.raises(GradingSetupError, match="3 points in the verdict"):
        check_assignment(source, bad)
    missing = type("V", (), {"QUESTIONS": [Question("q1_tests", 2, ("softmax",), None, None)]})
    assert check_assignment(source, missing) == ["test cell q2_tests has no verdict question: it scores 0"]


@pytest.mark.parametrize("bwrap_ok, userns_ok, mode", [(True, True, "bwrap"), (False, True, "userns"),
                                                       (False, False, "degraded")])
def test_an_ordinary_user_gets_bubblewrap_then_unshare_then_the_loud_degraded_mode(monkeypatch, bwrap_ok,
                                                                                   userns_ok, mode):
    monkeypatch.delenv("DEEPUL_SANDBOX", raising=False)
    monkeypatch.setattr(isolation.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(isolation, "_bwrap_problem", lambda: None if bwrap_ok else "bubblewrap is not installed")
    monkeypatch.setattr(isolation, "_userns_problem", lambda: None if userns_ok else "the kernel forbids it")
    isolation.capabilities.cache_clear()
    try:
        caps = isolation.capabilities()
    finally:
        isolation.capabilities.cache_clear()
    assert caps.mode == mode and caps.whitelist == (mode != "degraded")
    if mode == "degraded":  # the banner names both reasons
        assert "NOT ISOLATED" in caps.warnings[-1] and "bubblewrap is not installed" in caps.warnings[-1]
        assert "the kernel forbids it" in caps.warnings[-1]
    assert all("NOT ISOLATED" not in w for w in caps.warnings) or mode == "degraded"


def test_the_unprivileged_view_is_a_whitelist(tmp_path):
    """Every folder bound into a bwrap/userns run is a system folder, one of a few /etc files, the
    Python runtime or the package (read-only), or the submission's folder (the one writable bind);
    the grader's home and a private path inside a bound folder get nothing or an empty mount."""
    work = tmp_path / "work"
    work.mkdir()
    inside = Path(isolation.__file__).resolve().parent  # the grader's own code: inside the bound package, hidden
    ops = isolation.view({"workdir": str(work), "expose": isolation.runtime_paths(),
                          "hide": [str(inside), str(tmp_path / "solutions")]})
    binds = [op for op in ops if op[0] in ("ro", "rw")]
    allowed = [*isolation.SYSTEM_DIRS, *isolation.runtime_paths()]
    for kind, src, dest in binds:
        if kind == "rw":
            assert (src, dest) == (str(work.resolve()), isolation.SANDBOX_DIR)
        elif dest.startswith("/etc/"):
            assert dest[len("/etc/"):] in isolation.ETC_FILES
        else:
            assert src == dest and dest in allowed, dest
    assert sum(kind == "rw" for kind, *_ in binds) == 1
    home = os.path.realpath(Path.home())
    assert not any(dest == home for *_, dest in binds)
    assert ["hide", str(inside)] in ops and not any(str(tmp_path / "solutions") in op for op in ops)
    assert [op[1] for op in ops if op[0] == "tmpfs"] == ["/dev/shm", "/tmp", "/var/tmp"]
    passwd = next(op[2] for op in ops if op[:2] == ["data", "/etc/passwd"])
    assert f":{os.getuid()}:" in passwd and "/home/" not in passwd and "/root" not in passwd


@pytest.mark.grading
def test_degraded_mode_still_grades_and_warns(tmp_path, monkeypatch):
    from deepul_helpers.autograde.grade import autograde

    monkeypatch.setenv("DEEPUL_SANDBOX", "degraded")
    isolation.capabilities.cache_clear()
    try:
        nb = nbformat.read(SOURCE, as_version=4)
        for student, source in (("full", nb), ("empty", nbformat.v4.new_notebook())):
            (tmp_path / "subs" / student / "hw0_demo").mkdir(parents=True)
            nbformat.write(source, tmp_path / "subs" / student / "hw0_demo" / "hw0.ipynb")
        with pytest.warns(UserWarning, match="degraded"):
            results = autograde("hw0_demo", tmp_path / "subs", workers=1, timeout_s=60, run_notebook=False,
                                db=f"sqlite:///{tmp_path / 'gb.db'}", out=tmp_path / "out", progress=False,
                                source_root=SOURCE.parents[2])
    finally:
        isolation.capabilities.cache_clear()
    assert {r.student: r.total for r in results} == {"empty": 0.0, "full": 5.0}


def test_grades_csv_keeps_students_not_regraded_and_defuses_formulas(tmp_path):
    import csv

    from deepul_helpers.autograde.grade import StudentResult
    from deepul_helpers.autograde.grades_csv import previous_rows, write_csv

    def result(student, score, message=""):
        return StudentResult(student=student, assignment="a", scores={"q1": score}, max_scores={"q1": 2.0},
                             messages=[message] if message else [])

    path = tmp_path / "grades.csv"
    write_csv(path, [result("ann", 2.0), result("bob", 0.0, "=HYPERLINK(1)")], ["q1"])
    write_csv(path, [result("bob", 1.0)], ["q1"], previous_rows(path, ["q1"]))
    rows = list(csv.DictReader(open(path)))
    assert [(r["student"], r["q1"], r["total"]) for r in rows] == [("ann", "2", "2"), ("bob", "1", "1")]
    write_csv(path, [result("cy", 0.0, "=cmd()")], ["q2"], previous_rows(path, ["q2"]))  # other columns: new file
    rows = list(csv.DictReader(open(path)))
    assert [r["student"] for r in rows] == ["cy"] and rows[0]["message"] == "'=cmd()"


def test_a_verdict_run_that_never_reached_student_code_is_the_graders_failure(tmp_path, monkeypatch):
    """A sandbox that fails to start (or a course setup cell that fails) must not score the student 0 as
    "could not be loaded": the stage raises, and the grader reports ``grader-error`` for a regrade. A run
    that got as far as student code (START sent) and then crashed is the student's, as before."""
    from types import SimpleNamespace

    from deepul_helpers.autograde import audit, runs, sandbox
    from deepul_helpers.autograde.student import StudentResult

    def grading():
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        q = SimpleNamespace(grade_id="q1_tests", requires=(), forbidden=(), timeout_s=10)
        return SimpleNamespace(
            ctx=SimpleNamespace(verdict_path="v.py", limits=sandbox.Limits(timeout_s=10, memory_mb=512)),
            verdict=SimpleNamespace(QUESTIONS=[q], HIDDEN_SEED=1), spec={"workdir": str(work)},
            source=SimpleNamespace(setup_source=""), code=SimpleNamespace(cells=[]), box=tmp_path, log=[],
            result=StudentResult(student="s", assignment="a", scores={}, max_scores={}))

    failed = sandbox.RunResult(1, False, 0.1, "bwrap: setting up uid map: Permission denied", [])
    monkeypatch.setattr(runs.sandbox, "run", lambda *a, **k: failed)
    with pytest.raises(runs.SandboxFailed, match="before any student code ran.*uid map"):
        runs.verdict_run(grading())

    crashed = sandbox.RunResult(1, False, 0.1, "Traceback ...", [audit.START])
    monkeypatch.setattr(runs.sandbox, "run", lambda *a, **k: crashed)
    g = grading()
    runs.verdict_run(g)
    assert any("could not be loaded" in m for m in g.result.messages)
