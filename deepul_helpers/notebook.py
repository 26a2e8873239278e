"""Running notebooks, and handing results from a notebook to whoever runs it.

``record(name, value)``: a notebook hands a number (or list, array) to whoever executes it.
When the environment names a file in ``DEEPUL_RECORD``, the value is merged into that JSON
file; otherwise nothing is written. The value is returned unchanged.

``execute(path, ...)``: runs a notebook in quick mode and returns the executed copy's path
and everything it recorded (tests of lectures and homework).

``run(nb, ...)``: the one notebook executor under ``execute``, ``deepul validate`` and the
grader's feedback run: papermill's parameter injection, then nbgrader's ``ClearOutput`` and
``Execute`` preprocessors (a per-cell limit, the cell interrupted when it runs past it), with
the outputs capped and the notebook saved after every cell.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

RECORD_ENV = "DEEPUL_RECORD"


def _plain(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def record(name: str, value):
    """Record ``value`` under ``name`` for the process executing this notebook (see module doc)."""
    path = os.environ.get(RECORD_ENV)
    if path:
        p = Path(path)
        data = json.loads(p.read_text()) if p.exists() and p.stat().st_size else {}
        data[name] = _plain(value)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, p)
    return value


def _ensure_tags(nb) -> None:
    for cell in nb.cells:  # papermill looks for the parameters tag on every cell
        cell.setdefault("metadata", {})
        if not isinstance(cell["metadata"].get("tags"), list):
            cell["metadata"]["tags"] = []


def run(nb, *, cwd, cell_timeout: float, parameters: dict | None = None, allow_errors: bool = True,
        output_cap: int | None = None, save_to=None):
    """Execute ``nb`` (a NotebookNode, changed in place) with a ``python3`` kernel in ``cwd``.

    ``parameters`` are injected after the cell tagged ``parameters`` (as papermill does);
    ``cell_timeout`` seconds per cell, then the cell is interrupted and gets a ``CellTimeoutError``
    output; ``allow_errors=False`` raises nbclient's ``CellExecutionError`` (it names the cell and
    the error) at the first failing cell; ``output_cap`` bytes of output in all, then outputs are
    dropped with a note; ``save_to``: the notebook is written there before the first cell, after
    every cell and at the end, also when the kernel dies (``DeadKernelError`` is raised) or the
    process is killed. Each cell that ran carries nbclient's timing in ``metadata.execution``
    (a cell without ``shell.execute_reply`` there never finished). Returns the executed notebook.
    """
    import math

    import nbformat
    from nbgrader.preprocessors import ClearOutput, Execute

    _ensure_tags(nb)
    if parameters:
        from papermill.parameterize import parameterize_notebook

        nb.metadata.setdefault("papermill", {})
        nb.cells = parameterize_notebook(nb, parameters, kernel_name="python3", language="python").cells
    ClearOutput(remove_metadata_fields={"collapsed", "scrolled", "execution"}).preprocess(nb, {})
    seconds = max(1, math.ceil(cell_timeout))

    def save() -> None:
        if save_to is not None:
            nbformat.write(nb, str(save_to))

    class CappedExecute(Execute):
        used = 0

        def output(self, outs, msg, display_id, cell_index):
            if output_cap is not None:
                self.used += len(json.dumps(msg.get("content", {})))
                if self.used > output_cap:
                    if not any(o.get("name") == "grader" for o in outs):
                        outs.append(nbformat.v4.new_output("stream", name="grader",
                                                           text="[output cut: the notebook printed too much]\n"))
                    return None
            return super().output(outs, msg, display_id, cell_index)

        def on_cell_executed(self, **kwargs):
            super().on_cell_executed(**kwargs)
            save()

    executor = CappedExecute(timeout=seconds, allow_errors=allow_errors, interrupt_on_timeout=True,
                             kernel_name="python3", record_timing=True,
                             error_on_timeout={"ename": "CellTimeoutError", "traceback": [],
                                               "evalue": f"the cell ran longer than {seconds} s and was interrupted"})
    save()
    try:
        executor.preprocess(nb, {"metadata": {"path": str(cwd)}})
    finally:
        save()
    return nb


def execute(path, *, parameters: dict | None = None, out_dir=None, timeout: int = 600,
            env: dict | None = None, quick: bool = True, cwd=None) -> tuple[Path, dict]:
    """Execute the notebook at ``path`` with :func:`run`; return (executed path, records).

    ``quick=True`` injects ``quick=True`` into the ``parameters`` cell and sets
    ``DEEPUL_QUICK=1``. The executed copy goes to ``out_dir`` (default: a temporary folder).
    ``timeout`` is the per-cell limit in seconds. Raises nbclient's ``CellExecutionError``, which
    names the failing cell and its error, when a cell fails.
    """
    import nbformat

    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"no notebook at {path}")
    out_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="deepul-nb-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / path.name
    record_path = out_dir / (path.stem + ".records.json")
    if record_path.exists():
        record_path.unlink()
    params = dict(parameters or {})
    if quick:
        params.setdefault("quick", True)
    saved = {k: os.environ.get(k) for k in [RECORD_ENV, "DEEPUL_QUICK", "MPLBACKEND", *(env or {})]}
    os.environ[RECORD_ENV] = str(record_path)
    os.environ["MPLBACKEND"] = "Agg"
    if quick:
        os.environ["DEEPUL_QUICK"] = "1"
    os.environ.update(env or {})
    try:
        run(nbformat.read(path, as_version=4), cwd=cwd if cwd is not None else path.parent, cell_timeout=timeout,
            parameters=params, allow_errors=False, save_to=out_path)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    records = json.loads(record_path.read_text()) if record_path.exists() else {}
    return out_path, records
