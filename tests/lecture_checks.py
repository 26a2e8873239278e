"""Checks every lecture test uses, on the committed notebook and on its executed copy.

    from lecture_checks import INLINE, check_committed_lecture, check_executed_lecture

    def test_lecture_is_committed_clean():
        check_committed_lecture(LECTURE)

    path, records = notebook.execute(LECTURE, out_dir=tmp_path, env=INLINE)
    check_executed_lecture(path)

Execute with the inline backend (``env=INLINE``) so that the executed copy holds its figures (and
a figure shown twice can be seen); ``notebook.execute`` otherwise chooses Agg, which shows none.

The conventions (CONTRIBUTING.md, "Notebooks"): the first code cell is the ``parameters`` cell;
no outputs committed; code cells of at most ``MAX_LINES`` lines; every training call passes
``quick=quick, seed=seed, device=device``; seeding only through ``config.seed_everything``; and,
once executed, no error output and no output the reader was not meant to see: an ``Out[...]``
holding an object's default repr (``<torch._C.Generator at 0x...>``), a dump of numpy scalars
(``np.float64(...)``), a figure shown twice (a cell ending in an expression that returns a
Figure: end it with ``;``) or an empty figure.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat

MAX_LINES = 15
INLINE = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}  # notebook.execute(..., env=INLINE)
PARAMETERS = 'quick = False\nseed = 0\ndevice = "auto"'
DEFAULT_REPR = re.compile(r"<[\w.]+(?: object)? at 0x[0-9a-fA-F]+>")
NUMPY_SCALAR = re.compile(r"\bnp\.(?:float|int|uint|bool_?)\d*\(")
SEEDING = re.compile(r"\b(?:torch\.manual_seed|np\.random\.seed|random\.seed|torch\.cuda\.manual_seed\w*)\(")


def _read(nb_or_path):
    if isinstance(nb_or_path, (str, Path)):
        return nbformat.read(str(nb_or_path), as_version=4)
    return nb_or_path


def _where(i, cell) -> str:
    first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
    return f"cell {i} ({first[:60]!r})"


def code_cell_lengths(nb_or_path) -> list[int]:
    """Lines of every code cell but the parameters cell (and papermill's injected one), blank lines included."""
    skip = {"parameters", "injected-parameters"}
    return [len(c.source.rstrip().splitlines()) for c in _read(nb_or_path).cells
            if c.cell_type == "code" and not skip & set(c.metadata.get("tags", []))]


def committed_problems(nb_or_path, max_lines: int = MAX_LINES) -> list[str]:
    """What is wrong with a committed lecture (empty list: nothing)."""
    nb = _read(nb_or_path)
    problems = []
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if not code or "parameters" not in code[0][1].metadata.get("tags", []) or code[0][1].source.strip() != PARAMETERS:
        problems.append(f"the first code cell must be tagged 'parameters' and hold exactly {PARAMETERS!r}")
    for i, c in code:
        if c.get("outputs") or c.get("execution_count") is not None:
            problems.append(f"{_where(i, c)} has outputs: clear them before committing")
        if "import *" in c.source:
            problems.append(f"{_where(i, c)} uses a star import")
        if "cuda" in c.source:
            problems.append(f"{_where(i, c)} names CUDA: pass device=device (the parameters cell decides)")
        if SEEDING.search(c.source):
            problems.append(f"{_where(i, c)} seeds directly: seed only through config.seed_everything(seed)")
        n = len(c.source.rstrip().splitlines())
        if i != code[0][0] and n > max_lines:
            problems.append(f"{_where(i, c)} has {n} lines (at most {max_lines}: move code into the package)")
        for chunk in re.split(r"\bfit\(", c.source)[1:]:  # every training call passes the parameters
            call = chunk.split("\n\n")[0]
            if not all(p in call for p in ("quick=quick", "seed=seed", "device=device")):
                problems.append(f"{_where(i, c)}: a fit(...) call does not pass quick=quick, seed=seed, device=device")
    return problems


def executed_problems(nb_or_path, min_figures: int = 1) -> list[str]:
    """What the reader of an executed lecture would see and was not meant to, or would miss: fewer than
    ``min_figures`` figures (empty list: nothing)."""
    nb = _read(nb_or_path)
    problems = []
    figures = sum("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))
    if figures < min_figures:
        problems.append(f"the executed lecture shows {figures} figures (at least {min_figures} expected): "
                        "execute it with notebook.execute(..., env=INLINE) so that figures are kept")
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        for out in c.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                problems.append(f"{_where(i, c)} raised {out.get('ename')}: {out.get('evalue')}")
                continue
            text = out.get("text", "") if kind == "stream" else out.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if kind == "execute_result" and DEFAULT_REPR.search(text):
                problems.append(f"{_where(i, c)} shows a default repr {DEFAULT_REPR.search(text).group()}: "
                                "assign the value or end the line with ';'")
            if NUMPY_SCALAR.search(text):
                problems.append(f"{_where(i, c)} dumps numpy scalars ({NUMPY_SCALAR.search(text).group()}...): "
                                "show a figure or a formatted line instead")
            if kind == "execute_result" and text.startswith("<Figure"):  # a second copy, or '<Figure ...>' under Agg
                problems.append(f"{_where(i, c)} shows its figure twice (the last expression returns it): "
                                "end it with ';'")
            if re.search(r"<Figure size [^>]* with 0 Axes>", text):
                problems.append(f"{_where(i, c)} shows an empty figure")
    return problems


def check_committed_lecture(nb_or_path, max_lines: int = MAX_LINES) -> None:
    problems = committed_problems(nb_or_path, max_lines)
    assert not problems, "the committed lecture breaks the notebook conventions:\n- " + "\n- ".join(problems)


def check_executed_lecture(nb_or_path, min_figures: int = 1) -> None:
    problems = executed_problems(nb_or_path, min_figures)
    assert not problems, "the executed lecture shows what it should not:\n- " + "\n- ".join(problems)


def export_figures(nb_or_path, out_dir) -> list[Path]:
    """Write every PNG the executed notebook shows to ``out_dir`` as cellNN_K.png (to look at them)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, c in enumerate(_read(nb_or_path).cells):
        k = 0
        for out in c.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                path = out_dir / f"cell{i:02d}_{k}.png"
                path.write_bytes(base64.b64decode("".join(png) if isinstance(png, list) else png))
                paths.append(path)
                k += 1
    return paths
