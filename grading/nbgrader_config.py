"""nbgrader configuration of the deepul course (read by ``deepul release`` and the grader).

The course directory is the repository root:

    solutions/<assignment>/<nb>.ipynb             nbgrader source (solutions, visible and hidden tests)
    homeworks/<assignment>/<nb>.ipynb             the release students get (committed)
    grading/out/submitted/<student>/<assignment>/ collected submissions
    grading/out/autograded/...                    executed submissions
    grading/out/feedback/...                      feedback HTML
    grading/out/gradebook.db                      the default gradebook (SQLite)

Plain nbgrader reads this file when run from ``grading/`` (it looks in the current folder),
e.g. ``cd grading && nbgrader export --to ../grading/out/gradebook.csv``; ``deepul release``
runs nbgrader's generate_assignment with it and also makes the output byte-for-byte reproducible.
Any SQLAlchemy URL may replace the gradebook, e.g. ``postgresql://user@host/deepul``:
set ``DEEPUL_GRADEBOOK`` or pass ``--db`` to the deepul commands.
"""

import os

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- the course directory --------------------------------------------------------------
c.CourseDirectory.root = ROOT
# The gradebook's rows belong to a course; PostgreSQL enforces that the course exists, so
# it must not be empty. Every deepul command opens the gradebook with this id.
c.CourseDirectory.course_id = "deepul"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "homeworks"
c.CourseDirectory.submitted_directory = os.path.join("grading", "out", "submitted")
c.CourseDirectory.autograded_directory = os.path.join("grading", "out", "autograded")
c.CourseDirectory.feedback_directory = os.path.join("grading", "out", "feedback")
c.CourseDirectory.solution_directory = os.path.join("grading", "out", "solution")
c.CourseDirectory.db_url = os.environ.get(
    "DEEPUL_GRADEBOOK", "sqlite:///" + os.path.join(ROOT, "grading", "out", "gradebook.db")
)
# Never copy checkpoints, caches or executed copies into a release or a grading folder.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "out", "*.executed.ipynb"
]
c.CourseDirectory.max_file_size = 10_000  # kB: a submission folder holds notebooks, not data

# --- release (generate_assignment): strip solutions and hidden tests -------------------
c.GenerateAssignment.preprocessors = [
    "nbgrader.preprocessors.IncludeHeaderFooter",
    "nbgrader.preprocessors.LockCells",
    "nbgrader.preprocessors.ClearSolutions",  # ### BEGIN/END SOLUTION -> the code stub below
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.CheckCellMetadata",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.SaveCells",  # the gradebook keeps the source of every graded cell
    "nbgrader.preprocessors.ClearHiddenTests",  # ### BEGIN/END HIDDEN TESTS -> removed
    "nbgrader.preprocessors.ClearMarkScheme",
    "nbgrader.preprocessors.ComputeChecksums",  # again: the release's cells, as students get them
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"
# A solution region or hidden test outside a properly marked cell is an error, never a leak.
c.ClearSolutions.enforce_metadata = True
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
c.ClearHiddenTests.enforce_metadata = True
c.ClearMarkScheme.enforce_metadata = True
c.LockCells.lock_grade_cells = True
c.LockCells.lock_readonly_cells = True

# --- execution (nbgrader's own autograde and validate). deepul's one notebook executor
# (deepul_helpers.notebook.run) is nbgrader's Execute preprocessor with these settings; its
# limits come from the deepul commands' flags, with defaults under c.Deepul below.
c.Execute.timeout = 300  # seconds per cell (quick mode: a question trains for seconds)
c.Execute.interrupt_on_timeout = True
c.Execute.allow_errors = True
c.Execute.execute_retries = 0
c.ExecutePreprocessor.timeout = 300
c.LimitOutput.max_lines = 1000  # a cell that prints hundreds of MB is cut here
c.LimitOutput.max_traceback = 100
c.Autograde.create_student = True  # a student missing from the gradebook is added, not rejected
# LMS downloads: grading/out/downloaded/<assignment>/archive/*.zip -> nbgrader zip_collect
c.ZipCollectApp.downloaded_directory = os.path.join("grading", "out", "downloaded")

# --- formgrader (make lab): maths typeset offline, no CDN --------------------------------
# nbgrader's submission page calls nbconvert's mathjax() macro, which loads MathJax 2 from cdnjs, with no
# URL that HTMLExporter.mathjax_url could change. grading/jupyter/nbconvert/templates/formgrade/
# mathjax.html.j2 replaces that macro (templates under JUPYTER_PATH are found before nbconvert's own) with
# the MathJax copy the feedback pages inline (deepul_helpers/autograde/formgrader.py).
_TEMPLATES = os.path.join(ROOT, "grading", "jupyter")
if _TEMPLATES not in os.environ.get("JUPYTER_PATH", "").split(os.pathsep):  # this file is read many times
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [_TEMPLATES, os.environ.get("JUPYTER_PATH")]))
c.HTMLExporter.filters = {"deepul_offline_mathjax": "deepul_helpers.autograde.formgrader.offline_mathjax"}

# deepul's own settings (not nbgrader traits; the deepul commands read them from here).
c.Deepul.notebook_timeout_s = 900  # whole-notebook limit per submission
c.Deepul.cell_timeout_s = 300  # per cell, as c.Execute.timeout
