"""``deepul release``: generate the student release ``homeworks/`` from the nbgrader source ``solutions/``.

nbgrader's generate_assignment (configured by ``grading/nbgrader_config.py``) strips the
solutions and the hidden tests; this module runs it in a scratch course directory, then
normalises what comes out (outputs cleared, cell ids fixed, run metadata dropped) so that
releasing twice gives byte-identical files, and refuses a release that still holds
solution or hidden-test text. ``deepul release --check`` regenerates into a temporary
folder and reports committed releases that are stale.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from deepul_helpers.autograde import cells
from deepul_helpers.autograde import course as course_folder
from deepul_helpers.autograde.course import CourseError, known_assignments, load_config

# Region delimiters (as configured in grading/nbgrader_config.py) that must never reach a student.
DELIMITERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
              "BEGIN MARK SCHEME", "END MARK SCHEME")
_REGION = re.compile(
    r"^[ \t]*(?:###|#|<!--)?[ \t]*(?:===)?[ \t]*BEGIN (SOLUTION|HIDDEN TESTS|MARK SCHEME)\b.*?$\n?"
    r"(?P<body>.*?)"
    r"^[ \t]*(?:###|#|<!--)?[ \t]*(?:===)?[ \t]*END \1\b.*?$",
    re.M | re.S,
)
_ID_OK = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ReleaseError(CourseError):
    """The release could not be generated, or would leak solutions or hidden tests."""


def _resolve(names, source_dir: Path) -> list[str]:
    try:
        return known_assignments(names, source_dir)
    except CourseError as e:
        raise ReleaseError(str(e)) from None


def regions(text: str) -> list[tuple[str, str]]:
    """(kind, body) of every delimited solution / hidden-test / mark-scheme region in ``text``."""
    return [(m.group(1), m.group("body")) for m in _REGION.finditer(text)]


def normalise(nb) -> None:
    """Make a released notebook reproducible: no outputs, counts or run metadata; stable cell ids."""
    nb.nbformat, nb.nbformat_minor = 4, max(int(nb.get("nbformat_minor", 5)), 5)
    for key in ("papermill", "widgets", "toc", "varInspector"):
        nb.metadata.pop(key, None)
    seen: set[str] = set()
    for i, cell in enumerate(nb.cells):
        for key in ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if "attachments" in cell and not cell.attachments:
            del cell["attachments"]
        cid = cell.get("id")
        if not (isinstance(cid, str) and _ID_OK.match(cid)) or cid in seen:
            gid = cells.grade_id(cell) or ""
            cid = gid if _ID_OK.match(gid) and gid not in seen else f"cell-{i:03d}"
        seen.add(cid)
        cell["id"] = cid


def leak_problems(source_nb, release_nb, code_stub: str, text_stub: str) -> list[str]:
    """What in ``release_nb`` gives away the source's solutions or hidden tests (empty: nothing)."""
    problems = []
    released = [c.source for c in release_nb.cells]
    for i, text in enumerate(released):
        for d in DELIMITERS:
            if d in text:
                problems.append(f"cell {i} still contains the delimiter {d!r}")
    # Secrets: delimited regions, and whole solution cells written without delimiters.
    whole = [c.source for c in source_nb.cells if cells.is_solution(c) and not regions(c.source)]
    all_source = "\n".join(c.source for c in source_nb.cells)
    outside = _REGION.sub("", "\n".join(c.source for c in source_nb.cells if c.source not in whole))
    all_released = "\n".join(released)
    secrets = regions(all_source) + [("SOLUTION cell", w) for w in whole]
    for kind, body in secrets:
        body = body.strip()
        if body and body in all_released and body not in outside:
            problems.append(f"the text of a {kind} region reached the release: {body[:60]!r}...")
    by_id = {cells.grade_id(c): c for c in release_nb.cells}
    for c in source_nb.cells:
        if not cells.is_solution(c):
            continue
        gid = cells.grade_id(c)
        rc = by_id.get(gid)
        stub = code_stub if c.cell_type == "code" else text_stub
        if rc is None:
            problems.append(f"solution cell {gid!r} is missing from the release")
        elif not all(line.strip() in rc.source for line in stub.splitlines()):  # stub may be indented
            problems.append(f"solution cell {gid!r} lacks the placeholder {stub!r}")
    return problems


