"""deepul autograde on the hw0_demo fixture: honest and hostile submissions in one batch.

The fixture (tests/fixtures/hw0_demo) has two questions: q1 ``softmax`` (2 points, importing
``scipy.special`` is forbidden) and q2 ``fit_bernoulli``/``bernoulli_nll`` (3 points).
"""

from __future__ import annotations

import copy
import csv
import re
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest

from deepul_helpers.autograde import cells as nbcells
from deepul_helpers.autograde.grade import autograde
from deepul_helpers.autograde.gradebook import read_scores

FIXTURE = Path(__file__).parent / "fixtures" / "hw0_demo"
ASSIGNMENT = "hw0_demo"
SOURCE = FIXTURE / "solutions" / ASSIGNMENT / "hw0.ipynb"
pytestmark = pytest.mark.xdist_group("autograde")


def release(nb):
    """The student version: solution regions replaced by the stub, hidden tests removed."""
    nb = copy.deepcopy(nb)
    for c in nb.cells:
        if nbcells.nbgrader_meta(c).get("solution"):
            c.source = re.sub(r"( *)### BEGIN SOLUTION.*?### END SOLUTION",
                              lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError()",
                              c.source, flags=re.S)
        if c.cell_type == "code":
            c.source = nbcells.strip_hidden_tests(c.source)
    return nb


def cell_by_id(nb, gid):
    return next(c for c in nb.cells if nbcells.grade_id(c) == gid)


def with_solution(nb, gid, source):
    nb = copy.deepcopy(nb)
    cell_by_id(nb, gid).source = source
    return nb


GOOD_Q1 = cell_by_id(nbformat.read(SOURCE, as_version=4), "q1_solution").source
GOOD_Q2 = cell_by_id(nbformat.read(SOURCE, as_version=4), "q2_solution").source


