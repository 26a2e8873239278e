"""The one place that decides quick mode, the device, the seeds and PyTorch's threads.

Quick mode shrinks every training run to a few iterations so that CI and autograding
finish fast. It is on when any of these holds:

- the caller passes ``quick=True``;
- the environment has ``DEEPUL_QUICK=1``;
- nbgrader is executing the notebook (``NBGRADER_EXECUTION`` is set).

``quick=False`` does not switch it off when the environment asks for it: a grader
that sets ``DEEPUL_QUICK=1`` wins over a notebook's parameters cell.

Threads: ``fit`` and ``deepul bench`` run PyTorch's intra-op work on ``threads()`` threads:
``DEEPUL_THREADS`` if set, else ``OMP_NUM_THREADS`` if set, else **1**. The course's models are
small: a second thread gains little on an idle machine, and when another process keeps a core
busy, two threads that must meet at every operation made small models about 10x slower (a char
Transformer: 1 epoch in 90 s instead of 13). Set ``DEEPUL_THREADS=4`` on a machine of your own.

Workers: a benchmark whose runs are independent (one model and seed each) spreads them over
``workers()`` processes of one thread each (``bench.workers.map_jobs``): ``DEEPUL_WORKERS`` if set
(``deepul bench --workers N`` sets it), else the number of CPU cores this process may use.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

QUICK_ENV = "DEEPUL_QUICK"
NBGRADER_ENV = "NBGRADER_EXECUTION"
THREADS_ENV = "DEEPUL_THREADS"
WORKERS_ENV = "DEEPUL_WORKERS"

# What quick mode shrinks a training run to (read by deepul_helpers.train.fit).
QUICK_MAX_EPOCHS = 2
QUICK_MAX_ITERS_PER_EPOCH = 5
QUICK_MAX_TEST_EXAMPLES = 256


def _env_true(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def is_quick(quick: bool | None = None) -> bool:
    """True when quick mode is on (see the module docstring for the three switches)."""
    if quick is not None and not isinstance(quick, (bool, np.bool_)):
        raise TypeError(f"quick must be True, False or None, got {quick!r}")
    return bool(quick) or _env_true(QUICK_ENV) or (NBGRADER_ENV in os.environ)


def pick(full, quick_value, quick: bool | None = None):
    """``quick_value`` in quick mode, ``full`` otherwise: for sample counts, grid sizes, ..."""
    return quick_value if is_quick(quick) else full


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if present, else CPU. An explicit CUDA request without CUDA is an error."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was asked for but this machine has no CUDA device; "
            "use device='auto' (CUDA when present, else CPU) or device='cpu'"
        )
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from e


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch.Generator seeded the same way."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def threads() -> int:
    """PyTorch intra-op threads for the course: ``DEEPUL_THREADS``, else ``OMP_NUM_THREADS``, else 1."""
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{name}={value!r}: set it to a positive number of threads, e.g. {name}=1")
            return int(value)
    return 1


def workers() -> int:
    """Processes for a benchmark's independent runs: ``DEEPUL_WORKERS``, else the usable CPU cores."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{WORKERS_ENV}={value!r}: set it to a positive number of processes, e.g. "
                             f"{WORKERS_ENV}=1 (one run at a time)")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def use_threads(n: int | None = None) -> int:
    """Run PyTorch's intra-op work on ``n`` threads (default ``threads()``); returns ``n``."""
    n = threads() if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
