"""Grading as a person sees it, in headless Chromium: feedback pages and nbgrader's formgrader.

A small class of the hw0_demo fixture (the reference solution, an unanswered release, one half right) is
graded with ``deepul autograde`` (the command line, as an instructor runs it). The fixture's source
gets a markdown cell with maths and a cell that writes into the homework kit's output folder (as every
homework's plots do). Then:

- the reference solution's feedback page shows rendered headings and typeset maths (no ``$`` left),
  no error output, and its summary's "notebook's own test" column agrees with the grade;
- Jupyter Server with nbgrader's formgrader and the course's nbgrader configuration (re-rooted at the
  graded copy of the course) lists the submissions as autograded with their scores, names the students
  (the course's roster, else the id), shows the grader's messages as comments, and typesets a submission's
  maths with the course's offline MathJax (no request leaves the loopback).

The browser is site/check.py's (network blocked, empty profile); the test skips with the reason where
it cannot start. Screenshots land in the test's temporary folder (``DEEPUL_SCREENSHOTS`` to keep them).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from deepul_helpers.autograde import cells as nbcells
from deepul_helpers.autograde.gradebook import open_gradebook

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "hw0_demo"
ASSIGNMENT = "hw0_demo"
pytestmark = [pytest.mark.xdist_group("autograde"), pytest.mark.grading]

MATHS = (r"The likelihood of one draw is $p(x) = \theta^x (1-\theta)^{1-x}$, and the fit minimises"
         "\n\n$$\\mathrm{NLL}(\\theta) = -\\frac{1}{N}\\sum_{i=1}^N \\log p(x_i).$$")
PLOT_CELL = ("from deepul_helpers.homework import kit\n"
             "folder = kit.output_dir('hw0_demo')\n"
             "(folder / 'written.txt').write_text('a plot would go here')\n"
             "print('plots in', folder)")


def _site_check():
    spec = importlib.util.spec_from_file_location("deepul_site_check", REPO / "site" / "check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def browser():
    check = _site_check()
    reason = check.browser_problem()
    if reason:
        pytest.skip(reason)
    return check


def _release(nb):
    """The student version of the fixture (solution regions stubbed, hidden tests removed)."""
    from test_autograde import release

    return release(nbformat.from_dict(nb))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    root = base / "course"
    shutil.copytree(FIXTURE, root)
    shutil.copy(REPO / "grading" / "nbgrader_config.py", root / "grading")  # a course of its own: course.root's rule
    source = root / "solutions" / ASSIGNMENT / "hw0.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(MATHS))
    setup = next(i for i, c in enumerate(nb.cells) if nbcells.grade_id(c) == "setup")
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(PLOT_CELL))
    nbformat.write(nb, source)
    (root / "grading" / "roster.csv").write_text("id,first_name,last_name,email\nref,Ada,Lovelace,ada@example.org\n")
    release = _release(nb)
    half = _release(nb)
    q2 = next(c for c in half.cells if nbcells.grade_id(c) == "q2_solution")
    q2.source = next(c for c in nb.cells if nbcells.grade_id(c) == "q2_solution").source
    subs = base / "submitted"
    for student, notebook in (("ref", nb), ("blank", release), ("half", half)):
        (subs / student / ASSIGNMENT).mkdir(parents=True)
        nbformat.write(notebook, subs / student / ASSIGNMENT / "hw0.ipynb")
    db = f"sqlite:///{base / 'gradebook.db'}"
    out = root / "grading" / "out" / ASSIGNMENT  # the default, beside nbgrader's folders
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "deepul_helpers", "autograde", ASSIGNMENT, "--submissions",
                           str(subs), "--course", str(root), "--db", db, "--workers", "2",
                           "--timeout", "120", "--cell-timeout", "30"],
                          capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    shots = Path(os.environ.get("DEEPUL_SCREENSHOTS") or base / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    return dict(base=base, root=root, subs=subs, db=db, out=out, rows=rows, stdout=proc.stdout, shots=shots)


def test_autograde_names_its_outputs_and_counts_statuses(graded):
    out, text = graded["out"], graded["stdout"]
    assert "graded 3 submissions: 3 graded" in text, text
    assert str(out.resolve() / "grades.csv") in text and str(out.resolve() / "feedback") in text
    assert graded["db"] in text
    assert {k: float(v["total"]) for k, v in graded["rows"].items()} == {"ref": 5.0, "blank": 0.0, "half": 3.0}


def test_grader_writes_nbgrader_folders_and_comments(graded):
    root = graded["root"]
    for student in ("ref", "blank", "half"):
        sub = root / "grading" / "out" / "submitted" / student / ASSIGNMENT
        auto = root / "grading" / "out" / "autograded" / student / ASSIGNMENT
        assert (sub / "hw0.ipynb").read_bytes() == (graded["subs"] / student / ASSIGNMENT / "hw0.ipynb").read_bytes()
        assert (sub / "timestamp.txt").read_text() == (auto / "timestamp.txt").read_text()
        nbformat.read(auto / "hw0.ipynb", as_version=4)
    with open_gradebook(graded["db"]) as gb:
        comment = gb.find_comment("q1_solution", "hw0", ASSIGNMENT, "half").auto_comment
    assert "q1_tests: 0 / 2" in comment and "status graded" in comment, comment


def _formgrade_page(config, tmp_path) -> str:
    """A notebook with maths as formgrader's exporter renders a submission (its template and folders)."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers

    config.HTMLExporter.template_name = "formgrade"  # what nbgrader's FormgradeExtension sets
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(MATHS)])
    nbformat.write(nb, tmp_path / "hw0.ipynb")
    resources = {"assignment_id": ASSIGNMENT, "notebook_id": "hw0", "submission_id": "x", "index": 0, "total": 1,
                 "base_url": "", "student": "ref", "last_name": "", "first_name": "", "notebook_path": "hw0.ipynb"}
    return HTMLExporter(config=config).from_filename(str(tmp_path / "hw0.ipynb"), resources=resources)[0]


