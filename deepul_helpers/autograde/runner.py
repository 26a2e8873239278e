"""The code that runs inside the sandbox: ``python -I -m deepul_helpers.autograde.runner SPEC``.

It starts as root in fresh namespaces (see ``sandbox.py``), reads its spec and the verdict module
while it still can, hides the private paths, drops to the sandbox user, sets resource limits and
only then touches student code. Two modes:

- ``verdict``: run the setup cell, then the student's solution cells (imports, defs, classes and
  assignments only), then each question's probe in a forked child with its own time limit; each
  probe's output is written as JSON + ``.npz`` (no pickle). An audit hook (which cannot be
  removed) reports every import of a forbidden module and every open of its source to a pipe
  the grader reads as it happens.
- ``notebook``: execute the prepared feedback notebook with a kernel, outputs capped, saving the
  notebook after each cell so that a kill still leaves the cells that ran.

Nothing this process writes is trusted by the grader.
"""

from __future__ import annotations

import builtins
import ctypes
import json
import os
import resource
import signal
import sys
import time

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC = 1, 2, 4, 4096, 16384
BUILTIN_ERRORS = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    enc = lambda s: None if s is None else s.encode()
    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, req)[:18])[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))  # SIOCSIFFLAGS, IFF_UP


def _blocking_ancestor(path: str) -> str | None:
    """The highest folder on the way to ``path`` that other users cannot enter (e.g. /root)."""
    parts = os.path.realpath(path).split(os.sep)[1:]
    for i in range(1, len(parts) + 1):
        p = os.sep + os.path.join(*parts[:i])
        if not os.stat(p).st_mode & 0o001:
            return p
    return None


