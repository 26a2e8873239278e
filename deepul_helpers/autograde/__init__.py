"""Release, sandboxed grading, gradebook, feedback and grades CSV.

``autograde(assignment, submissions, *, workers=2, timeout_s=600, memory_mb=3072, cell_timeout_s=None,
db=None, out=None, source_root=".", verdict_root="grading/verdicts", students=None, shard=None,
progress=True, keep=False) -> list[StudentResult]`` grades a folder of submissions (see
``grade.py``). Importing this package stays light: verdict modules import ``verdict`` from it.
"""


def autograde(assignment, submissions, **kwargs):
    """Grade every submission of ``assignment``; see :func:`deepul_helpers.autograde.grade.autograde`."""
    from deepul_helpers.autograde.grade import autograde as _autograde

    return _autograde(assignment, submissions, **kwargs)
