"""Linux isolation of a sandboxed run: namespaces, a user id of its own, resource limits, mounts, environment.

Both halves of the wall are here:

- in the trusted grader: what this machine allows (:func:`capabilities`), the command prefix that
  creates new network, mount and PID namespaces (:func:`namespace_command`, util-linux ``unshare``),
  the sandbox's user ids and its private working folder (:func:`prepare_workdir`);
- in the sandboxed process, before any student code: :func:`enter` hides the private paths under
  empty read-only mounts, gives the run a private ``/tmp`` holding only its working folder, drops
  to the sandbox user (no groups, no new privileges), sets the resource limits and a clean
  environment.

Without root or ``unshare`` it degrades (same user, no namespaces) and says so once;
``DEEPUL_SANDBOX=degraded`` forces that mode (for tests, or a platform where ``unshare`` misbehaves).
"""

from __future__ import annotations

import ctypes
import os
import resource
import secrets
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

UID_BASE = 200_000  # sandbox uids: UID_BASE + random run offset + submission index (no passwd entry)


@dataclass
class Capabilities:
    switch_user: bool
    namespaces: bool
    warnings: list[str] = field(default_factory=list)


def runtime_paths() -> list[str]:
    """Folders student code must read: the Python installation, the venv, the helper package."""
    package = Path(__file__).resolve().parents[1]
    return sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, package)})


def _others_can_read(path: str) -> bool:
    p = Path(os.path.realpath(path))
    return all(os.stat(a).st_mode & 0o001 for a in [*p.parents, p]) and bool(os.stat(p).st_mode & 0o004)


@lru_cache(maxsize=1)
def capabilities() -> Capabilities:
    """What isolation this machine allows; each missing piece comes with a warning."""
    warn = []
    if os.environ.get("DEEPUL_SANDBOX") == "degraded":  # to test (or force) the fallback
        return Capabilities(switch_user=False, namespaces=False,
                            warnings=["DEEPUL_SANDBOX=degraded: no user switch, no namespaces"])
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not root:
        warn.append("the grader is not running as root: student code runs as the grader's own user "
                    "and can read whatever that user can (run `deepul autograde` as root for isolation)")
    ns = False
    if root and shutil.which("unshare"):
        probe = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child",
                                "--mount-proc", "true"], capture_output=True)
        ns = probe.returncode == 0
    if not ns:
        warn.append("network/mount/PID namespaces are not available (needs Linux, root and util-linux "
                    "`unshare`): student code may reach the network and read files outside its folder "
                    "that the sandbox user can read")
    switch = root
    if root and not ns and not all(_others_can_read(p) for p in runtime_paths()):
        switch = False
        warn.append("the Python installation is not readable by other users and namespaces are missing: "
                    "student code runs as root")
    return Capabilities(switch_user=switch, namespaces=ns, warnings=warn)


def warn_once() -> None:
    for w in capabilities().warnings:
        warnings.warn("deepul autograde: " + w, stacklevel=2)


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



def namespace_command(cmd: list[str]) -> list[str]:
    """``cmd`` run in new network, mount and PID namespaces (where :func:`capabilities` allows it);
    the whole process tree dies with it."""
    if not capabilities().namespaces:
        return cmd
    return ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
            "--propagation", "private", "--", *cmd]


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
