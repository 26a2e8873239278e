"""Independent benchmark runs spread over processes: ``map_jobs(fn, jobs)``.

A benchmark that trains many small models one after the other (a variant x a data set x a seed) leaves
all but one core idle: on the course's 2-core machine the implicit family's 24 2D runs took 16 of its 19
minutes. ``map_jobs`` runs ``fn(job)`` for every job in ``config.workers()`` processes (spawned, one
PyTorch thread each, ``config.use_threads(1)``), and returns the results in the order of ``jobs``; with one
worker (``DEEPUL_WORKERS=1``) or one job it runs them here, in order, and the results are the same.

A job is seeded by what it carries (``config.seed_everything`` inside ``fn``), never by the process it lands
in, so quality figures do not depend on the number of workers. Seconds measured inside a job share the
machine with the other workers; time what a row reports as speed (sampling) in the calling process, after
``map_jobs`` returns. ``fn`` must be a module-level function and jobs and results picklable (return a
model's ``state_dict``, not the model).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from deepul_helpers import config


def _one_thread() -> None:
    config.use_threads(1)


def map_jobs(fn: Callable, jobs: Sequence, workers: int | None = None) -> list:
    """``[fn(job) for job in jobs]``, in up to ``workers`` (default ``config.workers()``) processes."""
    jobs = list(jobs)
    workers = min(config.workers() if workers is None else workers, len(jobs))
    if workers <= 1:
        return [fn(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_one_thread) as pool:
        return list(pool.map(fn, jobs))
