"""Reading notebooks for grading: the source's cells, the student's solution code, the feedback copy.

Everything here runs in the trusted grader and only *parses* student code (``ast``), never runs it.
"""

from __future__ import annotations

import ast
import copy
import re
import warnings
from dataclasses import dataclass, field

import nbformat

# Top-level statements the grader runs from a solution cell; everything else is dropped.
KEPT_STATEMENTS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                   ast.Assign, ast.AnnAssign)
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.M | re.S)
_MAGIC = re.compile(r"^[ \t]*[%!]")
PARAMETERS = {"quick": True, "seed": 0, "device": "auto"}


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) else None


def strip_hidden_tests(source: str) -> str:
    """The source of a test cell without its ``### BEGIN/END HIDDEN TESTS`` blocks."""
    return _HIDDEN.sub("", source)


@dataclass
class SourceNotebook:
    """What the grader needs from the instructor's source notebook (``solutions/<assignment>/X.ipynb``)."""

    name: str                                   # file name, e.g. "hw1.ipynb"
    nb: nbformat.NotebookNode
    setup_source: str                           # the locked setup cell(s), run before the student's code
    tests: dict[str, float] = field(default_factory=dict)        # test cell grade_id -> points
    solution_ids: list[str] = field(default_factory=list)        # solution cell grade_ids, in order
    locked: dict[str, nbformat.NotebookNode] = field(default_factory=dict)  # grade_id -> released cell

    @classmethod
    def read(cls, path) -> SourceNotebook:
        nb = nbformat.read(str(path), as_version=4)
        setup, tests, solutions, locked = [], {}, [], {}
        for cell in nb.cells:
            meta, gid = nbgrader_meta(cell), grade_id(cell)
            if gid is None:
                continue
            if meta.get("solution"):
                solutions.append(gid)
            if meta.get("grade") and cell.cell_type == "code":
                tests[gid] = float(meta.get("points", 0))
            if gid.startswith("setup") and cell.cell_type == "code":
                setup.append(cell.source)
            if meta.get("locked") and not meta.get("solution"):
                released = copy.deepcopy(cell)
                if cell.cell_type == "code":
                    released.source = strip_hidden_tests(cell.source)
                    released.outputs, released.execution_count = [], None
                locked[gid] = released
        return cls(name=path.name, nb=nb, setup_source="\n\n".join(setup), tests=tests,
                   solution_ids=solutions, locked=locked)