def _ignored(name: str, patterns) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


@dataclass
class Released:
    assignment: str
    files: list[Path]


def _generate(assignment: str, source_dir: Path, workdir: Path, db_url: str | None, course=None) -> dict[str, bytes]:
    """Run nbgrader in a scratch course under ``workdir`` with ``course``'s configuration; return
    {relative path: normalised bytes}."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    from deepul_helpers.autograde.gradebook import ensure_alembic_on_path

    ensure_alembic_on_path()
    src = source_dir / assignment
    for nb_path in sorted(src.glob("*.ipynb")):
        try:
            nbformat.read(nb_path, as_version=4)
        except Exception as e:  # malformed JSON or schema: say which file
            raise ReleaseError(f"cannot read the source notebook {nb_path}: {e}") from e
    cfg = load_config(course, reroot=workdir, db_url=db_url or f"sqlite:///{workdir / 'release-gradebook.db'}")
    ignore = list(cfg.CourseDirectory.ignore)
    shutil.copytree(src, workdir / "solutions" / assignment,
                    ignore=lambda d, names: [n for n in names if _ignored(n, ignore)])
    coursedir = CourseDirectory(config=cfg)
    coursedir.assignment_id = assignment
    app = GenerateAssignment(coursedir=coursedir, config=cfg)
    app.force = True
    result = capture_log(app)
    if not result["success"]:
        log = f"{result.get('log', '')}\n{result.get('error', '')}"
        causes = [m.strip() for m in re.findall(r"^\s*(?:\w+\.)*\w*(?:Error|Exception): .+$", log, re.M)]
        cause = next((c for c in causes if "see the the above traceback" not in c), "see the log below")
        raise ReleaseError(f"nbgrader generate_assignment failed for {assignment!r}: {cause}\n"
                           f"--- nbgrader log ---\n{log.strip()}")
    out_dir = workdir / "homeworks" / assignment
    code_stub = cfg.ClearSolutions.code_stub["python"]
    text_stub = cfg.ClearSolutions.text_stub
    files: dict[str, bytes] = {}
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(out_dir).as_posix()
        if path.suffix != ".ipynb":
            files[rel] = path.read_bytes()
            continue
        nb = nbformat.read(path, as_version=4)
        normalise(nb)
        nbformat.validate(nb)
        problems = leak_problems(nbformat.read(src / rel, as_version=4), nb, code_stub, text_stub)
        if problems:
            raise ReleaseError(f"refusing to release {assignment}/{rel}: " + "; ".join(problems))
        text = nbformat.writes(nb, version=4)
        files[rel] = (text if text.endswith("\n") else text + "\n").encode("utf-8")
    if not any(k.endswith(".ipynb") for k in files):
        raise ReleaseError(f"nbgrader produced no notebook for {assignment!r} from {src}")
    return files


def generate(assignment: str, source_dir: str | Path | None = None, db_url: str | None = None,
             course=None) -> dict[str, bytes]:
    """The release of one assignment as {relative path: bytes}, written nowhere (``source_dir``: default
    the course's ``solutions/``; the course by ``course.root``'s rule)."""
    source_dir = Path(source_dir) if source_dir is not None else course_folder.source_dir(course)
    with tempfile.TemporaryDirectory(prefix="deepul-release-") as tmp:
        return _generate(assignment, source_dir, Path(tmp), db_url, course)


_CHECK_CACHE: dict[tuple[str, str], dict[str, bytes]] = {}


def _source_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _generated_for_check(name: str, source_dir: Path, course=None) -> dict[str, bytes]:
    """``generate`` once per source content and configuration in this process (``check`` may run often)."""
    config = course_folder.root(course) / course_folder.CONFIG
    key = (str((source_dir / name).resolve()), _source_digest(source_dir / name),
           config.read_text() if config.is_file() else "")
    if key not in _CHECK_CACHE:
        _CHECK_CACHE[key] = generate(name, source_dir, course=course)
    return _CHECK_CACHE[key]


def _folders(source_dir, release_dir, course) -> tuple[Path, Path]:
    """(source, release) folders: as given, else the course's ``solutions/`` and ``homeworks/``."""
    return (Path(source_dir) if source_dir is not None else course_folder.source_dir(course),
            Path(release_dir) if release_dir is not None else course_folder.release_dir(course))