def hostile_class(root: Path, secret_paths: dict[str, str]) -> dict[str, float]:
    """Write the class under ``root`` (nbgrader layout, plus a zip and loose files); return the
    total each student must get."""
    src = nbformat.read(SOURCE, as_version=4)
    rel = release(src)
    full = with_solution(with_solution(rel, "q1_solution", GOOD_Q1), "q2_solution", GOOD_Q2)
    q2_only = with_solution(rel, "q2_solution", GOOD_Q2)
    subs: dict[str, tuple[object, float]] = {
        "a_full": (full, 5),
        "b_release": (rel, 0),
        "c_partial": (with_solution(rel, "q1_solution", GOOD_Q1), 2),
        "d_loop": (with_solution(q2_only, "q1_solution", "def softmax(x):\n    while True:\n        pass\n"), 3),
        # Crashes: sys.exit at load (the rest still loads), a segfault, os._exit without output.
        "e_crash": (with_solution(with_solution(
            rel, "q1_solution", "import sys\n_ = sys.exit(3)\nimport ctypes\n\n"
                                "def softmax(x):\n    return ctypes.string_at(0)\n"),
            "q2_solution", GOOD_Q2.replace("return float(np.mean(x))", "import os\n    os._exit(0)")), 0),
        # A memory bomb at load and in q1; q2 right but printing 20 MB.
        "g_bombs": (with_solution(with_solution(
            rel, "q1_solution", "_junk = bytearray(64 << 30)\n\ndef softmax(x):\n"
                                "    return [bytearray(1 << 30) for _ in range(64)]\n"),
            "q2_solution", GOOD_Q2.replace("return float(np.mean(x))",
                                           "for _ in range(20):\n        print('x' * (1 << 20))\n"
                                           "    return float(np.mean(x))")), 3),
        "i_fake": (with_solution(q2_only, "q1_solution",
                                 "np.allclose = lambda *a, **k: True\n"  # patched in the verdict run too
                                 "class Always:\n    def __eq__(self, other):\n        return True\n"
                                 "    def __array__(self, *a, **k):\n        return np.zeros((5, 7))\n\n"
                                 "def softmax(x):\n    return Always()\n"), 3),
        "j_forbid_static": (with_solution(q2_only, "q1_solution", "from scipy.special import softmax\n"), 3),
        "k_forbid_dynamic": (with_solution(q2_only, "q1_solution",
                                           "import importlib\n\ndef softmax(x):\n    m = importlib.import_module"
                                           "('scipy.' + 'special')\n    return m.softmax(x, axis=-1)\n"), 3),
    }
    # q_snoop's softmax is right only if it can read a secret; fit_bernoulli overwrites the gradebook.
    snoop_q1 = GOOD_Q1.replace("def softmax(x):\n", (
        "def softmax(x):\n    for p in {paths!r}:\n        try:\n            open(p, 'rb').read(10)\n"
        "            break\n        except OSError:\n            pass\n    else:\n        return np.zeros_like(x)\n"
    ).format(paths=[secret_paths["solution"], secret_paths["other_student"]]))
    snoop_q2 = GOOD_Q2.replace("return float(np.mean(x))", (
        "try:\n        open({gb!r}, 'wb').write(b'garbage')\n    except OSError:\n        pass\n"
        "    return float(np.mean(x))").format(gb=secret_paths["gradebook"]))
    subs["q_snoop"] = (with_solution(with_solution(rel, "q1_solution", snoop_q1), "q2_solution", snoop_q2), 3)
    # r_tamper closes the grader's channels (every fd above 2) before importing the forbidden module.
    subs["r_tamper"] = (with_solution(q2_only, "q1_solution", (
        "import os\n_ = os.closerange(3, 4096)\n\ndef softmax(x):\n    import importlib\n"
        "    return importlib.import_module('scipy.special').softmax(x, axis=-1)\n")), 3)
    # i_fake also forges the in-notebook tests: patched numpy helpers and an input transformer.
    fake = subs["i_fake"][0]
    fake.cells.insert(3, nbformat.v4.new_code_cell(
        "np.allclose = lambda *a, **k: True\nnp.testing.assert_allclose = lambda *a, **k: None\n"
        "get_ipython().input_transformers_post.append(lambda lines: ['try:\\n'] + ['    ' + l for l in lines]"
        " + ['\\nexcept BaseException:\\n    pass\\n'])"))
    # Metadata stripped, cells reordered, test cells deleted / turned to markdown / duplicated.
    messy = copy.deepcopy(full)
    for gid in ("q1_solution", "q2_solution"):
        cell_by_id(messy, gid).metadata = {}
    q2 = next(c for c in messy.cells if "fit_bernoulli" in c.source and "def " in c.source)
    messy.cells.remove(q2)
    messy.cells.insert(3, q2)
    t1 = cell_by_id(messy, "q1_tests")
    t1.cell_type = "markdown"
    t1.pop("outputs", None)
    t1.pop("execution_count", None)
    messy.cells.remove(cell_by_id(messy, "q2_tests"))
    duplicate = copy.deepcopy(cell_by_id(messy, "setup"))
    duplicate["id"] = "duplicate-setup"
    messy.cells.append(duplicate)
    subs["l_messy"] = (messy, 5)
    expected = {}
    for student, (nb, total) in subs.items():
        d = root / student / ASSIGNMENT
        d.mkdir(parents=True)
        nbformat.write(nb, d / "hw0.ipynb")
        expected[student] = total
    (root / "m_malformed" / ASSIGNMENT).mkdir(parents=True)
    (root / "m_malformed" / ASSIGNMENT / "hw0.ipynb").write_text('{"cells": [ not json')
    (root / "n_missing" / ASSIGNMENT).mkdir(parents=True)
    d = root / "o_misnamed" / ASSIGNMENT
    d.mkdir(parents=True)
    nbformat.write(full, d / "homework (1).ipynb")
    (d / "numpy.py").write_text("raise SystemExit('shadowed numpy')\n")
    with zipfile.ZipFile(root / "pzip_hw0.zip", "w") as z:
        z.writestr("hw0_demo/hw0.ipynb", nbformat.writes(full))
    expected.update(m_malformed=0, n_missing=0, o_misnamed=5, pzip=5)
    return expected


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("autograde")
    root = base / "course"
    shutil.copytree(FIXTURE, root)
    subs = base / "submitted"
    gradebook = base / "gb" / "gradebook.db"
    secrets = {"solution": str(root / "solutions" / ASSIGNMENT / "hw0.ipynb"),
               "other_student": str(subs / "a_full" / ASSIGNMENT / "hw0.ipynb"), "gradebook": str(gradebook)}
    expected = hostile_class(subs, secrets)
    db = f"sqlite:///{gradebook}"
    kwargs = dict(workers=2, timeout_s=90, cell_timeout_s=5, memory_mb=2048, db=db, source_root=root,
                  progress=False)
    results = {r.student: r for r in autograde(ASSIGNMENT, subs, out=base / "out", **kwargs)}
    return dict(base=base, root=root, subs=subs, db=db, expected=expected, results=results, kwargs=kwargs)


@pytest.mark.grading
def test_every_student_gets_exactly_the_points_of_the_honest_content(graded):
    totals = {s: r.total for s, r in graded["results"].items()}
    assert totals == graded["expected"]


