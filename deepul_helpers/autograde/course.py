"""The course as nbgrader sees it: where the course folder is and what its ``grading/nbgrader_config.py`` says.

**One rule finds the course folder**, for every command (``deepul release``, ``deepul autograde``,
``deepul validate``, ``deepul bench grading``) and every module: :func:`root`.

1. ``--course PATH`` (the ``course=`` argument of the Python functions), else
2. ``$DEEPUL_COURSE``, else
3. the current folder or the first of its parents that holds both ``grading/nbgrader_config.py`` and
   ``solutions/`` (:data:`MARKERS`).

Never the checkout the package happens to be installed from: a second clone with edited solutions is
its own course. When nothing is found, :class:`CourseNotFound` says what was looked for and what to
do. No other module computes a course path; they take :func:`root`'s answer (and the sandbox hides
that root's private folders, see ``grade.py``).

Then: the nbgrader configuration of that course (course id, folders, release stubs, deepul's own time
limits under ``c.Deepul``), its assignments, an assignment's source notebook and verdict module.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG = Path("grading") / "nbgrader_config.py"  # relative to a course root
SOURCE = "solutions"      # nbgrader source: solutions/<assignment>/<nb>.ipynb
RELEASE = "homeworks"     # the student release, generated from SOURCE
VERDICT_DIR = "grading/verdicts"  # <assignment>.py, relative to a course root
MARKERS = (CONFIG.as_posix(), SOURCE + "/")
ENV = "DEEPUL_COURSE"


class CourseError(RuntimeError):
    """The course's configuration or an assignment's files are missing or unusable."""


class CourseNotFound(CourseError):
    """No course folder: not given, and none at or above the current folder."""


def is_course(path: str | Path) -> bool:
    """Whether ``path`` holds ``grading/nbgrader_config.py`` and ``solutions/``."""
    path = Path(path)
    return (path / CONFIG).is_file() and (path / SOURCE).is_dir()


def find_root(start: str | Path | None = None) -> Path | None:
    """``start`` (default: the current folder) or its first parent that :func:`is_course`; None if none."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    return next((p for p in (here, *here.parents) if is_course(p)), None)


def root(course: str | Path | None = None) -> Path:
    """The course folder by the one rule (module docstring): ``course``, else ``$DEEPUL_COURSE``, else the
    current folder or a parent of it. A given folder must hold ``solutions/``; its nbgrader configuration
    is optional (nbgrader's defaults, deepul's built-in limits). Raises :class:`CourseNotFound`."""
    given, how = (course, "--course") if course is not None else (os.environ.get(ENV) or None, f"${ENV}")
    if given is not None:
        path = Path(given).expanduser().resolve()
        if (path / SOURCE).is_dir():
            return path
        above = find_root(path) if path.exists() else None
        hint = f"; did you mean {above}?" if above else ""
        raise CourseNotFound(f"{how} {given}: {path} is not a course folder (no {SOURCE}/ in it){hint}")
    found = find_root()
    if found is None:
        raise CourseNotFound(
            f"no course folder found: looked in {Path.cwd()} and each folder above it for one holding "
            f"{' and '.join(MARKERS)}; run the command from inside the course checkout, or give "
            f"--course PATH (or set {ENV}=PATH)")
    return found


def root_or_none(course: str | Path | None = None) -> Path | None:
    """:func:`root`, or None where there is no course (for commands that work without one)."""
    try:
        return root(course)
    except CourseNotFound:
        return None


def installed_root() -> Path | None:
    """The checkout the package is installed from, when that is a course (its private folders must stay
    hidden from student code even when another course is graded); None otherwise. Not a course default."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if is_course(checkout) else None


def source_dir(course: str | Path | None = None) -> Path:
    return root(course) / SOURCE


def release_dir(course: str | Path | None = None) -> Path:
    return root(course) / RELEASE


def load_config(course: str | Path | None = None, *, reroot: str | Path | None = None, db_url: str | None = None):
    """The traitlets Config of ``<course>/grading/nbgrader_config.py``, optionally re-rooted at ``reroot``
    (a scratch course folder) and re-pointed at the gradebook ``db_url``."""
    from traitlets.config.loader import PyFileConfigLoader

    path = root(course) / CONFIG
    if not path.is_file():
        raise CourseError(f"nbgrader configuration missing: {path}")
    environ = dict(os.environ)
    try:
        cfg = PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    finally:  # what the file sets for Jupyter (JUPYTER_PATH, for formgrader's templates) stays out of deepul
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update({k: v for k, v in environ.items() if os.environ.get(k) != v})
    if reroot is not None:
        cfg.CourseDirectory.root = str(Path(reroot).resolve())
    if db_url is not None:
        cfg.CourseDirectory.db_url = db_url
    return cfg


def course_id(course: str | Path | None = None) -> str:
    """The course id every gradebook row belongs to (from the nbgrader configuration)."""
    return str(load_config(course).CourseDirectory.course_id)


def setting(name: str, fallback: float, course: str | Path | None = None) -> float:
    """deepul's own setting ``c.Deepul.<name>`` (e.g. ``notebook_timeout_s``), else ``fallback``."""
    try:
        value = load_config(course).Deepul.get(name)
    except Exception:  # no course, a missing or broken configuration: the built-in default
        return fallback
    return float(value) if value is not None else fallback


def assignments(source: str | Path | None = None) -> list[str]:
    """Every assignment (a folder holding at least one notebook) under ``source`` (default: the course's
    ``solutions/``)."""
    source = Path(source) if source is not None else source_dir()
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.ipynb")))


def known_assignments(names, source: str | Path | None = None) -> list[str]:
    """``names`` checked against :func:`assignments` (all of them when ``names`` is empty)."""
    source = Path(source) if source is not None else source_dir()
    known = assignments(source)
    if not names:
        return known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CourseError(
            f"unknown assignment(s) {', '.join(map(repr, unknown))} under {source}; "
            f"known: {', '.join(known) or '(none: add solutions/<assignment>/<nb>.ipynb)'}"
        )
    return list(names)


def source_notebook(assignment: str, course: str | Path | None = None) -> Path:
    """The one nbgrader source notebook ``<course>/solutions/<assignment>/<nb>.ipynb``."""
    folder = root(course) / SOURCE / assignment
    sources = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    if len(sources) != 1:
        raise CourseError(f"expected one source notebook in {folder}, found {len(sources)}; "
                          f"assignments: {', '.join(assignments(folder.parent)) or 'none'}")
    return sources[0]


def verdict_path(assignment: str, course: str | Path | None = None,
                 verdict_root: str | Path = VERDICT_DIR) -> Path:
    """``<course>/<verdict_root>/<assignment>.py`` (``verdict_root`` may be absolute)."""
    return (root(course) / verdict_root / f"{assignment}.py").resolve()


def add_argument(parser) -> None:
    """The ``--course PATH`` option every course command takes."""
    parser.add_argument("--course", default=None, metavar="PATH",
                        help=f"the course folder (default: ${ENV}, else the current folder or the first folder "
                             f"above it holding {' and '.join(MARKERS)})")
