"""Linux isolation of a sandboxed run: namespaces, a user id of its own, resource limits, mounts, environment.

Both halves of the wall are here:

- in the trusted grader: what this machine allows (:func:`capabilities`), the command prefix that
  creates the walls (:func:`namespace_command`), the sandbox's user ids and its private working
  folder (:func:`prepare_workdir`);
- in the sandboxed process, before any student code: :func:`enter` sets the resource limits and a
  clean environment, and (root mode) hides the private paths under empty read-only mounts, gives
  the run a private ``/tmp`` holding only its working folder and drops to the sandbox user.

Three modes, chosen once per process (:func:`capabilities`):

- ``root``: util-linux ``unshare`` makes new network, mount and PID namespaces; the runner mounts
  and drops to a user id of its own per submission (no groups, no new privileges);
- ``bwrap`` (an ordinary user, or ``DEEPUL_SANDBOX=bwrap``): bubblewrap, unprivileged, makes new
  user, network, mount, PID, IPC and UTS namespaces; every mount is built on the trusted side
  (:func:`bwrap_command`) before the runner starts: the whole file system read-only, empty mounts
  over the private paths, over ``/tmp``, ``/var/tmp``, ``/run`` (sockets) and the grader's home
  (the runtime bound back read-only), the submission's folder as ``/tmp/sandbox``; the runner only
  sets limits and environment. Student code runs as the grader's uid, but sees nothing of the
  grader's that the root mode's sandbox user could not;
- ``degraded``: no walls but the limits, with a loud warning; only where neither works (or
  ``DEEPUL_SANDBOX=degraded``, for tests).
"""

from __future__ import annotations

import ctypes
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

UID_BASE = 200_000  # sandbox uids: UID_BASE + random run offset + submission index (no passwd entry)


@dataclass
class Capabilities:
    switch_user: bool
    namespaces: bool                # root mode: unshare + mounts inside the runner
    warnings: list[str] = field(default_factory=list)
    bwrap: bool = False             # bwrap mode: bubblewrap builds the walls before the runner starts

    @property
    def mode(self) -> str:
        return "root" if self.namespaces else "bwrap" if self.bwrap else "degraded"


def runtime_paths() -> list[str]:
    """Folders student code must read: the Python installation, the venv, the helper package."""
    package = Path(__file__).resolve().parents[1]
    return sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, package)})


def _others_can_read(path: str) -> bool:
    p = Path(os.path.realpath(path))
    return all(os.stat(a).st_mode & 0o001 for a in [*p.parents, p]) and bool(os.stat(p).st_mode & 0o004)


def _bwrap_problem() -> str | None:
    """Why bubblewrap cannot build an unprivileged sandbox here (None: it can)."""
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed (`apt-get install bubblewrap`)"
    try:
        probe = subprocess.run(["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
                                "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "true"],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bubblewrap failed to start: {e}"
    if probe.returncode != 0:
        return ("bubblewrap cannot create a user namespace here (" + probe.stderr.strip()[:200] + "); the kernel "
                "forbids unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
                "user.max_user_namespaces > 0, or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)")
    return None


DEGRADED = ("STUDENT CODE IS NOT ISOLATED: it runs as the grader's own user, can read and overwrite whatever "
            "that user can (solutions/, verdicts, the gradebook, other students' notebooks, your files) and "
            "can reach the network; only the resource and time limits hold. ")


@lru_cache(maxsize=1)
def capabilities() -> Capabilities:
    """What isolation this machine allows; each missing piece comes with a warning."""
    warn = []
    forced = os.environ.get("DEEPUL_SANDBOX")
    if forced == "degraded":  # to test (or force) the fallback
        return Capabilities(switch_user=False, namespaces=False,
                            warnings=["DEEPUL_SANDBOX=degraded: no user switch, no namespaces"])
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if forced == "bwrap" or not root:
        problem = _bwrap_problem()
        if problem is None:
            return Capabilities(switch_user=False, namespaces=False, bwrap=True)
        if not root:
            return Capabilities(switch_user=False, namespaces=False, warnings=[
                DEGRADED + problem + ". Fix that (or grade as root) before grading a real class."])
        warn.append(f"DEEPUL_SANDBOX=bwrap: {problem}; using the root sandbox")
    ns = False
    if shutil.which("unshare"):
        probe = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child",
                                "--mount-proc", "true"], capture_output=True)
        ns = probe.returncode == 0
    if not ns:
        warn.append("network/mount/PID namespaces are not available (needs Linux, root and util-linux "
                    "`unshare`): student code may reach the network and read files outside its folder "
                    "that the sandbox user can read")
    switch = True
    if not ns and not all(_others_can_read(p) for p in runtime_paths()):
        switch = False
        warn.append("the Python installation is not readable by other users and namespaces are missing: "
                    "student code runs as root")
    return Capabilities(switch_user=switch, namespaces=ns, warnings=warn)


def warn_once() -> None:
    caps = capabilities()
    for w in caps.warnings:
        warnings.warn("deepul autograde: " + w, stacklevel=2)
    if caps.mode == "degraded" and os.environ.get("DEEPUL_SANDBOX") != "degraded":
        bar = "!" * 100
        print(f"{bar}\ndeepul autograde: WARNING: {caps.warnings[-1]}\n{bar}", file=sys.stderr)


def run_offset() -> int:
    """A random offset for this run's sandbox uids, so that two grading runs on one machine differ."""
    return secrets.randbelow(1 << 20) * 1024


