"""The course as nbgrader sees it: where things live and what ``grading/nbgrader_config.py`` says.

Every command (``deepul release``, ``deepul autograde``, ``deepul validate``) finds the course
through this module: the repository's folders, the nbgrader configuration (course id, release
stubs, deepul's own time limits under ``c.Deepul``), the assignments, and an assignment's
source notebook and verdict module.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_PATH = REPO_ROOT / "grading" / "nbgrader_config.py"
SOURCE_DIR = REPO_ROOT / "solutions"      # nbgrader source: solutions/<assignment>/<nb>.ipynb
RELEASE_DIR = REPO_ROOT / "homeworks"     # the student release, generated from SOURCE_DIR
VERDICT_DIR = "grading/verdicts"          # <assignment>.py, relative to a course root


class CourseError(RuntimeError):
    """The course's configuration or an assignment's files are missing or unusable."""


def load_config(root: str | Path | None = None, db_url: str | None = None):
    """The traitlets Config of ``grading/nbgrader_config.py``, optionally re-rooted / re-pointed."""
    from traitlets.config.loader import PyFileConfigLoader

    if not CONFIG_PATH.is_file():
        raise CourseError(f"nbgrader configuration missing: {CONFIG_PATH}")
    cfg = PyFileConfigLoader(CONFIG_PATH.name, path=str(CONFIG_PATH.parent)).load_config()
    if root is not None:
        cfg.CourseDirectory.root = str(Path(root).resolve())
    if db_url is not None:
        cfg.CourseDirectory.db_url = db_url
    return cfg


def course_id() -> str:
    """The course id every gradebook row belongs to (from the nbgrader configuration)."""
    return str(load_config().CourseDirectory.course_id)


def setting(name: str, fallback: float) -> float:
    """deepul's own setting ``c.Deepul.<name>`` (e.g. ``notebook_timeout_s``), else ``fallback``."""
    try:
        value = load_config().Deepul.get(name)
    except Exception:  # a missing or broken configuration: the built-in default
        return fallback
    return float(value) if value is not None else fallback


def assignments(source_dir: str | Path = SOURCE_DIR) -> list[str]:
    """Every assignment (a folder holding at least one notebook) under ``source_dir``."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        return []
    return sorted(p.name for p in source_dir.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.ipynb")))


def known_assignments(names, source_dir: str | Path = SOURCE_DIR) -> list[str]:
    """``names`` checked against :func:`assignments` (all of them when ``names`` is empty)."""
    known = assignments(source_dir)
    if not names:
        return known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CourseError(
            f"unknown assignment(s) {', '.join(map(repr, unknown))} under {source_dir}; "
            f"known: {', '.join(known) or '(none: add solutions/<assignment>/<nb>.ipynb)'}"
        )
    return list(names)


def source_notebook(assignment: str, root: str | Path = REPO_ROOT) -> Path:
    """The one nbgrader source notebook ``<root>/solutions/<assignment>/<nb>.ipynb``."""
    folder = Path(root) / "solutions" / assignment
    sources = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    if len(sources) != 1:
        raise CourseError(f"expected one source notebook in {folder}, found {len(sources)}; "
                          f"assignments: {', '.join(assignments(folder.parent)) or 'none'}")
    return sources[0]


def verdict_path(assignment: str, root: str | Path = REPO_ROOT, verdict_root: str | Path = VERDICT_DIR) -> Path:
    """``<root>/<verdict_root>/<assignment>.py`` (``verdict_root`` may be absolute)."""
    return (Path(root) / verdict_root / f"{assignment}.py").resolve()
