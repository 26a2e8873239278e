"""The gradebook shared by several grading machines: SQLite, and a real PostgreSQL server when
the test can start one (Debian's ``postgresql`` package; skipped with the reason otherwise).

Each "machine" is a separate process holding its own connection and writing the grades of its
shard of the class; afterwards a fresh connection must find every grade exactly as written.
Through nbgrader's Gradebook directly (PostgreSQL), and through ``deepul autograde --shard``
(SQLite and PostgreSQL).
"""

from __future__ import annotations

import glob
import multiprocessing as mp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from deepul_helpers.autograde import course
from deepul_helpers.autograde import release as rel
from deepul_helpers.autograde.gradebook import ensure_alembic_on_path

FIXTURES = Path(__file__).parent / "fixtures" / "hw0_release_fixture" / "solutions"
FIXTURE = "hw0_release_fixture"
NOTEBOOK = "hw0"
TESTS = {"q1_tests": 2.0, "q2_tests": 1.0}  # the fixture's auto-graded test cells and their points
STUDENTS = [f"student{i:02d}" for i in range(12)]
SHARDS = 3
# nbgrader's add-submission code trips SQLAlchemy's autoflush warnings; they are harmless.
pytestmark = [pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
              pytest.mark.xdist_group("gradebook")]  # one server per run


def expected_score(student: str, grade_id: str) -> float:
    """A made-up but distinct score per (student, cell), so a lost or swapped row shows."""
    i = int(student[-2:])
    return float((i + len(grade_id) * (1 + (grade_id == "q2_tests"))) % (TESTS[grade_id] + 1))


def _gradebook(url):
    from nbgrader.api import Gradebook

    ensure_alembic_on_path()
    return Gradebook(url, course_id=course.course_id())


def _write_shard(url: str, k: int, n: int) -> None:
    """One grading machine: grade every n-th student from the k-th, one transaction per student."""
    with _gradebook(url) as gb:
        for student in STUDENTS[k::n]:
            gb.update_or_create_student(student)
            gb.update_or_create_submission(FIXTURE, student)
            for gid in TESTS:
                grade = gb.find_grade(gid, NOTEBOOK, FIXTURE, student)
                grade.auto_score = expected_score(student, gid)
            gb.db.commit()


