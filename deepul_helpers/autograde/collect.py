"""Find each student's notebook in a submissions folder, reading bytes only (nothing is run).

Accepted layouts, mixed freely in one folder:

- nbgrader's ``DIR/<student_id>/<assignment>/*.ipynb`` (an optional ``timestamp.txt`` beside it),
  also ``DIR/<student_id>/*.ipynb``;
- an LMS download: ``DIR/<student_id>.zip`` or ``DIR/<student_id>_<anything>.zip`` holding the
  notebook anywhere inside (read in memory, never extracted; size-capped against zip bombs);
- loose files ``DIR/<student_id>_<anything>.ipynb``.

Symbolic links are never followed. Student ids are letters, digits and ``._@+-``.
"""

from __future__ import annotations

import re
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

MAX_NOTEBOOK_BYTES = 50 * 2**20
MAX_ZIP_MEMBERS = 2000
_STUDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")


@dataclass
class Submission:
    student: str
    notebooks: dict[str, bytes] = field(default_factory=dict)   # file name -> bytes
    notes: list[str] = field(default_factory=list)
    timestamp: datetime | None = None
    origin: str = ""


def _read_timestamp(path: Path) -> datetime | None:
    if not path.is_file() or path.is_symlink():
        return None
    try:
        from nbgrader.utils import parse_utc

        return parse_utc(path.read_text()[:100].strip()).replace(tzinfo=None)
    except Exception:
        return None


def _from_folder(folder: Path, sub: Submission) -> None:
    for p in sorted(folder.iterdir()):
        if p.is_symlink():
            sub.notes.append(f"symbolic link {p.name} ignored")
        elif p.suffix == ".ipynb" and p.is_file():
            if p.stat().st_size > MAX_NOTEBOOK_BYTES:
                sub.notes.append(f"{p.name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB and was ignored")
            else:
                sub.notebooks[p.name] = p.read_bytes()
        elif p.name not in ("timestamp.txt",) and not p.name.startswith("."):
            sub.notes.append(f"extra file {p.name} ignored")


def _from_zip(path: Path, sub: Submission) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                sub.notes.append(f"{path.name} holds too many files and was ignored")
                return
            for info in infos:
                name = info.filename.rsplit("/", 1)[-1]
                if info.is_dir() or "__MACOSX" in info.filename or name.startswith("."):
                    continue
                if not name.endswith(".ipynb"):
                    sub.notes.append(f"extra file {name} ignored")
                elif info.file_size > MAX_NOTEBOOK_BYTES:
                    sub.notes.append(f"{name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB and was ignored")
                else:
                    with z.open(info) as f:
                        data = f.read(MAX_NOTEBOOK_BYTES + 1)
                    if len(data) <= MAX_NOTEBOOK_BYTES:
                        sub.notebooks.setdefault(name, data)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
        sub.notes.append(f"{path.name} could not be read as a zip file ({type(e).__name__})")


def layouts(assignment: str) -> str:
    """The accepted layouts, as a message names them."""
    return (f"DIR/<student>/{assignment}/<notebook>.ipynb (nbgrader's collect), DIR/<student>/<notebook>.ipynb, "
            "DIR/<student>[_<anything>].zip (an LMS download) or DIR/<student>_<anything>.ipynb (loose files)")


def collect(submissions: str | Path, assignment: str) -> list[Submission]:
    """Every student's submission in ``submissions`` (sorted by student id); raises
    FileNotFoundError when the folder does not exist. Prints a warning where the folder looks
    mis-laid: a loose notebook without a ``<student>_`` prefix (``hw1.ipynb`` would become student
    ``hw1``) or a student folder named like the assignment (``--submissions`` one folder too deep)."""
    root = Path(submissions)
    if not root.is_dir():
        raise FileNotFoundError(f"submissions folder {root} does not exist; expected the layouts "
                                + layouts(assignment))
    found: dict[str, Submission] = {}
    skipped = []
    warn = []
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_symlink():
            skipped.append(f"{p.name} (symbolic link)")
            continue
        student = p.name if p.is_dir() else p.stem.split("_", 1)[0]
        if not _STUDENT.match(student) or not (p.is_dir() or p.suffix in (".zip", ".ipynb")):
            skipped.append(p.name)
            continue
        if p.is_dir() and student == assignment:
            warn.append(f"the folder {p} is named like the assignment and is graded as a student called "
                        f"{student!r}: did you point --submissions one folder too deep (at one student's folder)? "
                        f"Expected DIR/<student>/{assignment}/<notebook>.ipynb")
        elif p.suffix == ".ipynb" and "_" not in p.stem:
            warn.append(f"the loose notebook {p} is graded as a student called {student!r}: name loose notebooks "
                        "<student>_<anything>.ipynb, or did you point --submissions at a student's assignment folder?")
        sub = found.setdefault(student, Submission(student=student, origin=str(p)))
        if p.is_dir():
            inner = p / assignment
            if inner.is_dir() and not inner.is_symlink():
                _from_folder(inner, sub)
                sub.timestamp = _read_timestamp(inner / "timestamp.txt")
            else:
                _from_folder(p, sub)
        elif p.suffix == ".zip":
            _from_zip(p, sub)
        elif p.stat().st_size <= MAX_NOTEBOOK_BYTES:
            sub.notebooks.setdefault(p.name.split("_", 1)[-1] if "_" in p.name else p.name, p.read_bytes())
    for s in skipped:
        print(f"deepul autograde: skipped {root / s}: not a student folder, zip or notebook", flush=True)
    for w in warn:
        print(f"deepul autograde: warning: {w}", file=sys.stderr, flush=True)
    return [found[k] for k in sorted(found)]


def pick_notebook(sub: Submission, expected: str, grade_ids: set[str]) -> tuple[str | None, bytes | None, list[str]]:
    """The submitted notebook to grade: the one named ``expected``, else the single notebook, else the
    one mentioning most of the source's grade_ids. Returns (name, bytes, messages)."""
    if expected in sub.notebooks:
        return expected, sub.notebooks[expected], []
    if not sub.notebooks:
        return None, None, [f"no notebook found (expected {expected})"]
    if len(sub.notebooks) == 1:
        name, data = next(iter(sub.notebooks.items()))
    else:
        name, data = max(sorted(sub.notebooks.items()),
                         key=lambda kv: sum(g.encode() in kv[1] for g in grade_ids))
    return name, data, [f"graded {name} (expected a notebook named {expected})"]
