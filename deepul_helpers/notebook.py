"""Notebooks and tests talk through two functions.

``record(name, value)``: a notebook hands a number (or list, array) to whoever executes it.
When the environment names a file in ``DEEPUL_RECORD``, the value is merged into that JSON
file; otherwise nothing is written. The value is returned unchanged.

``execute(path, ...)``: runs a notebook with papermill in quick mode and returns the
executed copy's path and everything it recorded.
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


def execute(path, *, parameters: dict | None = None, out_dir=None, timeout: int = 600,
            env: dict | None = None, quick: bool = True, cwd=None) -> tuple[Path, dict]:
    """Execute the notebook at ``path`` with papermill; return (executed path, records).

    ``quick=True`` injects ``quick=True`` into the ``parameters`` cell and sets
    ``DEEPUL_QUICK=1``. The executed copy goes to ``out_dir`` (default: a temporary folder).
    ``timeout`` is the per-cell limit in seconds. Raises papermill's execution error, which
    names the failing cell, when a cell fails.
    """
    import papermill as pm

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
        pm.execute_notebook(
            str(path), str(out_path), parameters=params, kernel_name="python3",
            cwd=str(cwd) if cwd is not None else str(path.parent), execution_timeout=timeout,
            progress_bar=False, log_output=False,
        )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    records = json.loads(record_path.read_text()) if record_path.exists() else {}
    return out_path, records