def test_formgrader_pages_get_the_offline_mathjax_from_the_course_configuration(tmp_path, monkeypatch):
    """Without a browser: nbgrader's own template loads MathJax 2 from a CDN; with the course's configuration
    the page inlines the offline MathJax and answers formgrade.js's MathJax 2 call."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    cdn = '<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/'
    monkeypatch.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))  # restored after the test
    assert cdn in _formgrade_page(Config(), tmp_path)  # nbgrader's page as it comes
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO / "grading")).load_config()
    page = _formgrade_page(config, tmp_path)
    assert cdn not in page and "<script src=\"http" not in page
    assert "window.MathJax = {tex: {inlineMath:" in page and "M.Hub = {Startup: {signal: {Interest:" in page
    assert len(page) > 1_000_000  # MathJax itself is inlined


def _text(driver, selector):
    return [e.text for e in driver.find_elements("css selector", selector)]


def _summary(driver) -> dict[str, list[str]]:
    rows = driver.find_elements("css selector", "table tr")
    out = {}
    for row in rows:
        cells = [c.text for c in row.find_elements("css selector", "td")]
        if len(cells) == 4:
            out[cells[0]] = cells
    return out


def test_feedback_page_in_a_browser(graded, browser):
    feedback = graded["out"] / "feedback"
    with browser.serve(feedback) as (url, server), browser.chromium() as driver:
        driver.get(url + "ref.html")
        state = driver.execute_async_script(browser._WAIT_MATH)
        assert state == "typeset", state
        driver.save_screenshot(str(graded["shots"] / "feedback_ref.png"))
        headings = _text(driver, ".jp-MarkdownOutput h1, .jp-MarkdownOutput h2")
        assert any(h.startswith("hw0 demo") for h in headings) and any("Q1" in h for h in headings), headings
        markdown = " ".join(_text(driver, ".jp-MarkdownOutput"))
        assert "$" not in markdown and "<h1" not in markdown and "<p>" not in markdown, markdown[:500]
        assert len(driver.find_elements("css selector", ".jp-MarkdownOutput mjx-container svg")) >= 2
        errors = driver.find_elements("css selector", "[data-mime-type='application/vnd.jupyter.stderr']")
        body = driver.find_element("css selector", "body").text
        assert not errors and "Error" not in body.replace("NotImplementedError()", ""), body[:2000]
        plots = [t for t in _text(driver, ".jp-OutputArea-output") if t.startswith("plots in")]
        assert plots and str(REPO) not in plots[0], plots  # inside the sandbox's own folder
        summary = _summary(driver)
        assert set(summary) == {"q1_tests", "q2_tests"}
        for _, points, found, claim in summary.values():
            got, full = points.split(" / ")
            assert got == full and found == "ok" and claim == "passed", summary
        driver.get(url + "half.html")
        driver.execute_async_script(browser._WAIT_MATH)
        summary = _summary(driver)
        assert summary["q1_tests"][1].startswith("0 / 2") and summary["q1_tests"][3] == "failed", summary
        assert summary["q2_tests"][1].startswith("3 / 3") and summary["q2_tests"][3] == "passed", summary
        assert not [p for p, code in server.requests if code >= 400 and p != "/favicon.ico"], server.requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _jupyter_server(base: Path, course_root: Path, db: str):
    """Jupyter Server with formgrader, the course's nbgrader configuration re-rooted at ``course_root``."""
    cfg = base / "formgrader_cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(REPO / 'grading' / 'nbgrader_config.py')!r})  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course_root)!r}\n"
        f"c.CourseDirectory.db_url = {db!r}\n")
    port, token = _free_port(), "deepul-test-token"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "jupyter_config"),
               JUPYTER_RUNTIME_DIR=str(base / "jupyter_runtime"), OMP_NUM_THREADS="1")
    env.pop("DEEPUL_GRADEBOOK", None)
    log = open(base / "jupyter_server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "jupyter-server"), "--no-browser",
                             "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
                             f"--ServerApp.token={token}", f"--ServerApp.root_dir={base}",
                             *(["--allow-root"] if os.geteuid() == 0 else [])],
                            cwd=cfg, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("jupyter server did not start: "
                                       + (base / "jupyter_server.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_rows(driver, selector, n, timeout=30.0):
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rows = [r.text for r in driver.find_elements("css selector", selector) if r.text.strip()]
        except StaleElementReferenceException:  # the page's script re-rendered the table meanwhile
            rows = []
        if len(rows) >= n:
            return rows
        time.sleep(0.3)
    return [r.text for r in driver.find_elements("css selector", selector)]


def test_formgrader_shows_every_submission_and_its_scores(graded, browser):
    with _jupyter_server(graded["base"], graded["root"], graded["db"]) as (url, token), \
            browser.chromium() as driver:
        driver.get(f"{url}/login?next=/formgrader/manage_submissions/{ASSIGNMENT}")  # as a person logs in
        box = driver.find_element("css selector", "input[type=password]")
        box.send_keys(token)
        box.submit()
        rows = _wait_rows(driver, "#submissions tbody tr, table tbody tr", 3)
        driver.save_screenshot(str(graded["shots"] / "formgrader_submissions.png"))
        text = "\n".join(rows)
        for student, score in (("ref", "5"), ("blank", "0"), ("half", "3")):
            line = next((r for r in rows if student in r.split()), None)
            assert line is not None, text
            assert line.endswith(f"graded {score} / 5"), line  # autograded (timestamps agree), with its score
        assert len(rows) == 3, text
        driver.get(f"{url}/formgrader/gradebook/{ASSIGNMENT}/hw0")
        rows = _wait_rows(driver, "table tbody tr", 3)
        driver.save_screenshot(str(graded["shots"] / "formgrader_notebook.png"))
        assert sorted(r.split()[2] for r in rows) == ["0", "3", "5"], rows  # "Submission #k 5 / 5 ..."
        # Each submission opens with the grader's messages as the comment of its solution cells.
        links = {a.get_attribute("href") for a in driver.find_elements("css selector", "table tbody tr a")
                 if "/formgrader/submissions/" in (a.get_attribute("href") or "")}
        assert len(links) == 3, links
        comments = []
        for link in sorted(links):
            driver.get(link)
            deadline, text = time.monotonic() + 30, ""
            while "q1_tests" not in text and time.monotonic() < deadline:
                boxes = driver.find_elements("css selector", "#q1_solution-comment")
                text = boxes[0].get_attribute("placeholder") or "" if boxes else ""
                time.sleep(0.3)
            comments.append(text)
            if "q1_tests: 0 / 2" in text and "q2_tests" not in text:  # q2's comment is on its own cell
                driver.save_screenshot(str(graded["shots"] / "formgrader_submission.png"))
        assert sum("q1_tests: 2 / 2: ok" in c for c in comments) == 1, comments
        assert sum("q1_tests: 0 / 2" in c for c in comments) == 2, comments
        # The submission page typesets the notebook's maths with the course's MathJax, nothing from a CDN.
        driver.get(sorted(links)[0])
        assert driver.execute_async_script(browser._WAIT_MATH) == "typeset"
        maths = driver.find_elements("css selector", "#notebook .text_cell_render mjx-container, "
                                                     "#notebook .jp-MarkdownOutput mjx-container")
        driver.save_screenshot(str(graded["shots"] / "formgrader_submission_maths.png"))
        assert len(maths) >= 2, driver.find_element("css selector", "#notebook").text[:1000]
        rendered = " ".join(_text(driver, "#notebook .text_cell_render, #notebook .jp-MarkdownOutput"))
        assert "likelihood of one draw" in rendered and "$" not in rendered, rendered[:1000]
        requested = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert requested and all(r.startswith(url) for r in requested), requested
        linked = driver.execute_script("return Array.from(document.querySelectorAll('script[src], link[href], "
                                       "img[src]')).map(e => e.src || e.href)")
        assert all(u.startswith(url) or u.startswith("data:") for u in linked), linked  # no CDN script or sheet
        severe = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not [m for m in severe if "MathJax" in m], severe
        # Students have names: the roster's, else the id as last name (never "None, None").
        driver.get(f"{url}/formgrader/manage_students")
        rows = _wait_rows(driver, "table tbody tr", 3)
        driver.save_screenshot(str(graded["shots"] / "formgrader_students.png"))
        assert any(r.startswith("Lovelace, Ada") for r in rows), rows
        assert any(r.startswith("blank,") for r in rows) and any(r.startswith("half,") for r in rows), rows
        assert not any(r.startswith("None") for r in rows), rows  # was "None, None" for every student
