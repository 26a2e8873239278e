"""The trusted halves of a submission's two sandboxed runs (their untrusted halves are ``runner.py``'s).

- :func:`prepare_sandbox`: the submission's private working folder and user id;
- :func:`verdict_run`: setup cell + solution cells + each question's probe; what comes back is
  the probes' plain data (``transport.py``), their statuses, and the audit events (``audit.py``);
- :func:`feedback_run`: the whole notebook, locked cells restored, in quick mode; what comes back
  is the executed copy for the feedback page.

Each is a stage of ``pipeline.STAGES``.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

from deepul_helpers.autograde import audit, cells, isolation, sandbox
from deepul_helpers.autograde.student import Grading, VerdictRun
from deepul_helpers.autograde.transport import read_json


class SandboxFailed(RuntimeError):
    """The verdict run ended before any student code ran (the sandbox did not start, or the course's own
    setup cell or verdict failed): the grader's failure, never the student's: the submission is reported
    as ``grader-error`` to be graded again, not scored 0."""


FEEDBACK_OUTPUT_CAP = 5 * 2**20  # bytes of output the feedback run keeps
MAX_EXECUTED_BYTES = 64 * 2**20  # a larger executed notebook is not read back


def prepare_sandbox(g: Grading) -> None:
    control, work = g.box / "control", g.box / "work"
    control.mkdir(mode=0o700)
    work.mkdir()
    uid = isolation.UID_BASE + g.ctx.uid_offset + g.index
    isolation.prepare_workdir(work, uid if isolation.capabilities().switch_user else None)
    g.spec = {"workdir": str(work), "hide": list(g.ctx.hide), "hide_tmp": g.ctx.hide_tmp, "uid": uid,
              "expose": isolation.runtime_paths()}


def verdict_run(g: Grading) -> None:
    ctx, verdict = g.ctx, g.verdict
    questions = verdict.QUESTIONS
    spec = dict(g.spec, mode="verdict", verdict_path=ctx.verdict_path, seed=int(verdict.HIDDEN_SEED),
                setup_source=g.source.setup_source, parameters=cells.PARAMETERS, cells=g.code.cells,
                questions=[{"grade_id": q.grade_id, "requires": list(q.requires), "forbidden": list(q.forbidden),
                            "timeout_s": min(float(q.timeout_s), ctx.limits.timeout_s)} for q in questions])
    run = sandbox.run(spec, g.box / "control", ctx.limits, event_pipe=True)
    g.log += ["--- verdict run: " + run.describe() + f" after {run.wall_s:.1f} s", run.output,
              *(e.line for e in run.events)]
    probe_dir = Path(g.spec["workdir"]) / "probe"
    results = read_json(probe_dir / "results.json") or {}
    loaded = read_json(probe_dir / "load.json")
    if audit.START not in run.events and not run.events_cut:  # student code starts only after START
        raise SandboxFailed("the verdict run ended before any student code ran (" + run.describe() + "): "
                            "the sandbox or the course's setup failed; output: " + run.output.strip()[-300:])
    if loaded is None:
        g.result.messages.append("your solution cells could not be loaded: " + run.describe())
    else:
        for label, err in list((loaded.get("load_errors") or {}).items())[:10]:
            g.result.messages.append(f"{str(label)[:40]}: a top-level statement raised {str(err)[:40]} while loading")
    # A run that got through every question but whose channel did not end cleanly was interfered with
    # (e.g. its descriptors closed); only a submission writing to the channel itself can flood it.
    finished = not run.timed_out and loaded is not None and len(results) == len(questions)
    broken = audit.START in run.events and (run.returncode != 0 or not audit.completed(run.events))
    g.probe = VerdictRun(run, probe_dir, results, loaded, tampered=(broken and finished) or run.events_cut)


def feedback_run(g: Grading) -> None:
    if not g.ctx.run_notebook:
        return
    fb, messages = cells.feedback_notebook(g.nb, g.source)
    g.result.messages += messages
    work, name = Path(g.spec["workdir"]), "submission.ipynb"
    nbformat.write(fb, str(work / name))
    if isolation.capabilities().switch_user:
        os.chown(work / name, g.spec["uid"], g.spec["uid"])
    spec = dict(g.spec, mode="notebook", notebook=name, parameters=cells.PARAMETERS,
                cell_timeout=g.ctx.cell_timeout_s, output_cap=FEEDBACK_OUTPUT_CAP,
                plots="plots")  # $DEEPUL_OUT inside the private work folder: the homework's plots land there
    run = sandbox.run(spec, g.box / "control", g.ctx.limits)
    g.log += ["--- notebook run: " + run.describe() + f" after {run.wall_s:.1f} s", run.output]
    path = work / "executed.ipynb"
    if path.is_file() and not path.is_symlink() and path.stat().st_size < MAX_EXECUTED_BYTES:
        try:
            g.executed = nbformat.read(str(path), as_version=4)
        except Exception:
            g.executed = None
    if run.timed_out:
        g.result.messages.append(f"the notebook did not finish within {g.ctx.limits.timeout_s:g} s; "
                                 "the feedback shows the cells that ran")
    elif run.returncode != 0:
        g.result.messages.append("the notebook run ended early (the kernel died or was stopped); "
                                 "the feedback shows the cells that ran")
