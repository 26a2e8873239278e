"""Linux isolation of a sandboxed run: namespaces, a user id of its own, resource limits, mounts, environment.

Both halves of the wall are here:

- in the trusted grader: what this machine allows (:func:`capabilities`), the command prefix that
  creates the walls (:func:`namespace_command`), the sandbox's user ids and its private working
  folder (:func:`prepare_workdir`);
- in the sandboxed process, before any student code: :func:`enter` sets the resource limits and a
  clean environment, and (root mode) hides the private paths under empty read-only mounts, gives
  the run a private ``/tmp`` holding only its working folder and drops to the sandbox user.

Four modes, chosen once per process (:func:`capabilities`):

- ``root``: util-linux ``unshare`` makes new network, mount and PID namespaces; the runner mounts
  and drops to a user id of its own per submission (no groups, no new privileges);
- ``bwrap`` (an ordinary user, or ``DEEPUL_SANDBOX=bwrap``): bubblewrap, unprivileged, makes new
  user, network, mount, PID, IPC and UTS namespaces and builds the run's whole file system from a
  whitelist (:func:`view`): the system folders (``/usr``, ``/lib``, ``/bin``) and a few files of
  ``/etc`` read-only, the Python installation, the venv and the helper package read-only, the
  submission's folder writable at ``/tmp/sandbox``, a private ``/tmp``, ``/var/tmp`` and
  ``/dev/shm``, a minimal ``/dev``, the new PID namespace's ``/proc``. Nothing else exists in
  there: not the grader's home, not ``/home``, ``/srv``, ``/var`` or ``/run``, not the course's
  ``solutions/`` or gradebook. Student code runs as the grader's uid, without capabilities;
- ``userns`` (an ordinary user without bubblewrap, or ``DEEPUL_SANDBOX=userns``): util-linux
  ``unshare --user --map-root-user`` makes the same namespaces, and the runner itself builds the
  same :func:`view` (:func:`enter_view`: bind mounts and tmpfs in a new root, ``pivot_root``, the
  old root detached), then enters a nested user namespace as the grader's uid and drops every
  capability before any student code;
- ``degraded``: no walls but the limits, with a loud warning; only where the kernel forbids all of
  these (or ``DEEPUL_SANDBOX=degraded``, for tests).
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
    namespaces: bool                # root mode: unshare + mounts inside the runner
    warnings: list[str] = field(default_factory=list)
    bwrap: bool = False             # bwrap mode: bubblewrap builds the whitelisted view before the runner starts
    userns: bool = False            # userns mode: unshare --user, the runner builds the same view itself

    @property
    def mode(self) -> str:
        return "root" if self.namespaces else "bwrap" if self.bwrap else "userns" if self.userns else "degraded"

    @property
    def whitelist(self) -> bool:
        """Whether the run sees only :func:`view` (bwrap and userns modes)."""
        return self.bwrap or self.userns


def runtime_paths() -> list[str]:
    """Folders student code must read: the Python installation, the venv, the helper package."""
    package = Path(__file__).resolve().parents[1]
    return sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, package)})


def _others_can_read(path: str) -> bool:
    p = Path(os.path.realpath(path))
    return all(os.stat(a).st_mode & 0o001 for a in [*p.parents, p]) and bool(os.stat(p).st_mode & 0o004)


USERNS_HELP = ("the kernel forbids unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
               "user.max_user_namespaces > 0, or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)")


def _probe(cmd: list[str], what: str) -> str | None:
    try:
        probe = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{what} failed to start: {e}"
    if probe.returncode != 0:
        return f"{what} cannot create a user namespace here ({probe.stderr.strip()[:200]}); {USERNS_HELP}"
    return None


def _bwrap_problem() -> str | None:
    """Why bubblewrap cannot build an unprivileged sandbox here (None: it can)."""
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed (`apt-get install bubblewrap`)"
    return _probe(["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
                   "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "true"], "bubblewrap")


def _userns_problem() -> str | None:
    """Why ``unshare --user`` cannot build an unprivileged sandbox here (None: it can)."""
    if not shutil.which("unshare"):
        return "util-linux `unshare` is missing"
    return _probe([*USERNS_UNSHARE, "--mount-proc", "true"], "unshare --user")


DEGRADED = ("STUDENT CODE IS NOT ISOLATED: it runs as the grader's own user, can read and overwrite whatever "
            "that user can (solutions/, verdicts, the gradebook, other students' notebooks, your files) and "
            "can reach the network; only the resource and time limits hold. ")


@lru_cache(maxsize=1)
def capabilities() -> Capabilities:
    """What isolation this machine allows; each missing piece comes with a warning. As root: the
    root sandbox. As an ordinary user: bubblewrap, else ``unshare --user``, else degraded (loudly).
    ``DEEPUL_SANDBOX`` = ``bwrap`` / ``userns`` / ``degraded`` forces a mode (tests, comparisons);
    a forced mode that cannot work here falls back as above, with a warning."""
    warn = []
    forced = os.environ.get("DEEPUL_SANDBOX")
    if forced == "degraded":  # to test (or force) the fallback
        return Capabilities(switch_user=False, namespaces=False,
                            warnings=["DEEPUL_SANDBOX=degraded: no user switch, no namespaces"])
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if forced in ("bwrap", "userns") or not root:
        problems = []
        for mode in ("bwrap", "userns"):
            if forced == "userns" and mode == "bwrap":
                continue  # forced past bubblewrap: the fallback is what is tested
            problem = _bwrap_problem() if mode == "bwrap" else _userns_problem()
            if problem is None:
                return Capabilities(switch_user=False, namespaces=False, bwrap=mode == "bwrap",
                                    userns=mode == "userns",
                                    warnings=[f"{m} sandbox unavailable: {p}" for m, p in problems])
            problems.append((mode, problem))
        if not root:
            return Capabilities(switch_user=False, namespaces=False, warnings=[
                DEGRADED + "; ".join(p for _, p in problems) + ". Fix that (or grade as root) before grading "
                "a real class."])
        warn.append(f"DEEPUL_SANDBOX={forced}: " + "; ".join(p for _, p in problems) + "; using the root sandbox")
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
USERNS_UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--kill-child",
                  "--propagation", "private"]

# The whitelist of the bwrap and userns modes (:func:`view`): nothing outside it exists in the run.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "nsswitch.conf", "host.conf",
             "hosts", "alternatives", "fonts", "mime.types", "locale.alias", "os-release")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
TMP_BYTES = 64 << 20           # each private tmpfs (/tmp, /var/tmp, /dev/shm)


def inside_spec(spec: dict) -> dict:
    """The spec as the runner must read it: in bwrap mode its folders are where bubblewrap puts them."""
    if not capabilities().bwrap:
        return spec
    inner = dict(spec, workdir=SANDBOX_DIR, namespaces=False, uid=None, hide=[], expose=[], view=[])
    if "verdict_path" in spec:
        inner["verdict_path"] = f"{CARRIED_DIR}/verdict.py"
    return inner


def view(spec: dict) -> list[list]:
    """The whole file system of a bwrap- or userns-mode run, as mount operations in order:
    ``["ro"|"rw", source, dest]``, ``["symlink", target, dest]``, ``["tmpfs", dest, bytes, mode]``,
    ``["data", dest, text]``, ``["dev", dest]``, ``["proc", dest]``, ``["hide", dest]`` (an empty
    read-only mount over a private path that lies inside a bound folder). A whitelist: the system
    folders and a few files of ``/etc`` read-only, a passwd naming only the grader's uid, ``spec["expose"]``
    (the Python installation, the venv, the package) read-only, ``spec["workdir"]`` writable at
    :data:`SANDBOX_DIR`, private ``/tmp``, ``/var/tmp`` and ``/dev/shm``."""
    ops: list[list] = []
    bound: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            ops.append(["symlink", os.readlink(d), d])
        elif os.path.isdir(d):
            ops.append(["ro", d, d])
            bound.append(d)
    for name in ETC_FILES:
        p = f"/etc/{name}"
        if os.path.exists(p) and not _under(os.path.realpath(p), ["/proc", "/sys", "/dev"]):
            ops.append(["ro", os.path.realpath(p), p])
            bound.append(os.path.realpath(p))
    uid, gid = os.getuid(), os.getgid()  # the ids the run has (bubblewrap and userns mode map the grader's)
    users = {0: ("root", 0, "/"), 65534: ("nobody", 65534, "/nonexistent"),
             uid: ("student", gid, f"{SANDBOX_DIR}/home")}
    groups = {0: "root", 65534: "nogroup", gid: "student"}
    ops += [["data", "/etc/passwd", "".join(f"{name}:x:{u}:{g}::{home}:/usr/sbin/nologin\n"
                                           for u, (name, g, home) in sorted(users.items()))],
            ["data", "/etc/group", "".join(f"{name}:x:{g}:\n" for g, name in sorted(groups.items()))],
            ["dev", "/dev"], ["tmpfs", "/dev/shm", TMP_BYTES, 0o1777], ["proc", "/proc"],
            ["tmpfs", "/tmp", TMP_BYTES, 0o1777], ["tmpfs", "/var/tmp", TMP_BYTES, 0o1777]]
    for p in sorted({os.path.realpath(p) for p in spec.get("expose", [])}):
        if os.path.isdir(p) and not _under(p, bound):
            ops.append(["ro", p, p])
            bound.append(p)
    ops.append(["rw", os.path.realpath(spec["workdir"]), SANDBOX_DIR])
    hide = sorted({os.path.realpath(p) for p in spec.get("hide", [])})
    for p in hide:
        if _under(p, bound) and not _under(p, [h for h in hide if h != p]) and os.path.exists(p):
            ops.append(["hide", p])
    return ops


def namespace_command(cmd: list[str], spec: dict, spec_path: Path) -> tuple[list[str], list[int]]:
    """``cmd SPEC`` run behind the walls of this machine's mode, and the descriptors the command
    must inherit (the caller closes them once it has started). Root mode: new network, mount and
    PID namespaces (``unshare``); bwrap mode: :func:`bwrap_command`; userns mode: ``unshare
    --user`` (the runner builds ``spec["view"]`` itself); the process tree dies with it."""
    caps = capabilities()
    if caps.bwrap:
        fds = [os.open(spec_path, os.O_RDONLY)]
        carried = {f"{CARRIED_DIR}/spec.json": fds[0]}
        if "verdict_path" in spec:
            fds.append(os.open(spec["verdict_path"], os.O_RDONLY))
            carried[f"{CARRIED_DIR}/verdict.py"] = fds[1]
        argv, data_fds = bwrap_command([*cmd, f"{CARRIED_DIR}/spec.json"], spec, carried)
        return argv, fds + data_fds
    if caps.userns:  # setpriv: unshare (and with it, --kill-child, the whole run) dies with the grader
        return [*_die_with_parent(), *USERNS_UNSHARE, "--", *cmd, str(spec_path)], []
    if not caps.namespaces:
        return [*cmd, str(spec_path)], []
    return [*_die_with_parent(), "unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
            "--propagation", "private", "--", *cmd, str(spec_path)], []


@lru_cache(maxsize=1)
def _die_with_parent() -> list[str]:
    """A prefix that kills the command when the process starting it dies (util-linux >= 2.33)."""
    if shutil.which("setpriv") and "--pdeathsig" in subprocess.run(["setpriv", "--help"], capture_output=True,
                                                                    text=True).stdout:
        return ["setpriv", "--pdeathsig", "KILL", "--"]
    return []


@lru_cache(maxsize=1)
def _bwrap_help() -> str:
    return subprocess.run(["bwrap", "--help"], capture_output=True, text=True).stdout


def _under(path: str, folders) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _data_fd(text: str) -> int:
    """A descriptor holding ``text`` from its start (bubblewrap copies it into the sandbox)."""
    fd = os.memfd_create("deepul-data")
    os.write(fd, text.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def bwrap_command(cmd: list[str], spec: dict, carried: dict[str, int]) -> tuple[list[str], list[int]]:
    """The bubblewrap command line for ``cmd`` (unprivileged) and the descriptors it reads: new user,
    network, mount, PID, IPC, UTS namespaces, no capabilities, a new session (no terminal
    injection), killed with its parent; the file system is ``spec["view"]`` (:func:`view`) and
    nothing else, its root read-only; ``carried`` (in-sandbox path -> descriptor) copied in read-only."""
    size = lambda n: ["--size", str(n)] if "--size" in _bwrap_help() else []  # bubblewrap >= 0.7  # noqa: E731
    # --perms: bubblewrap >= 0.5 for files, >= 0.8 for a tmpfs (older: a tmpfs is 0755, the runner uses $TMPDIR)
    perms = lambda mode, tmpfs=False: (["--perms", f"{mode:o}"] if "--perms" in _bwrap_help()  # noqa: E731
                                       and (not tmpfs or "--disable-userns" in _bwrap_help()) else [])
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
            *(["--disable-userns"] if "--disable-userns" in _bwrap_help() else [])]  # bubblewrap >= 0.8
    fds: list[int] = []
    for kind, *args in spec.get("view") or view(spec):
        if kind in ("ro", "rw", "symlink"):
            argv += [{"ro": "--ro-bind", "rw": "--bind", "symlink": "--symlink"}[kind], *args]
        elif kind == "tmpfs":
            argv += [*size(args[1]), *perms(args[2], tmpfs=True), "--tmpfs", args[0]]
        elif kind == "data":
            fds.append(_data_fd(args[1]))
            argv += [*perms(0o644), "--ro-bind-data", str(fds[-1]), args[0]]
        elif kind in ("dev", "proc"):
            argv += [f"--{kind}", args[0]]
        elif kind == "hide":
            argv += ["--tmpfs", args[0], "--remount-ro", args[0]] if os.path.isdir(args[0]) else [
                "--ro-bind", "/dev/null", args[0]]
    for dest, fd in carried.items():
        argv += ["--ro-bind-data", str(fd), dest]
    return [*argv, "--remount-ro", "/", "--chdir", SANDBOX_DIR, "--", *cmd], fds


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


MS_REMOUNT, MNT_DETACH, CLONE_NEWUSER = 32, 2, 0x10000000
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
# statvfs flags a remount inside a user namespace must keep (the kernel locks them) -> mount flags
KEPT_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, 8), (os.ST_NOATIME, 1024),
              (os.ST_NODIRATIME, 2048), (os.ST_RELATIME, 1 << 21))


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mounts_under(path: str) -> list[str]:
    """Every mount point at or below ``path`` (from /proc/self/mountinfo), parents first."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    points = [p.encode().decode("unicode_escape") if "\\" in p else p for p in points]
    return sorted({p for p in points if _under(p, [path])}, key=len)