def _grade_class_in_shards(url: str, tmp: Path) -> None:
    # The instructor sets the gradebook up once (assignment, notebook, cells): `deepul release --db URL`.
    rel.release([FIXTURE], source_dir=FIXTURES, release_dir=tmp / "homeworks", db_url=url)
    ctx = mp.get_context("fork")  # each process opens its own connection, as a separate machine would
    procs = [ctx.Process(target=_write_shard, args=(url, k, SHARDS)) for k in range(SHARDS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * SHARDS


def _check_every_grade(url: str) -> None:
    with _gradebook(url) as gb:
        cells = {c.name: c.max_score for c in gb.find_notebook(NOTEBOOK, FIXTURE).grade_cells}
        assert {k: v for k, v in cells.items() if k in TESTS} == TESTS
        subs = gb.assignment_submissions(FIXTURE)
        assert sorted(s.student.id for s in subs) == STUDENTS
        for student in STUDENTS:
            nb = gb.find_submission_notebook(NOTEBOOK, FIXTURE, student)
            got = {g.name: g.auto_score for g in nb.grades if g.name in TESTS}
            assert got == {gid: expected_score(student, gid) for gid in TESTS}, student
            assert gb.find_submission(FIXTURE, student).max_score == sum(cells.values())


# --- a throw-away PostgreSQL server -----------------------------------------------------------

def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_server():
    """(URL or None, reason): a throw-away server on a free loopback port, stopped afterwards."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        yield None, "PostgreSQL server binaries not found (install Debian's 'postgresql' package)"
        return
    try:
        import psycopg2
    except ImportError:
        yield None, "psycopg2 missing: pip install psycopg2-binary"
        return
    run_as: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="deepul-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: use the unprivileged postgres account
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = None
        if user is None or not shutil.which("runuser"):
            shutil.rmtree(tmp)
            yield None, "running as root without a 'postgres' user or 'runuser': cannot start the server"
            return
        os.chown(tmp, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = tmp / "data", _free_port()
    try:
        subprocess.run([*run_as, initdb, "-D", str(data), "-U", "deepul", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-l", str(tmp / "server.log"), "-w", "-t", "60",
                        "-o", f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=90)
        for _ in range(50):
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=port, user="deepul", dbname="postgres")
                break
            except psycopg2.OperationalError:
                time.sleep(0.2)
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE gradebook")
        conn.close()
    except Exception as e:
        log = (tmp / "server.log").read_text()[-300:] if (tmp / "server.log").exists() else ""
        err = (getattr(e, "stderr", b"") or b"").decode(errors="replace")[-300:]
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        yield None, f"could not start a PostgreSQL server: {type(e).__name__}: {e} {err} {log}"
        return
    try:
        yield f"postgresql+psycopg2://deepul@127.0.0.1:{port}/gradebook", ""
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url(postgres_server):
    url, reason = postgres_server
    if url is None:
        pytest.skip(reason)
    return url


def test_sharded_grading_into_one_postgresql_gradebook(postgres_url, tmp_path):
    _grade_class_in_shards(postgres_url, tmp_path)
    _check_every_grade(postgres_url)
    # A grade survives a new connection and an update (regrade) replaces it in place.
    with _gradebook(postgres_url) as gb:
        grade = gb.find_grade("q1_tests", NOTEBOOK, FIXTURE, STUDENTS[0])
        grade.auto_score = 2.0
        gb.db.commit()
    with _gradebook(postgres_url) as gb:
        assert gb.find_grade("q1_tests", NOTEBOOK, FIXTURE, STUDENTS[0]).auto_score == 2.0
        assert len(gb.assignment_submissions(FIXTURE)) == len(STUDENTS)


def test_engine_grades_reference_copies_into_the_shared_gradebook(postgres_server, tmp_path):
    """`deepul bench grading`'s measurement on the fixture course, end to end through the autograde
    engine into the PostgreSQL gradebook (SQLite when no server could be started)."""
    pytest.importorskip("deepul_helpers.autograde.grade", reason="the autograde engine is not there yet")
    from deepul_helpers.bench import grading as bench

    url = postgres_server[0] or f"sqlite:///{tmp_path / 'gradebook.db'}"
    row = bench.measure(FIXTURE, 2, 2, source_root=FIXTURES.parent, db=url)
    assert row["full_marks"] == "2/2" and row["statuses"] == "graded", row
    assert row["wall_s"] > 0 and row["peak_rss_mb_largest_process"] > 10
    assert row["s_per_submission"] == pytest.approx(row["wall_s"] / 2)
    with _gradebook(url) as gb:
        for student in ("student000", "student001"):
            nb = gb.find_submission_notebook(NOTEBOOK, FIXTURE, student)
            assert {g.name: g.auto_score for g in nb.grades if g.name in TESTS} == TESTS


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_machines_grade_shards_of_a_class_into_one_gradebook(kind, postgres_server, tmp_path):
    """`deepul autograde --shard K/2` in two concurrent processes, as two machines would run it."""
    pytest.importorskip("deepul_helpers.autograde.grade", reason="the autograde engine is not there yet")
    import csv
    import sys

    import nbformat

    if kind == "postgresql" and postgres_server[0] is None:
        pytest.skip(postgres_server[1])
    url = postgres_server[0] if kind == "postgresql" else f"sqlite:///{tmp_path / 'gradebook.db'}"
    source = FIXTURES / FIXTURE / f"{NOTEBOOK}.ipynb"
    expected = {"alice": {"q1_tests": 2.0, "q2_tests": 1.0}, "bob": {"q1_tests": 0.0, "q2_tests": 1.0}}
    for student in expected:
        nb = nbformat.read(source, as_version=4)
        if student == "bob":  # double(x) wrong, square(x) right
            cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_solution")
            cell.source = "def double(x):\n    return x"
        folder = tmp_path / "submitted" / student / FIXTURE
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{NOTEBOOK}.ipynb")
    # Set the shared gradebook up once, before the shards start (grading/README.md): otherwise both
    # shards would race to create the same tables and assignment rows.
    rel.release([FIXTURE], source_dir=FIXTURES, release_dir=tmp_path / "homeworks", db_url=url)
    procs = [subprocess.Popen([sys.executable, "-m", "deepul_helpers", "autograde", FIXTURE,
                               "--submissions", str(tmp_path / "submitted"), "--shard", f"{k}/2", "--db", url,
                               "--out", str(tmp_path / f"shard{k}"), "--source-root", str(FIXTURES.parent),
                               "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for k in range(2)]
    outs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    graded = []
    for k in range(2):
        with open(tmp_path / f"shard{k}" / "grades.csv", newline="") as f:
            graded.append([row["student"] for row in csv.DictReader(f)])
    assert sorted(graded[0] + graded[1]) == sorted(expected) and not set(graded[0]) & set(graded[1])
    with _gradebook(url) as gb:
        for student, scores in expected.items():
            nb = gb.find_submission_notebook(NOTEBOOK, FIXTURE, student)
            assert {g.name: g.auto_score for g in nb.grades if g.name in TESTS} == scores, student
