"""Start the untrusted runner (``runner.py``) in a sandbox, from the trusted grader, and wait for it.

One :func:`run` per sandboxed run: the spec is written where only the grader can read it, the
runner starts behind the walls of ``isolation.py`` (new namespaces; as root a user id of its own,
as an ordinary user a whitelisted view of the files, built by bubblewrap or after ``unshare
--user``; resource limits set before any student code), and this side

- enforces the wall-clock limit: the process group is killed, and with it the PID namespace;
- captures stdout/stderr with a size cap (first and last bytes kept);
- reads the audit channel (``audit.py``) as it is written, also capped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from deepul_helpers.autograde import audit, isolation


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 600.0      # wall clock, whole run (enforced from outside)
    memory_mb: int = 3072         # address space per process
    cpu_s: int | None = None      # CPU seconds per process (default: the wall-clock limit)
    file_mb: int = 256            # largest file a process may write
    nproc: int = 256              # processes + threads of the sandbox user
    output_bytes: int = 200_000   # stdout/stderr kept (half head, half tail)


@dataclass
class RunResult:
    returncode: int | None
    timed_out: bool
    wall_s: float
    output: str                     # capped stdout + stderr
    events: list[audit.Event]       # what the audit hook sent (verdict run)
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


def run(spec: dict, control_dir: Path, limits: Limits, *, event_pipe: bool = False) -> RunResult:
    """Run ``python -m deepul_helpers.autograde.runner SPEC`` sandboxed, wait, kill on timeout."""
    caps = isolation.capabilities()
    spec = dict(spec, namespaces=caps.namespaces, userns=caps.userns,
                uid=spec.get("uid") if caps.switch_user else None,
                limits={"memory_mb": limits.memory_mb, "cpu_s": limits.cpu_s or int(limits.timeout_s) + 5,
                        "file_mb": limits.file_mb, "nproc": limits.nproc})
    if caps.whitelist:  # the run's whole file system (bubblewrap builds it, or the runner in userns mode)
        spec["view"] = isolation.view(spec)
    if caps.userns:
        newroot = control_dir / "root"
        newroot.mkdir(mode=0o700, exist_ok=True)
        spec.update(newroot=str(newroot), host_uid=os.getuid(), host_gid=os.getgid())
    read_fd = None
    pass_fds: tuple[int, ...] = ()
    if event_pipe:
        read_fd, write_fd = os.pipe()
        spec["event_fd"] = write_fd
        pass_fds = (write_fd,)
    spec_path = control_dir / f"spec-{spec['mode']}.json"
    spec_path.write_text(json.dumps(isolation.inside_spec(spec)))
    os.chmod(spec_path, 0o600)
    cmd, carried = isolation.namespace_command([sys.executable, "-I", "-m", "deepul_helpers.autograde.runner"],
                                               spec, spec_path)
    out_r, out_w = os.pipe()
    start = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w,
                                pass_fds=(*pass_fds, *carried), start_new_session=True, cwd=str(control_dir),
                                env=_base_env())
    finally:
        for fd in carried:
            os.close(fd)
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
    return RunResult(proc.returncode, timed_out, wall, out.text(), audit.read_events(lines), cut)


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
