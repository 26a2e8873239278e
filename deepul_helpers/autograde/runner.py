"""The code that runs inside the sandbox: ``python -I -m deepul_helpers.autograde.runner SPEC``.

It reads its spec and the verdict module while it still can, enters the isolation (``isolation.py``:
mounts, sandbox user, limits, environment) and only then touches student code. Two runs:

- ``verdict``: run the setup cell, then the student's solution cells (imports, defs, classes and
  assignments only), then each question's probe in a forked child with its own time limit; each
  probe's output is written as JSON + ``.npz`` (no pickle, ``transport.py``). An audit hook
  (``audit.py``, which cannot be removed) reports every import of a forbidden module and every
  open of its source to a pipe the grader reads as it happens.
- ``notebook``: execute the prepared feedback notebook with the course's notebook executor
  (``deepul_helpers.notebook.run``: quick-mode parameters, per-cell limit, outputs capped,
  saved after each cell so that a kill still leaves the cells that ran).

Nothing this process writes is trusted by the grader. (The trusted halves of both runs are in
``runs.py``.)
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import sys
import time

from deepul_helpers.autograde import audit, isolation

BUILTIN_ERRORS = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}


# ----------------------------------------------------------------------------- verdict run


def run_verdict(spec: dict, verdict_source: str, workdir: str) -> None:
    import ast
    import types

    fd = spec["event_fd"]
    modules = sorted({m for q in spec["questions"] for m in q["forbidden"]})
    audit.install_hook(fd, modules, audit.forbidden_paths(modules))
    results: dict[str, dict] = {}
    ns = {"__name__": "__main__", "__builtins__": builtins, **spec["parameters"]}
    exec(compile(spec["setup_source"], "<setup cell>", "exec"), ns)
    verdict = types.ModuleType("deepul_verdict")
    verdict.__file__ = "<verdict>"
    sys.modules["deepul_verdict"] = verdict
    exec(compile(verdict_source, "<verdict>", "exec"), verdict.__dict__)
    questions = {q.grade_id: q for q in verdict.QUESTIONS}
    _forget(modules)
    audit.send(fd, audit.START)  # from here on, every forbidden import counts against the student
    compiled = []
    for label, src in spec["cells"]:
        try:
            tree = compile(src, f"<{label}>", "exec", dont_inherit=True, flags=0x400)  # PyCF_ONLY_AST
        except (SyntaxError, ValueError):
            continue
        compiled += [(label, stmt) for stmt in tree.body]
    load_errors: dict[str, str] = {}
    for label, stmt in compiled:
        code = compile(ast.Module(body=[stmt], type_ignores=[]), f"<{label}>", "exec")
        try:
            exec(code, ns)
        except BaseException as e:  # noqa: B902 - student code may raise anything, SystemExit included
            load_errors.setdefault(label, _error_name(e))
    json_write(f"{workdir}/probe/load.json", {"load_errors": load_errors})
    for q in spec["questions"]:
        gid = q["grade_id"]
        missing = [n for n in q["requires"] if n not in ns]
        if missing:
            results[gid] = {"status": "missing", "missing": missing}
        else:
            results[gid] = _run_probe(questions[gid].probe, ns, spec["seed"], gid, q["timeout_s"], workdir)
        json_write(f"{workdir}/probe/results.json", results)
    audit.send(fd, audit.END)  # the grader treats a channel without this last event as tampered with


def _forget(modules: list[str]) -> None:
    """Drop the forbidden modules (and the packages between them and their top-level package,
    which may re-export them) from ``sys.modules``, so that student code reaching for them goes
    through an import again, which the audit hook sees."""
    parents = {".".join(m.split(".")[:i]) for m in modules for i in range(2, len(m.split(".")))}
    for name in sorted(sys.modules, reverse=True):
        if name in parents or any(name == m or name.startswith(m + ".") for m in modules):
            mod = sys.modules.pop(name)
            parent, _, child = name.rpartition(".")
            if parent in sys.modules and getattr(sys.modules[parent], child, None) is mod:
                delattr(sys.modules[parent], child)


def _error_name(e: BaseException) -> str:
    """The exception's builtin class name only (a student-chosen message could carry hidden data)."""
    for cls in type(e).__mro__:
        if cls.__name__ in BUILTIN_ERRORS and cls.__module__ == "builtins":
            return cls.__name__
    return "Exception"


def _run_probe(probe, ns, seed, gid, timeout_s, workdir) -> dict:
    from deepul_helpers.autograde import transport

    start = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child: run the probe, write its output, leave without cleanup handlers
        code = 0
        try:
            out = probe(ns, seed)
            transport.dump(out, f"{workdir}/probe", gid)
        except transport.TransportError as e:
            json_write(f"{workdir}/probe/{gid}.error.json", {"error": "BadOutput", "detail": str(e)[:200]})
            code = 4
        except BaseException as e:  # noqa: B902
            json_write(f"{workdir}/probe/{gid}.error.json", {"error": _error_name(e)})
            code = 3
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > timeout_s:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"status": "timeout", "seconds": round(time.monotonic() - start, 1)}
        time.sleep(0.02)
    seconds = round(time.monotonic() - start, 2)
    if os.WIFSIGNALED(status):
        return {"status": "crash", "signal": signal.Signals(os.WTERMSIG(status)).name, "seconds": seconds}
    code = os.WEXITSTATUS(status)
    return {"status": "ok" if code == 0 else "error" if code in (3, 4) else "crash",
            "exit": code, "seconds": seconds}


def json_write(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- notebook run


def run_notebook(spec: dict, workdir: str) -> None:
    import nbformat

    from deepul_helpers.notebook import run

    nb = nbformat.read(f"{workdir}/{spec['notebook']}", as_version=4)
    if spec.get("plots"):  # the homework kit's plots (kit.output_dir) go inside this private folder
        os.environ["DEEPUL_OUT"] = os.path.join(workdir, spec["plots"])
    run(nb, cwd=workdir, cell_timeout=spec["cell_timeout"], parameters=spec["parameters"],
        output_cap=spec["output_cap"], save_to=f"{workdir}/executed.ipynb")


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        spec = json.load(f)
    verdict_source = None
    if spec["mode"] == "verdict":
        with open(spec["verdict_path"]) as f:  # before the verdicts' folder is hidden
            verdict_source = f.read()
    workdir = isolation.enter(spec)
    if spec["mode"] == "verdict":
        run_verdict(spec, verdict_source, workdir)
    else:
        run_notebook(spec, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