@pytest.mark.grading
def test_statuses_say_what_happened(graded):
    r = graded["results"]
    assert r["a_full"].status == "graded" and all(r["a_full"].claims.values())
    assert r["m_malformed"].status == "malformed"
    assert r["n_missing"].status == "missing"
    assert r["r_tamper"].status == "flagged" and "q1_tests" in r["r_tamper"].review
    for s in ("j_forbid_static", "k_forbid_dynamic"):
        assert r[s].status == "flagged" and "q1_tests" in r[s].review
        assert any("scipy.special" in m for m in r[s].question_messages["q1_tests"])
    # i_fake's forged in-notebook tests claim q1; the verdict gives 0: review.
    assert r["i_fake"].claims["q1_tests"] and r["i_fake"].status == "review"
    assert any("did not finish" in m for m in r["d_loop"].question_messages["q1_tests"])
    assert any("crashed" in m for m in r["e_crash"].question_messages["q1_tests"])
    assert any("SystemExit" in m for m in r["e_crash"].messages)
    assert any("MemoryError" in m for m in r["g_bombs"].messages + r["g_bombs"].question_messages["q1_tests"])
    assert any("expected a notebook named" in m for m in r["o_misnamed"].messages)
    assert any("metadata" in m for m in r["l_messy"].messages)
    assert any("q2_tests was missing" in m for m in r["l_messy"].messages)


@pytest.mark.grading
def test_gradebook_csv_and_feedback_agree_and_nothing_leaks(graded):
    out = graded["base"] / "out"
    rows = {row["student"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    assert set(rows) == set(graded["expected"])
    assert list(next(iter(rows.values())).keys()) == ["student", "q1_tests", "q2_tests", "total", "max_total",
                                                      "status", "message"]
    stored = read_scores(graded["db"], ASSIGNMENT, "hw0")
    for student, r in graded["results"].items():
        assert float(rows[student]["total"]) == r.total
        assert stored[student] == r.scores
        page = (out / "feedback" / f"{student}.html").read_text()
        assert "HIDDEN TESTS" not in page and "1000.0, 0.0" not in page  # the hidden test's input
    assert len((out / "feedback" / "g_bombs.html").read_text()) < 10 * 2**20


@pytest.mark.grading
def test_honest_students_graded_alone_twice_get_identical_grades(graded, tmp_path):
    honest = ["a_full", "l_messy"]
    kwargs = dict(graded["kwargs"], db=f"sqlite:///{tmp_path / 'gb.db'}")
    first = autograde(ASSIGNMENT, graded["subs"], students=honest, out=tmp_path / "o1", **kwargs)
    second = autograde(ASSIGNMENT, graded["subs"], students=honest, out=tmp_path / "o2", **kwargs)
    batch = graded["results"]
    assert [r.student for r in first] == sorted(honest)
    for a, b in zip(first, second):
        assert a.scores == b.scores == batch[a.student].scores
        assert a.status == b.status == batch[a.student].status


def test_empty_or_mislaid_submissions_folder_says_what_was_expected(tmp_path, capsys):
    from deepul_helpers.autograde.collect import collect
    from deepul_helpers.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--source-root", str(FIXTURE), "--db", f"sqlite:///{tmp_path / 'gb.db'}", "--out", str(tmp_path / "o")]
    assert main(["autograde", ASSIGNMENT, "--submissions", str(empty), *args]) == 2
    err = capsys.readouterr().err
    assert "no submission found" in err and f"DIR/<student>/{ASSIGNMENT}/<notebook>.ipynb" in err, err
    assert not (tmp_path / "o" / "grades.csv").exists()
    # One folder too deep (a student's folder) and a loose notebook without the <student>_ prefix.
    deep = tmp_path / "deep"
    (deep / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(nbformat.read(SOURCE, as_version=4), deep / ASSIGNMENT / "hw0.ipynb")
    nbformat.write(nbformat.read(SOURCE, as_version=4), deep / "hw0.ipynb")
    nbformat.write(nbformat.read(SOURCE, as_version=4), deep / "alice_hw0.ipynb")
    assert [s.student for s in collect(deep, ASSIGNMENT)] == ["alice", "hw0", ASSIGNMENT]
    err = capsys.readouterr().err
    assert "one folder too deep" in err and f"student called {ASSIGNMENT!r}" in err, err
    assert "loose notebook" in err and "student called 'hw0'" in err and "'alice'" not in err, err


def test_feedback_html_renders_markdown_keeps_no_script_and_loads_nothing_from_the_network():
    from deepul_helpers.autograde.feedback import notebook_html

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\n\nSome $x^2$ and <script>alert('md')</script>"
                                              "<img src='x' onerror=\"alert('img')\">"),
                nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
                    "display_data", data={"text/html": "<h2>out</h2><script>alert('out')</script>"
                                          "<a href='javascript:alert(1)'>a</a>"})])]
    page = notebook_html(nb)
    assert re.search(r"<h1[^>]*>Title", page) and "<h2>out</h2>" in page
    assert "alert('md')</script>" not in page and "alert('out')</script>" not in page
    content = re.sub(r"<script.*?</script>|<style.*?</style>", "", page, flags=re.S)  # the page's own code
    assert "onerror" not in content and "javascript:" not in content and "alert('md')" in content  # escaped text
    assert not re.search(r"<script[^>]*src=[\"']https?:", page)  # no CDN: MathJax is inlined
    assert "window.MathJax" in page and "$x^2$" in page