def release(names=None, *, source_dir: str | Path | None = None, release_dir: str | Path | None = None,
            db_url: str | None = None, course=None) -> list[Released]:
    """Generate ``release_dir/<assignment>/`` from ``source_dir/<assignment>/`` for each name (default all).

    The folders default to the course's ``solutions/`` and ``homeworks/``; the course (and its nbgrader
    configuration) is found by ``course.root``'s rule. ``db_url``: also record the assignment's cells in
    this gradebook (default: a throw-away one). Notebooks in the release folder that no longer have a
    source are removed.
    """
    source_dir, release_dir = _folders(source_dir, release_dir, course)
    done = []
    for name in _resolve(names, source_dir):
        files = generate(name, source_dir, db_url, course=course)
        dest = release_dir / name
        dest.mkdir(parents=True, exist_ok=True)
        for stale in dest.glob("*.ipynb"):
            if stale.name not in files:
                stale.unlink()
        written = []
        for rel, data in files.items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists() or target.read_bytes() != data:
                target.write_bytes(data)
            written.append(target)
        done.append(Released(name, written))
    return done


def check(names=None, *, source_dir: str | Path | None = None, release_dir: str | Path | None = None,
          course=None) -> list[str]:
    """Problems with the committed release: stale, missing or orphaned notebooks (empty: up to date)."""
    source_dir, release_dir = _folders(source_dir, release_dir, course)
    problems = []
    for name in _resolve(names, source_dir):
        files = _generated_for_check(name, source_dir, course)
        for rel, data in files.items():
            target = release_dir / name / rel
            if not target.exists():
                problems.append(f"{target} is missing: run 'deepul release {name}'")
            elif target.read_bytes() != data:
                problems.append(f"{target} is stale relative to {source_dir / name / rel}: "
                                f"run 'deepul release {name}'")
        for extra in sorted((release_dir / name).glob("*.ipynb")):
            if extra.name not in files:
                problems.append(f"{extra} has no source in {source_dir / name}")
    return problems


def add_arguments(parser) -> None:
    parser.add_argument("assignments", nargs="*", metavar="ASSIGNMENT",
                        help="folder names under solutions/ (default: every assignment)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a committed release is stale or missing")
    parser.add_argument("--db", default=None,
                        help="also record the assignments' cells in this gradebook (SQLAlchemy URL)")
    parser.add_argument("--source", default=None, help="nbgrader source folder (default: the course's solutions/)")
    parser.add_argument("--dest", default=None, help="release folder (default: the course's homeworks/)")
    course_folder.add_argument(parser)


def main(args) -> int:
    course = getattr(args, "course", None)
    try:
        source, dest = _folders(args.source, args.dest, course)
        if args.check:
            problems = check(args.assignments, source_dir=source, release_dir=dest, course=course)
            for p in problems:
                print(f"stale: {p}")
            if not problems:
                print(f"release is up to date: {dest} (from {source})")
            return 1 if problems else 0
        done = release(args.assignments, source_dir=source, release_dir=dest, db_url=args.db, course=course)
    except course_folder.CourseNotFound as e:
        print(f"deepul release: {e}")
        return 2
    except CourseError as e:
        print(f"deepul release: {e}")
        return 1
    if not done:
        print(f"deepul release: no assignment under {source} (expected <assignment>/<nb>.ipynb)")
        return 1
    for r in done:
        for f in r.files:
            print(f"released {r.assignment}: {f}")
    return 0