def read_submission(data: bytes) -> nbformat.NotebookNode:
    """Parse a submitted notebook; raises ValueError with a student-readable reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate cell ids and the like are corrected, not fatal
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    except UnicodeDecodeError as e:
        raise ValueError("the notebook is not UTF-8 text") from e
    except Exception as e:  # nbformat raises several kinds for broken JSON
        raise ValueError(f"the notebook is not valid notebook JSON ({type(e).__name__})") from e
    if not isinstance(nb.get("cells"), list):
        raise ValueError("the notebook has no list of cells")
    for cell in nb.cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise ValueError("the notebook has a cell of unknown type")
        if not isinstance(cell.get("source", ""), str):
            cell["source"] = "".join(cell["source"]) if isinstance(cell["source"], list) else ""
    return nb


# ----------------------------------------------------------------------------- solution code


def _without_magics(source: str) -> tuple[str, int]:
    lines, dropped = [], 0
    for line in source.splitlines():
        if _MAGIC.match(line):
            lines.append("")
            dropped += 1
        else:
            lines.append(line)
    return "\n".join(lines), dropped


def filter_cell(source: str) -> tuple[str | None, list[str]]:
    """Keep only imports, ``def``, ``class`` and assignments at the top level of a cell.

    Returns ``(code, messages)``: ``code`` is the kept statements as source (None when the cell
    does not parse); ``messages`` say what was dropped.
    """
    text, magics = _without_magics(source)
    messages = [f"{magics} IPython magic/shell line(s) ignored"] if magics else []
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        return None, messages + [f"syntax error on line {e.lineno}: the cell was not loaded"]
    kept, dropped = [], []
    for stmt in tree.body:
        if isinstance(stmt, KEPT_STATEMENTS):
            kept.append(stmt)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or bare constant: nothing to run
        else:
            dropped.append(f"line {stmt.lineno} ({type(stmt).__name__})")
    if dropped:
        messages.append("only imports, def, class and assignments run at the top level of a solution "
                        "cell; ignored: " + ", ".join(dropped[:5]) + (" ..." if len(dropped) > 5 else ""))
    return ast.unparse(ast.Module(body=kept, type_ignores=[])), messages


def defined_names(source: str) -> set[str]:
    """Names bound at the top level of a cell (empty when it does not parse)."""
    try:
        tree = ast.parse(_without_magics(source)[0])
    except SyntaxError:
        return set()
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def imported_modules(source: str) -> set[str]:
    """Modules a cell imports, statically: import statements, ``__import__("m")`` and
    ``importlib.import_module("m")`` with constant names (``from a import b`` gives ``a`` and ``a.b``)."""
    try:
        tree = ast.parse(_without_magics(source)[0])
    except SyntaxError:
        return set()
    mods: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            mods.add(node.module)
            mods.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            fn = node.func
            fname = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            if fname in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                mods.add(node.args[0].value)
    return mods


def module_matches(module: str, forbidden: str) -> bool:
    return module == forbidden or module.startswith(forbidden + ".")


@dataclass
class StudentCode:
    cells: list[tuple[str, str]]            # (label, kept source) in notebook order
    messages: list[str]                     # general messages
    question_messages: dict[str, list[str]]  # requires-name -> messages about the cells defining it
    imports: set[str]                       # modules imported anywhere in the loaded cells


def solution_code(nb, source: SourceNotebook, required: set[str]) -> StudentCode:
    """The student's solution cells: by nbgrader grade_id, or, for required names no such cell
    defines (metadata stripped, cells copied), the code cells whose top level defines them."""
    sol_ids = set(source.solution_ids)
    skip_ids = set(source.locked) | set(source.tests)
    chosen: list[int] = []
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") == "code" and grade_id(cell) in sol_ids:
            chosen.append(i)
    defined = set().union(*(defined_names(nb.cells[i].source) for i in chosen)) if chosen else set()
    messages: list[str] = []
    missing = required - defined
    if missing:
        for i, cell in enumerate(nb.cells):
            if i in chosen or cell.get("cell_type") != "code" or grade_id(cell) in skip_ids:
                continue
            found = defined_names(cell.source) & missing
            if found:
                chosen.append(i)
                messages.append(f"{', '.join(sorted(found))} loaded from a cell without its solution metadata")
    cells, qmsgs, imports = [], {}, set()
    for i in sorted(chosen):
        src = nb.cells[i].source
        label = grade_id(nb.cells[i]) or f"cell {i + 1}"
        code, msgs = filter_cell(src)
        for name in defined_names(src) & required:
            qmsgs.setdefault(name, []).extend(f"{label}: {m}" for m in msgs)
        if code is None:
            continue
        imports |= imported_modules(code)
        cells.append((label, code))
    return StudentCode(cells=cells, messages=messages, question_messages=qmsgs, imports=imports)


# ----------------------------------------------------------------------------- feedback notebook


def _same(a: str, b: str) -> bool:
    """Equal up to trailing whitespace (nbgrader's release trims test cells differently)."""
    norm = lambda t: "\n".join(line.rstrip() for line in t.strip().splitlines())
    return norm(a) == norm(b)


def feedback_notebook(nb, source: SourceNotebook) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook executed for feedback: the student's cells with every locked cell (parameters,
    setup, tests) replaced by its released version (hidden tests stripped), deleted ones put back,
    duplicates dropped, outputs cleared."""
    nb = copy.deepcopy(nb)
    messages, seen, cells = [], set(), []
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid in source.locked:
            if gid in seen:
                messages.append(f"duplicate of locked cell {gid} removed")
                continue
            seen.add(gid)
            original = source.locked[gid]
            if cell.get("cell_type") != original.cell_type or not _same(cell.source, original.source):
                if gid in source.tests:
                    messages.append(f"test cell {gid} was changed; the original was restored")
            cell = copy.deepcopy(source.locked[gid])
        else:
            tags = cell.get("metadata", {}).get("tags")
            if isinstance(tags, list):  # only the restored parameters cell may carry these tags
                cell["metadata"]["tags"] = [t for t in tags if t not in ("parameters", "injected-parameters")]
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    # Put back locked cells the student deleted, after the nearest preceding cell that is present.
    order = [c for c in source.nb.cells]
    for k, src_cell in enumerate(order):
        gid = grade_id(src_cell)
        if gid not in source.locked or gid in seen:
            continue
        if gid in source.tests:
            messages.append(f"test cell {gid} was missing; the original was restored")
        pos = 0 if k == 0 else len(cells)
        for prev in reversed(order[:k]):
            pid = grade_id(prev)
            idx = next((j for j, c in enumerate(cells) if pid is not None and grade_id(c) == pid), None)
            if idx is not None:
                pos = idx + 1
                break
        cells.insert(pos, copy.deepcopy(source.locked[gid]))
        seen.add(gid)
    for cell in cells:  # papermill expects a tags list on every cell
        cell.setdefault("metadata", {})
        if not isinstance(cell["metadata"].get("tags"), list):
            cell["metadata"]["tags"] = []
    nb.cells = cells
    # Quick mode injected after the parameters cell, as papermill does.
    from papermill.translators import translate_parameters

    injected = nbformat.v4.new_code_cell(translate_parameters("python3", "python", PARAMETERS, "Parameters"),
                                         metadata={"tags": ["injected-parameters"]})
    at = next((i for i, c in enumerate(cells) if "parameters" in c["metadata"]["tags"]), -1)
    cells.insert(at + 1, injected)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb, messages


def passed_tests(executed, tests: dict[str, float]) -> dict[str, bool]:
    """For each test cell grade_id: did the cell run without an error (as the kernel reported)?"""
    result = dict.fromkeys(tests, False)
    for cell in executed.cells:
        gid = grade_id(cell)
        if gid in result and cell.get("cell_type") == "code" and not result[gid]:
            ran = cell.get("execution_count") is not None
            errors = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
            result[gid] = ran and not errors
    return result