def _remount_ro(path: str) -> None:
    """Read-only, this mount and every mount below it, keeping the flags the kernel locks."""
    for p in _mounts_under(path):
        flags = os.statvfs(p).f_flag
        kept = sum(m for st, m in KEPT_FLAGS if flags & st)
        _mount("none", p, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept, None)


def _place(dest: str, directory: bool) -> None:
    if directory:
        os.makedirs(dest, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
        if not os.path.lexists(dest):
            open(dest, "w").close()


def build_view(ops: list[list], newroot: str) -> None:
    """Mount ``ops`` (:func:`view`) under ``newroot``, a fresh tmpfs (userns mode, before ``pivot_root``)."""
    _mount("tmpfs", newroot, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    at = lambda p: newroot + p  # noqa: E731
    for kind, *args in ops:
        if kind in ("ro", "rw"):
            src, dest = args
            _place(at(dest), os.path.isdir(src))
            _mount(src, at(dest), None, MS_BIND | MS_REC, None)
            if kind == "ro":
                _remount_ro(at(dest))
        elif kind == "symlink":
            _place(os.path.dirname(at(args[1])), True)
            os.symlink(args[0], at(args[1]))
        elif kind == "tmpfs":
            _place(at(args[0]), True)
            _mount("tmpfs", at(args[0]), "tmpfs", MS_NOSUID | MS_NODEV, f"size={args[1]},mode={args[2]:o}")
        elif kind == "data":
            _place(at(args[0]), False)
            with open(at(args[0]), "w") as f:
                f.write(args[1])
            os.chmod(at(args[0]), 0o644)
        elif kind == "dev":
            dev = at(args[0])
            _place(dev, True)
            _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "size=64k,mode=755")
            for name in DEVICES:
                if os.path.exists(f"/dev/{name}"):
                    _place(f"{dev}/{name}", False)
                    _mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND, None)
            for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                                 ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
                os.symlink(target, f"{dev}/{name}")
        elif kind == "proc":
            _place(at(args[0]), True)
            _mount("proc", at(args[0]), "proc", MS_NOSUID | MS_NODEV | 8, None)  # 8: MS_NOEXEC
        elif kind == "hide":
            if os.path.isdir(at(args[0])):
                _mount("tmpfs", at(args[0]), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=000")
            else:
                _mount("/dev/null", at(args[0]), None, MS_BIND, None)
        else:
            raise ValueError(f"unknown view operation {kind!r}")


def _pivot(newroot: str) -> None:
    """Make ``newroot`` the root and detach the old one (nothing of it stays reachable)."""
    libc = _libc()
    os.chdir(newroot)
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {os.uname().machine}")
    _check(libc.syscall(number, b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    _mount("none", "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _become(uid: int, gid: int) -> None:
    """A nested user namespace in which this process is ``uid``/``gid`` (the grader's ids, as in the
    bwrap mode), then no capabilities at all: none effective, permitted, inheritable, ambient or in
    the bounding set, none regained by running a program as uid 0, no new privileges."""
    libc = _libc()
    last_cap = int(open("/proc/sys/kernel/cap_last_cap").read())
    _check(libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} 0 1"), ("gid_map", f"{gid} 0 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    _check(libc.prctl(38, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    # securebits: NOROOT and NO_CAP_AMBIENT_RAISE on, KEEP_CAPS and NO_SETUID_FIXUP off, all four locked
    _check(libc.prctl(28, 0b11101011, 0, 0, 0), "PR_SET_SECUREBITS")
    for cap in range(last_cap + 1):
        _check(libc.prctl(24, cap, 0, 0, 0), "PR_CAPBSET_DROP")
    _check(libc.prctl(47, 4, 0, 0, 0), "PR_CAP_AMBIENT_CLEAR_ALL")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    _check(libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()), "capset")  # _LINUX_CAPABILITY_VERSION_3


def enter_view(spec: dict) -> str:
    """Userns mode (this process is root of a new user namespace, with new mount, network and PID
    namespaces): the loopback up, ``spec["view"]`` built in a new root, the old root gone, then the
    grader's uid without capabilities. Returns the working folder."""
    _loopback_up()
    build_view(spec["view"], spec["newroot"])
    _pivot(spec["newroot"])
    _become(spec["host_uid"], spec["host_gid"])
    return SANDBOX_DIR


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
    if spec.get("userns"):
        workdir = enter_view(spec)
    else:
        workdir = isolate(spec) if spec.get("namespaces") else spec["workdir"]
    if spec.get("uid") is not None:
        drop_privileges(spec["uid"])
    set_limits(spec["limits"])
    set_env(workdir, spec.get("uid"))
    return workdir
