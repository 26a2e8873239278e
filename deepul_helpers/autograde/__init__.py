"""Release, sandboxed grading, gradebook, feedback and grades CSV.

``autograde(assignment, submissions, *, workers=2, timeout_s=600, memory_mb=3072, cell_timeout_s=None,
db=None, out=None, source_root=None, verdict_root="grading/verdicts", students=None, shard=None,
progress=True, keep=False, run_notebook=True) -> list[StudentResult]`` grades a folder of submissions
(see ``grade.py``; ``source_root``: the course folder, found by ``course.root``'s rule when None).
Importing this package stays light: verdict modules import ``verdict`` from it.

The modules, by job (trusted grader unless said otherwise):

- the course: ``course`` (folders, nbgrader configuration, assignments), ``cells`` (every reader of
  nbgrader cell metadata: hidden tests, locked cells, solution code), ``release`` (``deepul release``),
  ``validate`` (``deepul validate``, the student's own check);
- grading a class: ``grade`` (``autograde``: the pool, the gradebook, ``grades.csv``), ``collect``
  (finding submissions), ``pipeline`` (one submission's stages), ``runs`` (starting its verdict and
  feedback runs), ``judging`` (points), ``feedback``, ``gradebook``, ``grades_csv``, ``cli``;
- the trust boundary: ``sandbox`` (start, wait, kill, capped output), ``isolation`` (namespaces, uid,
  limits, mounts, environment), ``runner`` (what runs inside), ``audit`` (the event channel from the
  sandbox to the judge), ``transport`` (plain data across it);
- ``verdict``: the verdict author's kit.
"""


def autograde(assignment, submissions, **kwargs):
    """Grade every submission of ``assignment``; see :func:`deepul_helpers.autograde.grade.autograde`."""
    from deepul_helpers.autograde.grade import autograde as _autograde

    return _autograde(assignment, submissions, **kwargs)
