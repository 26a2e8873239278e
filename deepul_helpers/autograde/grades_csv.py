"""``grades.csv``: one row per student, rewritten atomically after each student."""

from __future__ import annotations

import csv
import os
from pathlib import Path


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def csv_header(question_ids: list[str]) -> list[str]:
    return ["student", *question_ids, "total", "max_total", "status", "message"]


def previous_rows(path: Path, question_ids: list[str]) -> dict[str, list[str]]:
    """Rows of an existing grades.csv with the same columns (kept for students not regraded now)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError:
        return {}
    if not rows or rows[0] != csv_header(question_ids):
        return {}
    return {row[0]: row for row in rows[1:] if row}


def write_csv(path: Path, results: list, question_ids: list[str],
              keep: dict[str, list[str]] | None = None) -> None:
    """``student, <question...>, total, max_total, status, message`` (atomically replaced); rows in
    ``keep`` (earlier runs) stay unless this run graded that student again."""
    rows = dict(keep or {})
    for r in results:
        msgs = list(r.messages) + [f"{g}: {m}" for g in question_ids for m in r.question_messages.get(g, [])]
        rows[r.student] = [r.student, *(f"{r.scores.get(g, 0.0):g}" for g in question_ids), f"{r.total:g}",
                           f"{r.max_total:g}", r.status, _cell(" | ".join(msgs))[:2000]]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(csv_header(question_ids))
        for student in sorted(rows):
            w.writerow(rows[student])
    os.replace(tmp, path)
