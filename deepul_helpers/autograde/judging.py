"""Turning what the sandbox sent back into points (trusted side): forbidden-module hits from the
static scan and the audit events, per-question statuses, and the verdict's ``judge``."""

from __future__ import annotations

import math
import traceback
from pathlib import Path

from deepul_helpers.autograde import cells as nbcells
from deepul_helpers.autograde import transport


def read_json(path: Path, cap: int = 1 << 20):
    import json

    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > cap:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


def forbidden_hit(q, code: nbcells.StudentCode, events: list[str], tampered: bool) -> str | None:
    from deepul_helpers.autograde.runner import _forbidden_paths

    for mod in sorted(code.imports):
        for f in q.forbidden:
            if nbcells.module_matches(mod, f):
                return f"your solution imports {mod}"
    paths = tuple(_forbidden_paths(list(q.forbidden)))
    started = False
    for line in events:
        if line == "S":
            started = True
        elif started and line.startswith("I ") and any(nbcells.module_matches(line[2:], f) for f in q.forbidden):
            return f"your code imported {line[2:]}"
        elif started and line.startswith("O ") and paths and line[2:].startswith(paths):
            return "your code read the source of " + ", ".join(q.forbidden)
    if tampered and q.forbidden:
        return "the grader's record of imports was interfered with"
    return None


def question_result(q, st, probe_dir: Path, seed: int, log: list[str]) -> tuple[float, list[str]]:
    if not isinstance(st, dict):
        return 0.0, ["not checked: the grading process ended before this question"]
    status = st.get("status")
    if status == "missing":
        names = [n for n in st.get("missing", []) if isinstance(n, str)][:10]
        return 0.0, [f"not defined by your solution cells: {', '.join(names)}"]
    if status == "timeout":
        return 0.0, [f"your code did not finish within {q.timeout_s:g} s"]
    if status == "crash":
        sig = st.get("signal") if isinstance(st.get("signal"), str) else None
        return 0.0, ["your code crashed the process" + (f" ({sig[:20]})" if sig else "")
                     + "; a memory limit or os._exit/sys.exit can cause this"]
    if status == "error":
        err = read_json(probe_dir / f"{q.grade_id}.error.json") or {}
        name = err.get("error") if isinstance(err.get("error"), str) else "Exception"
        if name == "BadOutput":
            log.append(f"{q.grade_id}: probe output rejected: {err.get('detail')}")
            return 0.0, ["your function returned something other than the documented numbers/arrays"]
        return 0.0, [f"your code raised {name[:40]} on the grader's inputs"]
    if status != "ok":
        return 0.0, ["not checked: the grading process reported nothing usable"]
    try:
        out = transport.load(probe_dir, q.grade_id)
    except transport.TransportError as e:
        log.append(f"{q.grade_id}: transport: {e}")
        return 0.0, ["your function returned something other than the documented numbers/arrays"]
    try:
        points, messages = q.judge(out, seed)
    except Exception:
        log.append(f"{q.grade_id}: judge raised:\n{traceback.format_exc()}")
        return 0.0, ["your output could not be checked: it does not have the documented form"]
    try:
        points = float(points)
    except (TypeError, ValueError):
        points = 0.0
    if not math.isfinite(points):
        points = 0.0
    messages = [messages] if isinstance(messages, str) else [str(m) for m in (messages or [])]
    return min(max(points, 0.0), float(q.points)), messages
