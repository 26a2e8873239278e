"""Reading nbgrader notebooks: the one place that knows nbgrader's cell metadata.

``release``, ``validate`` and the grader all read cells through this module, so that they agree
by construction on which cells are solutions, tests and locked cells, how hidden tests are
stripped (nbgrader's own ``ClearHiddenTests``), when a locked cell counts as changed (one
equality rule), how locked cells are restored, and which names a cell defines.

Everything here only *parses* student notebooks (``ast``, JSON), never runs them.
"""

from __future__ import annotations

import ast
import copy
import re
import textwrap
import warnings
from dataclasses import dataclass, field

import nbformat

# Top-level statements the grader runs from a solution cell; everything else is dropped.
KEPT_STATEMENTS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                   ast.Assign, ast.AnnAssign)
_MAGIC = re.compile(r"^[ \t]*[%!]")
# What the parameters cell is set to for every quick run (the grader's feedback run and validate).
PARAMETERS = {"quick": True, "seed": 0, "device": "auto"}
_PARAMETER_TAGS = ("parameters", "injected-parameters")


# ----------------------------------------------------------------------------- metadata


def nbgrader_meta(cell) -> dict:
    """The cell's ``metadata.nbgrader`` (empty when absent or malformed: student files are untrusted)."""
    meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell.get("metadata"), dict) else {}
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) else None


def is_solution(cell) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_test(cell) -> bool:
    """An auto-graded test cell: a code cell with ``grade: true`` (it carries ``points``)."""
    return bool(nbgrader_meta(cell).get("grade")) and cell.get("cell_type") == "code"


def is_locked(cell) -> bool:
    """nbgrader's rule (``nbgrader.utils.is_locked``): a solution cell never is, a grade cell always is,
    any other cell when its metadata says ``locked``."""
    meta = nbgrader_meta(cell)
    return not meta.get("solution") and bool(meta.get("grade") or meta.get("locked"))


def points(cell) -> float:
    return float(nbgrader_meta(cell).get("points", 0))


# ----------------------------------------------------------------------------- locked cells


def strip_hidden_tests(source: str) -> str:
    """The source of a test cell without its ``### BEGIN/END HIDDEN TESTS`` blocks, exactly as
    nbgrader's ``ClearHiddenTests`` (the release's own preprocessor) leaves it."""
    from nbgrader.preprocessors import ClearHiddenTests

    cell = nbformat.v4.new_code_cell(source)
    ClearHiddenTests(enforce_metadata=False).preprocess_cell(cell, {}, 0)
    return cell.source


def released_cell(cell) -> nbformat.NotebookNode:
    """A copy of ``cell`` as the release holds it: hidden tests stripped, outputs cleared."""
    cell = copy.deepcopy(cell)
    if cell.get("cell_type") == "code":
        cell.source = strip_hidden_tests(cell.source)
        cell.outputs, cell.execution_count = [], None
    return cell


def locked_cells(nb) -> dict[str, nbformat.NotebookNode]:
    """grade_id -> the released version of every locked cell of ``nb`` (a source or a release)."""
    return {grade_id(c): released_cell(c) for c in nb.cells if is_locked(c) and grade_id(c) is not None}


def same_cell(cell, reference) -> bool:
    """The one rule for "the student changed a locked cell": another cell type, or a source that
    differs beyond trailing whitespace."""
    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip().splitlines())

    return cell.get("cell_type") == reference.cell_type and norm(cell.get("source", "")) == norm(reference.source)


@dataclass
class Restored:
    """A student's notebook with every locked cell replaced by its released version."""

    nb: nbformat.NotebookNode
    changed: list[str] = field(default_factory=list)     # locked cells the student had edited
    duplicates: list[str] = field(default_factory=list)  # further copies of a locked cell (removed)
    missing: list[str] = field(default_factory=list)     # locked cells not in the notebook


