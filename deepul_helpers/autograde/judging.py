"""Turning what the sandbox sent back into points (trusted side), and the review of the
notebook's own claims. :func:`score` and :func:`review_claims` are stages of ``pipeline.STAGES``.

- forbidden use: the static import scan of the solution code and the audit events (``audit.py``);
- per question: the probe's status, the plain data it returned (``transport.py``), and the
  verdict module's ``judge``, which recomputes the expected values with the reference code.
"""

from __future__ import annotations

import math
import traceback
from pathlib import Path

from deepul_helpers.autograde import audit, cells, transport
from deepul_helpers.autograde.student import Grading


def forbidden_hit(q, code: cells.StudentCode, events: list[audit.Event], tampered: bool) -> str | None:
    """Why question ``q`` scores 0 for using a module it forbids (None: it did not)."""
    for mod in sorted(code.imports):
        for f in q.forbidden:
            if audit.module_matches(mod, f):
                return f"your solution imports {mod}"
    used = audit.forbidden_use(events, q.forbidden) if q.forbidden else None
    if used:
        return used
    if tampered and q.forbidden:
        return "the grader's record of imports was interfered with"
    return None


def score(g: Grading) -> None:
    """Each question's points: 0 and flagged for a forbidden module, else what its judge gives."""
    res, probe, limit = g.result, g.probe, g.ctx.limits.timeout_s
    for q in g.verdict.QUESTIONS:
        hit = forbidden_hit(q, g.code, probe.run.events, probe.tampered)
        if hit:
            res.scores[q.grade_id] = 0.0
            res.review.append(q.grade_id)
            res.status = "flagged"
            res.question_messages[q.grade_id].append(
                f"{hit}: the reference implementation of what this question asks for; 0 points, "
                "flagged for the instructor")
            continue
        st = probe.results.get(q.grade_id)
        if st is None and probe.run.timed_out:
            points, msgs = 0.0, [f"not checked: grading stopped at the time limit ({limit:g} s)"]
        else:
            points, msgs = question_result(q, st, probe.probe_dir, int(g.verdict.HIDDEN_SEED), g.log)
        res.scores[q.grade_id] = points
        res.question_messages[q.grade_id] += msgs


def review_claims(g: Grading) -> None:
    """A test cell that passed in the feedback run while the judge gave less is marked for review."""
    if g.executed is None:
        return
    res, tests = g.result, g.source.tests
    res.claims = cells.passed_tests(g.executed, tests)
    for gid, passed in res.claims.items():
        if passed and tests[gid] > res.scores.get(gid, 0.0) + 1e-9:
            if gid not in res.review:
                res.review.append(gid)
            res.question_messages.setdefault(gid, []).append(
                f"the notebook's own test {gid} passed, but the grader's tests gave "
                f"{res.scores.get(gid, 0.0):g}/{tests[gid]:g}: marked for review")


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
        err = transport.read_json(probe_dir / f"{q.grade_id}.error.json") or {}
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
