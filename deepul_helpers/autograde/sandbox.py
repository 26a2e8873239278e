"""Start the untrusted runner (``runner.py``) in a sandbox, from the trusted grader.

Where the platform allows it (Linux, grader running as root, ``unshare`` present) each run gets:

- new network, mount and PID namespaces (``unshare --net --mount --pid --fork --kill-child``):
  no network, only loopback; the whole process tree dies with the runner;
- a fresh tmpfs over ``/tmp`` holding only this submission's working folder, and empty
  read-only mounts over every path in ``hide`` (``solutions/``, ``grading/``, ``.git``, the
  submissions folder, the output folder, the gradebook's folder);
- a user id of its own (a numeric uid from an unused range, one per submission, so that a fork
  bomb in one submission cannot exhaust the process quota of another), no supplementary groups,
  no new privileges;
- resource limits (address space, CPU seconds, file size, processes, no core files), set by the
  runner after it dropped privileges and before any student code runs;
- a wall-clock limit enforced here: the process group is killed, and with it the PID namespace;
- stdout/stderr captured with a size cap (first and last bytes kept).

Without root or ``unshare`` it degrades (same user, no namespaces) and says so once;
``DEEPUL_SANDBOX=degraded`` forces that mode (for tests, or a platform where ``unshare`` misbehaves).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

UID_BASE = 200_000  # sandbox uids: UID_BASE + random run offset + submission index (no passwd entry)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 600.0      # wall clock, whole run (enforced from outside)
    memory_mb: int = 3072         # address space per process
    cpu_s: int | None = None      # CPU seconds per process (default: the wall-clock limit)
    file_mb: int = 256            # largest file a process may write
    nproc: int = 256              # processes + threads of the sandbox user
    output_bytes: int = 200_000   # stdout/stderr kept (half head, half tail)


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


@dataclass
class RunResult:
    returncode: int | None
    timed_out: bool
    wall_s: float
    output: str                     # capped stdout + stderr
    events: list[str]               # lines the audit hook sent (verdict mode)
    events_cut: bool = False        # more event bytes than kept: someone flooded the channel

    @property
    def crashed(self) -> bool:
        return not self.timed_out and self.returncode != 0

    def describe(self) -> str:
        if self.timed_out:
            return f"stopped after the time limit ({self.wall_s:.0f} s)"
        rc = self.returncode
        if rc is not None and rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
            return f"the process was killed by {name}"
        return f"the process exited with status {rc}"


class _CappedReader(threading.Thread):
    """Drain a pipe completely, keeping the first and last ``cap/2`` bytes."""

    def __init__(self, fd: int, cap: int):
        super().__init__(daemon=True)
        self.fd, self.cap = fd, cap
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def run(self) -> None:
        half = self.cap // 2
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            self.total += len(chunk)
            room = half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail += chunk
                if len(self.tail) > half:
                    del self.tail[: len(self.tail) - half]
        os.close(self.fd)

    def text(self) -> str:
        kept = len(self.head) + len(self.tail)
        middle = f"\n[... {self.total - kept} bytes of output cut ...]\n" if self.total > kept else ""
        return (bytes(self.head).decode("utf-8", "replace") + middle
                + bytes(self.tail).decode("utf-8", "replace"))


def prepare_workdir(path: Path, uid: int | None) -> None:
    """Make ``path`` (holding the submission copy) the sandbox user's private folder."""
    for sub in ("probe", "tmp", "home"):
        (path / sub).mkdir(exist_ok=True)
    if uid is not None:
        for p in [path, *path.rglob("*")]:
            os.lchown(p, uid, uid)
    os.chmod(path, 0o700)


def run(spec: dict, control_dir: Path, limits: Limits, *, event_pipe: bool = False) -> RunResult:
    """Run ``python -m deepul_helpers.autograde.runner SPEC`` sandboxed, wait, kill on timeout."""
    caps = capabilities()
    spec = dict(spec, namespaces=caps.namespaces,
                uid=spec.get("uid") if caps.switch_user else None,
                limits={"memory_mb": limits.memory_mb, "cpu_s": limits.cpu_s or int(limits.timeout_s) + 5,
                        "file_mb": limits.file_mb, "nproc": limits.nproc})
    read_fd = None
    pass_fds: tuple[int, ...] = ()
    if event_pipe:
        read_fd, write_fd = os.pipe()
        spec["event_fd"] = write_fd
        pass_fds = (write_fd,)
    spec_path = control_dir / f"spec-{spec['mode']}.json"
    spec_path.write_text(json.dumps(spec))
    os.chmod(spec_path, 0o600)
    cmd = [sys.executable, "-I", "-m", "deepul_helpers.autograde.runner", str(spec_path)]
    if caps.namespaces:
        cmd = ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
               "--propagation", "private", "--", *cmd]
    out_r, out_w = os.pipe()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, pass_fds=pass_fds,
                            start_new_session=True, cwd=str(control_dir), env=_base_env())
    os.close(out_w)
    if event_pipe:
        os.close(pass_fds[0])
    out = _CappedReader(out_r, limits.output_bytes)
    out.start()
    events = _CappedReader(read_fd, 1 << 20) if read_fd is not None else None
    if events:
        events.start()
    timed_out = False
    try:
        proc.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(proc)
    wall = time.monotonic() - start
    out.join(timeout=10)
    if events:
        events.join(timeout=10)
    lines = events.text().splitlines() if events else []
    cut = bool(events) and events.total > len(events.head) + len(events.tail)
    return RunResult(proc.returncode, timed_out, wall, out.text(), lines, cut)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def _base_env() -> dict:
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
    return {k: os.environ[k] for k in keep if k in os.environ}