def restore_locked(nb, locked: dict[str, nbformat.NotebookNode]) -> Restored:
    """Replace every locked cell of ``nb`` (a copy) by its released version ``locked[grade_id]``
    (keeping the student's cell id), drop further copies of it, and take the ``parameters`` tags
    off every other cell (only the released parameters cell sets the run's parameters)."""
    nb = copy.deepcopy(nb)
    out = Restored(nb)
    seen, kept = set(), []
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid in locked:
            if gid in seen:
                out.duplicates.append(gid)
                continue
            seen.add(gid)
            if not same_cell(cell, locked[gid]):
                out.changed.append(gid)
            fresh = copy.deepcopy(locked[gid])
            if isinstance(cell.get("id"), str):
                fresh["id"] = cell["id"]
            cell = fresh
        elif isinstance(cell.get("metadata"), dict) and isinstance(cell["metadata"].get("tags"), list):
            cell["metadata"]["tags"] = [t for t in cell["metadata"]["tags"] if t not in _PARAMETER_TAGS]
        kept.append(cell)
    nb.cells = kept
    out.missing = [gid for gid in locked if gid not in seen]
    return out


def put_back(restored: Restored, locked: dict[str, nbformat.NotebookNode], order) -> None:
    """Insert the missing locked cells, each after the nearest cell that precedes it in ``order``
    (the source notebook's cells) and is present."""
    cells, ids = restored.nb.cells, [grade_id(c) for c in order]
    for k, gid in enumerate(ids):
        if gid not in restored.missing:
            continue
        pos = 0 if k == 0 else len(cells)
        for pid in reversed(ids[:k]):
            idx = next((j for j, c in enumerate(cells) if pid is not None and grade_id(c) == pid), None)
            if idx is not None:
                pos = idx + 1
                break
        cells.insert(pos, copy.deepcopy(locked[gid]))


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
        code = [c for c in nb.cells if c.cell_type == "code"]
        return cls(name=path.name, nb=nb,
                   setup_source="\n\n".join(c.source for c in code if (grade_id(c) or "").startswith("setup")),
                   tests={grade_id(c): points(c) for c in code if is_test(c) and grade_id(c)},
                   solution_ids=[grade_id(c) for c in nb.cells if is_solution(c) and grade_id(c)],
                   locked=locked_cells(nb))


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
    """The cell's source without IPython magic / shell lines (blanked, so line numbers stay), and
    dedented as IPython does (a cell whose lines are all indented runs in Jupyter)."""
    lines, dropped = [], 0
    for line in source.splitlines():
        if _MAGIC.match(line):
            lines.append("")
            dropped += 1
        else:
            lines.append(line)
    return textwrap.dedent("\n".join(lines)), dropped


# Callables an assignment outside the solution cells may call and still count as a constant
# (``SETTINGS = dict(epochs=20)``, ``EPS = math.log(2)``); with module attributes, see ``_constant``.
_CONSTANT_CALLS = {"dict", "list", "tuple", "set", "frozenset", "range", "int", "float", "str", "bool",
                   "complex", "slice", "len", "min", "max", "abs", "round", "sum", "sorted", "zip", "enumerate"}


def _import_aliases(tree) -> dict[str, str]:
    """name -> module for every top-level import of a parsed cell."""
    names = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            names.update({(a.asname or a.name).split(".")[0]: a.name for a in stmt.names})
        elif isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            names.update({a.asname or a.name: f"{stmt.module}.{a.name}" for a in stmt.names})
    return names


def _constant(value, modules: dict[str, str]) -> bool:
    """Is an assignment's value a constant: it calls only builtin constructors and functions of imported
    modules other than the course's own (``helper.run_q1(...)`` trains a model: not a constant)?"""
    for node in ast.walk(value):
        if isinstance(node, (ast.Lambda, ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
            return False
        if isinstance(node, ast.Call):
            root = node.func
            while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
                root = root.func if isinstance(root, ast.Call) else root.value
            if not isinstance(root, ast.Name):
                return False
            if root.id in _CONSTANT_CALLS and root is node.func:
                continue
            module = modules.get(root.id)
            if module is None or module.split(".")[0] == "deepul_helpers":
                return False
    return True


def filter_cell(source: str, *, solution: bool = True, modules: dict[str, str] | None = None
                ) -> tuple[str | None, list[str]]:
    """Keep only imports, ``def``, ``class`` and assignments at the top level of a cell.

    A solution cell (``solution``) keeps every assignment; any other cell only constant ones
    (``_constant``, with ``modules`` the notebook's import aliases), so that a run cell such as
    ``q1 = helper.run_q1(...)`` never runs in the grader.
    Returns ``(code, messages)``: ``code`` is the kept statements as source (None when the cell
    does not parse); ``messages`` say what was dropped (for a solution cell).
    """
    text, magics = _without_magics(source)
    messages = [f"{magics} IPython magic/shell line(s) ignored"] if magics else []
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        return None, messages + [f"syntax error on line {e.lineno}: the cell was not loaded"]
    modules = {**(modules or {}), **_import_aliases(tree)}
    kept, dropped = [], []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and not solution:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names_only = all(isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Store)) for t in targets
                             for n in ast.walk(t))  # X = ..., not np.allclose = ... nor d[k] = ...
            if names_only and stmt.value is not None and _constant(stmt.value, modules):
                kept.append(stmt)
        elif isinstance(stmt, KEPT_STATEMENTS):
            kept.append(stmt)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or bare constant: nothing to run
        else:
            dropped.append(f"line {stmt.lineno} ({type(stmt).__name__})")
    if dropped and solution:
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