def expose(paths: list[str]) -> None:
    """Make ``paths`` (the Python installation, the package) reachable by the sandbox user when
    one of their ancestors is private: an empty tmpfs replaces the private ancestor and only
    ``paths`` are bound back into it (the rest of it stays hidden)."""
    blocked: dict[str, list[str]] = {}
    for p in paths:
        anc = _blocking_ancestor(p)
        if anc is not None:
            blocked.setdefault(anc, []).append(os.path.realpath(p))
    for anc, inner in blocked.items():
        fds = [(p, os.open(p, os.O_RDONLY | os.O_DIRECTORY)) for p in inner]
        _mount("tmpfs", anc, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=755")
        for p, fd in fds:
            os.makedirs(p, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", p, None, MS_BIND | MS_REC, None)
            os.close(fd)


def isolate(spec: dict) -> str:
    """Namespaces only: hide private paths, give /tmp to this submission. Returns the new workdir."""
    workdir = spec["workdir"]
    _loopback_up()
    fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    expose(spec.get("expose", []))
    for path in spec["hide"]:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=000")
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND, None)
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    if spec.get("hide_tmp", True):
        # Runtime paths under /tmp (a course checkout or venv cloned there) are bound back into
        # the new /tmp, read through descriptors opened before it is covered; the rest stays hidden.
        keep = [(p, os.open(p, os.O_RDONLY | os.O_DIRECTORY))
                for p in sorted({os.path.realpath(x) for x in spec.get("expose", [])})
                if p.startswith("/tmp/") and os.path.isdir(p)]
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=755")
        os.mkdir("/tmp/sandbox", 0o700)
        _mount(f"/proc/self/fd/{fd}", "/tmp/sandbox", None, MS_BIND | MS_REC, None)
        for p, kfd in keep:
            os.makedirs(p, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{kfd}", p, None, MS_BIND | MS_REC, None)
            os.close(kfd)
        workdir = "/tmp/sandbox"
    os.close(fd)
    return workdir


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS


def set_limits(limits: dict) -> None:
    mb = 2**20
    for res, value in ((resource.RLIMIT_AS, limits["memory_mb"] * mb), (resource.RLIMIT_CPU, limits["cpu_s"]),
                       (resource.RLIMIT_FSIZE, limits["file_mb"] * mb), (resource.RLIMIT_NPROC, limits["nproc"]),
                       (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (value, value))


def set_env(workdir: str, uid: int | None) -> None:
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
    os.environ.clear()
    os.environ.update(keep)
    name = f"sandbox{uid}" if uid is not None else os.environ.get("USER", "student")
    os.environ.update({
        "HOME": f"{workdir}/home", "TMPDIR": f"{workdir}/tmp", "USER": name, "LOGNAME": name,
        "MPLCONFIGDIR": f"{workdir}/home/.mpl", "MPLBACKEND": "Agg", "XDG_CACHE_HOME": f"{workdir}/home/.cache",
        "JUPYTER_RUNTIME_DIR": f"{workdir}/home/.jupyter", "IPYTHONDIR": f"{workdir}/home/.ipython",
        "JUPYTER_PLATFORM_DIRS": "1", "DEEPUL_QUICK": "1", "NBGRADER_EXECUTION": "autograde",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
    })
    os.chdir(workdir)


# ----------------------------------------------------------------------------- verdict mode


def _forbidden_paths(modules: list[str]) -> list[str]:
    """Path prefixes of the forbidden modules' code, found without importing them: a package's
    folder (``.../pkg/``), a module's source (``.../mod.py``) and its bytecode
    (``.../__pycache__/mod.``)."""
    import importlib.util

    paths = []
    for mod in modules:
        top, *rest = mod.split(".")
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            continue
        for base in spec.submodule_search_locations:
            stem = os.path.realpath(os.path.join(base, *rest))
            if os.path.isdir(stem):
                paths.append(stem + os.sep)
            elif os.path.exists(stem + ".py"):
                head, name = os.path.split(stem)
                paths += [stem + ".py", os.path.join(head, "__pycache__", name + ".")]
    return paths


def install_audit_hook(fd: int, modules: list[str], paths: list[str]) -> None:
    """Report imports of ``modules`` and opens under ``paths`` to ``fd`` (append-only, immediate)."""
    write, realpath, fspath = os.write, os.path.realpath, os.fspath
    prefixes = tuple(m + "." for m in modules)
    mods, roots = frozenset(modules), tuple(paths)

    def hook(event, args):
        if event == "import":
            name = args[0]
            if isinstance(name, str) and (name in mods or name.startswith(prefixes)):
                write(fd, f"I {name}\n".encode())
        elif event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            try:
                p = realpath(fspath(args[0]))
                p = p.decode() if isinstance(p, bytes) else p
            except Exception:
                return
            if p.startswith(roots):
                write(fd, f"O {p}\n".encode())

    sys.addaudithook(hook)


def run_verdict(spec: dict, verdict_source: str, workdir: str) -> None:
    import ast
    import types

    fd = spec["event_fd"]
    modules = sorted({m for q in spec["questions"] for m in q["forbidden"]})
    install_audit_hook(fd, modules, _forbidden_paths(modules))
    results: dict[str, dict] = {}
    ns = {"__name__": "__main__", "__builtins__": builtins, **spec["parameters"]}
    exec(compile(spec["setup_source"], "<setup cell>", "exec"), ns)
    verdict = types.ModuleType("deepul_verdict")
    verdict.__file__ = "<verdict>"
    sys.modules["deepul_verdict"] = verdict
    exec(compile(verdict_source, "<verdict>", "exec"), verdict.__dict__)
    questions = {q.grade_id: q for q in verdict.QUESTIONS}
    _forget(modules)
    os.write(fd, b"S\n")  # from here on, every forbidden import counts against the student
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
    os.write(fd, b"E\n")  # the grader treats a stream without this last line as tampered with


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


# ----------------------------------------------------------------------------- notebook mode


def run_notebook(spec: dict, workdir: str) -> None:
    import nbformat
    from nbclient import NotebookClient

    cap = spec["output_cap"]
    path_in, path_out = f"{workdir}/{spec['notebook']}", f"{workdir}/executed.ipynb"
    nb = nbformat.read(path_in, as_version=4)

    class CappedClient(NotebookClient):
        used = 0

        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {})))
            CappedClient.used += size
            if CappedClient.used > cap:
                if not any(o.get("name") == "grader" for o in outs):
                    outs.append(nbformat.v4.new_output("stream", name="grader",
                                                       text="[output cut: the notebook printed too much]\n"))
                return None
            return super().output(outs, msg, display_id, cell_index)

    def save(**_):
        nbformat.write(nb, path_out)

    client = CappedClient(nb, timeout=spec["cell_timeout"], kernel_name="python3", allow_errors=True,
                          interrupt_on_timeout=True, record_timing=False, on_cell_executed=save,
                          resources={"metadata": {"path": workdir}})
    try:
        client.execute()
    finally:
        save()


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        spec = json.load(f)
    verdict_source = None
    if spec["mode"] == "verdict":
        with open(spec["verdict_path"]) as f:
            verdict_source = f.read()
    workdir = isolate(spec) if spec.get("namespaces") else spec["workdir"]
    if spec.get("uid") is not None:
        drop_privileges(spec["uid"])
    set_limits(spec["limits"])
    set_env(workdir, spec.get("uid"))
    if spec["mode"] == "verdict":
        run_verdict(spec, verdict_source, workdir)
    else:
        run_notebook(spec, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
