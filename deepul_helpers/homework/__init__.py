"""Per-homework runners: load the data, run the student's function, plot, and print the
result next to the expected one. One module per homework (``hw1``, ``hw2``, ...)."""

from __future__ import annotations

import os
from pathlib import Path


def output_dir(homework: str, out=None) -> Path:
    """Where a homework's plots go (created): ``out`` if given, else ``$DEEPUL_OUT/<homework>``,
    else ``out/<homework>`` beside the course's ``homeworks/`` folder when the package is used
    from the course repository, else ``~/deepul_out/<homework>``."""
    if out is not None:
        path = Path(out)
    elif os.environ.get("DEEPUL_OUT"):
        path = Path(os.environ["DEEPUL_OUT"]) / homework
    else:
        root = Path(__file__).resolve().parents[2]
        base = root / "out" if (root / "homeworks").is_dir() else Path.home() / "deepul_out"
        path = base / homework
    path.mkdir(parents=True, exist_ok=True)
    return path