@dataclass
class StudentCode:
    cells: list[tuple[str, str]]            # (label, kept source) in notebook order
    messages: list[str]                     # general messages
    question_messages: dict[str, list[str]]  # requires-name -> messages about the cells defining it
    imports: set[str]                       # modules imported anywhere in the loaded cells


def notebook_imports(nb) -> dict[str, str]:
    """name -> module for the top-level imports of every code cell of ``nb`` (cells that parse)."""
    names: dict[str, str] = {}
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            try:
                names.update(_import_aliases(ast.parse(_without_magics(cell.get("source", ""))[0])))
            except SyntaxError:
                continue
    return names


def solution_code(nb, source: SourceNotebook, required: set[str]) -> StudentCode:
    """What the grader loads from a student's notebook, in notebook order: the definitions (imports,
    ``def``, ``class``, assignments) of the solution cells (by nbgrader grade_id) and of every other
    unlocked code cell, so that the grade does not depend on where the student put a helper. Solution
    cells keep every top-level assignment; other cells only constant ones (``filter_cell``): a run
    cell such as ``q1 = helper.run_q1(...)`` is not executed. A cell without solution metadata that
    defines a required name the solution cells do not (metadata stripped, cell copied) counts as a
    solution cell. Locked cells (setup, parameters, tests) are never loaded from the student's copy."""
    sol_ids = set(source.solution_ids)
    skip_ids = set(source.locked) | set(source.tests)
    code_cells = [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code" and grade_id(c) not in skip_ids]
    solution = {i for i in code_cells if grade_id(nb.cells[i]) in sol_ids}
    defined = set().union(*(defined_names(nb.cells[i].source) for i in solution)) if solution else set()
    messages: list[str] = []
    missing = required - defined
    for i in code_cells:
        found = defined_names(nb.cells[i].source) & missing if i not in solution else set()
        if found:
            solution.add(i)
            messages.append(f"{', '.join(sorted(found))} loaded from a cell without its solution metadata")
    modules = notebook_imports(nb)
    cells, qmsgs, imports = [], {}, set()
    for i in code_cells:
        src = nb.cells[i].source
        label = grade_id(nb.cells[i]) or f"cell {i + 1}"
        code, msgs = filter_cell(src, solution=i in solution, modules=modules)
        for name in defined_names(src) & required:
            qmsgs.setdefault(name, []).extend(f"{label}: {m}" for m in msgs)
        if code is None:
            messages.append(f"{label}: {msgs[-1]}")
        if not code:
            continue
        imports |= imported_modules(code)
        cells.append((label, code))
    return StudentCode(cells=cells, messages=messages, question_messages=qmsgs, imports=imports)


# ----------------------------------------------------------------------------- feedback notebook


def feedback_notebook(nb, source: SourceNotebook) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook the feedback run executes: the student's cells with every locked cell (parameters,
    setup, tests) replaced by its released version (hidden tests stripped), duplicates dropped,
    deleted ones put back. Returns it with messages about the test cells that were restored."""
    restored = restore_locked(nb, source.locked)
    put_back(restored, source.locked, source.nb.cells)
    messages = [f"duplicate of locked cell {gid} removed" for gid in restored.duplicates]
    messages += [f"test cell {gid} was changed; the original was restored"
                 for gid in restored.changed if gid in source.tests]
    messages += [f"test cell {gid} was missing; the original was restored"
                 for gid in restored.missing if gid in source.tests]
    restored.nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return restored.nb, messages


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