def prepare_workdir(path: Path, uid: int | None) -> None:
    """Make ``path`` (holding the submission copy) the sandbox user's private folder."""
    for sub in ("probe", "tmp", "home"):
        (path / sub).mkdir(exist_ok=True)
    if uid is not None:
        for p in [path, *path.rglob("*")]:
            os.lchown(p, uid, uid)
    os.chmod(path, 0o700)


SANDBOX_DIR = "/tmp/sandbox"   # the submission's folder, as the sandboxed process sees it
CARRIED_DIR = "/run/deepul"    # bwrap mode: the spec and the verdict, copied in read-only


def inside_spec(spec: dict) -> dict:
    """The spec as the runner must read it: in bwrap mode its folders are where bubblewrap puts them."""
    if not capabilities().bwrap:
        return spec
    inner = dict(spec, workdir=SANDBOX_DIR, namespaces=False, uid=None, hide=[], expose=[])
    if "verdict_path" in spec:
        inner["verdict_path"] = f"{CARRIED_DIR}/verdict.py"
    return inner


def namespace_command(cmd: list[str], spec: dict, spec_path: Path) -> tuple[list[str], list[int]]:
    """``cmd SPEC`` run behind the walls of this machine's mode, and the descriptors the command
    must inherit (the caller closes them once it has started). Root mode: new network, mount and
    PID namespaces (``unshare``); bwrap mode: :func:`bwrap_command`; the process tree dies with it."""
    caps = capabilities()
    if caps.bwrap:
        fds = [os.open(spec_path, os.O_RDONLY)]
        carried = {f"{CARRIED_DIR}/spec.json": fds[0]}
        if "verdict_path" in spec:
            fds.append(os.open(spec["verdict_path"], os.O_RDONLY))
            carried[f"{CARRIED_DIR}/verdict.py"] = fds[1]
        return bwrap_command([*cmd, f"{CARRIED_DIR}/spec.json"], spec, carried), fds
    if not caps.namespaces:
        return [*cmd, str(spec_path)], []
    return ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
            "--propagation", "private", "--", *cmd, str(spec_path)], []


@lru_cache(maxsize=1)
def _bwrap_help() -> str:
    return subprocess.run(["bwrap", "--help"], capture_output=True, text=True).stdout


def _under(path: str, folders) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def bwrap_command(cmd: list[str], spec: dict, carried: dict[str, int]) -> list[str]:
    """The bubblewrap command line for ``cmd`` (unprivileged): new user, network, mount, PID, IPC,
    UTS namespaces, no capabilities, a new session (no terminal injection), killed with its parent;
    the file system read-only; empty mounts over the grader's home, ``/tmp``, ``/var/tmp``, ``/run``
    and every path in ``spec["hide"]``; the runtime (``spec["expose"]``) bound back read-only where
    one of those covered it; the submission's folder writable at ``SANDBOX_DIR``; ``carried``
    (in-sandbox path -> descriptor) copied in read-only."""
    size = ["--size", str(64 << 20)] if "--size" in _bwrap_help() else []  # bubblewrap >= 0.7
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
            *(["--disable-userns"] if "--disable-userns" in _bwrap_help() else []),  # bubblewrap >= 0.8
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *size, "--tmpfs", "/dev/shm"]
    home = {os.path.realpath(h) for h in (os.path.expanduser("~"), os.environ.get("HOME") or "/") if h}
    covered = sorted({os.path.realpath(p) for p in ("/tmp", "/var/tmp", "/run", tempfile.gettempdir())}
                     | home - {"/"})
    covered = [c for c in covered if os.path.isdir(c) and not _under(c, [d for d in covered if d != c])]
    for c in covered:
        argv += [*size, "--tmpfs", c]
    expose = sorted({os.path.realpath(p) for p in spec.get("expose", [])})
    back = [p for p in expose if os.path.isdir(p) and _under(p, covered)]
    for p in back:
        argv += ["--ro-bind", p, p]
    argv += ["--bind", os.path.realpath(spec["workdir"]), SANDBOX_DIR]
    hide = sorted({os.path.realpath(p) for p in spec.get("hide", [])})
    for p in hide:
        if (_under(p, covered) and not _under(p, back)) or _under(p, [h for h in hide if h != p]):
            continue  # already under an empty mount
        if os.path.isdir(p):
            argv += ["--tmpfs", p, "--remount-ro", p]
        elif os.path.exists(p):
            argv += ["--ro-bind", "/dev/null", p]
    for dest, fd in carried.items():
        argv += ["--ro-bind-data", str(fd), dest]
    return [*argv, "--chdir", SANDBOX_DIR, "--", *cmd]


# ----------------------------------------------------------------------------- inside the sandbox

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC = 1, 2, 4, 4096, 16384


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
        # /var/tmp is world-writable too: without its own empty mount two submissions could pass data through it
        if os.path.isdir("/var/tmp") and not any(os.path.realpath(x).startswith("/var/tmp")
                                                 for x in spec.get("expose", [])):
            _mount("tmpfs", "/var/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")
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


def enter(spec: dict) -> str:
    """Everything between the sandbox's start and the first line of student code, in this order:
    mounts (in the new namespaces), user, limits, environment. Returns the working folder."""
    workdir = isolate(spec) if spec.get("namespaces") else spec["workdir"]
    if spec.get("uid") is not None:
        drop_privileges(spec["uid"])
    set_limits(spec["limits"])
    set_env(workdir, spec.get("uid"))
    return workdir
