"""The one way to time code in the course: ``timed`` for one call, ``best_of`` for a figure you show.

    from deepul_helpers.timing import best_of, timed

    result, wall_s, cpu_s = timed(model.sample, 64)          # one call: what a run took
    t = best_of(model.sample, 64, repeats=5, warmup=1)       # a timing to plot or to quote
    t.best_s, t.median_s, t.spread, t.describe()             # "best of 5 (median ..., spread ...)"
    ts = compare({"naive": f, "cached": g}, repeats=5)       # interleaved: f, g, f, g, ... for a ratio
    sweep([16, 32], lambda n: {"naive": ..., "cached": ...})  # {name: [CPU seconds at each n]}

How to report a timing honestly
-------------------------------
- **Best of several repeats** is the cost of the code: other processes, the garbage collector
  and cold caches only ever add time, so the fastest run is the least disturbed one (the
  convention of the standard library's ``timeit``). Quote it with the **median** and the
  **spread** of the repeats, so that a reader sees how noisy the machine was.
- **Warm up first**: the first call pays for lazy initialisation, memory allocation and caches
  (``warmup=1`` runs it once untimed).
- **Wall and CPU time differ.** ``cpu_s`` counts the seconds the CPU spent on this process (all
  its threads); a single-threaded call whose ``cpu_s`` is well below ``wall_s`` waited for the
  machine (it was loaded) or for I/O or sleep. Several threads can make ``cpu_s`` exceed ``wall_s``.
- **Threads**: on a shared machine, PyTorch's intra-op threads fight other processes for the
  cores; time with one thread (``torch.set_num_threads(1)``) when the point is a comparison,
  and say so.
- **Compare within one run.** A ratio of two timings measured in the same run, interleaved
  (A, B, A, B, ...: :func:`compare`), is far more stable than either absolute number on a loaded
  machine. There, the least **CPU** time (``cpu_min_s``) of single-threaded code measures its work
  without the time spent waiting for a core; say which clock a figure shows.
- **Say how it was measured** next to the number or in the figure: repeats, warm-up, threads,
  "measured under load" where that is the case, and the command that reproduces it.
- A time is never a stopping rule for a quality figure (train for iterations or epochs) and
  never asserted in a test (timings belong to ``deepul bench``).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["Timed", "Timing", "best_of", "compare", "sweep", "timed", "torch_threads"]


class Timed(NamedTuple):
    """What :func:`timed` returns: the call's result, its wall-clock and its CPU seconds."""

    result: Any
    wall_s: float
    cpu_s: float


def timed(fn, *args, **kwargs) -> Timed:
    """Call ``fn(*args, **kwargs)`` once; return ``(result, wall_s, cpu_s)``.

    ``wall_s`` is elapsed time (``time.perf_counter``), ``cpu_s`` the CPU time of this process
    over the call, all threads included (``time.process_time``; child processes not included).
    """
    if not callable(fn):
        raise TypeError(f"timed(fn, *args, **kwargs) needs a callable first, got {type(fn).__name__}")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fn(*args, **kwargs)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Timed(result, wall, cpu)


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``repeats`` timed runs (see :func:`best_of`)."""

    times_s: tuple[float, ...]  # wall seconds per call, one per repeat, in the order measured
    cpu_times_s: tuple[float, ...]  # CPU seconds per call of this process, same order
    number: int  # calls per repeat (each time is the repeat's total / number)
    warmup: int  # untimed calls before the first repeat
    result: Any = None  # what the last call returned

    @property
    def repeats(self) -> int:
        return len(self.times_s)

    @property
    def best_s(self) -> float:
        """The fastest repeat: the cost of the code, least disturbed by the machine."""
        return min(self.times_s)

    @property
    def median_s(self) -> float:
        return float(statistics.median(self.times_s))

    @property
    def worst_s(self) -> float:
        return max(self.times_s)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / fastest over the repeats: 0.05 means the repeats varied by 5%."""
        return (self.worst_s - self.best_s) / self.best_s if self.best_s > 0 else float("inf")

    @property
    def cpu_min_s(self) -> float:
        """The least CPU time per call over the repeats: the work done, whatever the machine's load
        (single-threaded code: equals the wall time on an idle machine)."""
        return min(self.cpu_times_s)

    @property
    def cpu_best_s(self) -> float:
        """CPU seconds per call of the repeat with the fastest wall time."""
        return self.cpu_times_s[self.times_s.index(self.best_s)]

    def describe(self, unit: str = "auto") -> str:
        """One line for a figure or a printout, e.g. ``"best of 5: 1.21 ms (median 1.30 ms, spread 12%)"``."""
        scale, name = _unit(self.best_s if unit == "auto" else None, unit)
        calls = f", {self.number} calls each" if self.number > 1 else ""
        return (f"best of {self.repeats}{calls}: {_num(self.best_s * scale)} {name} "
                f"(median {_num(self.median_s * scale)} {name}, spread {100 * self.spread:.0f}%)")


def _num(x: float) -> str:
    """3 significant digits, never in scientific notation (1.21, 12.1, 121, 1210)."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}


def _unit(seconds: float | None, unit: str) -> tuple[float, str]:
    if unit != "auto":
        if unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r}; use 'auto', 's', 'ms' or 'us'")
        return _UNITS[unit], unit
    if seconds >= 1:
        return 1.0, "s"
    return (1e3, "ms") if seconds >= 1e-3 else (1e6, "us")


def _check_counts(where: str, repeats, warmup, number) -> None:
    for name, value, low in (("repeats", repeats, 1), ("warmup", warmup, 0), ("number", number, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{where}: {name} must be an integer >= {low}, got {value!r}")


def _one_repeat(fn, number: int):
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(number):
        result = fn()
    return (time.perf_counter() - wall0) / number, (time.process_time() - cpu0) / number, result


def compare(fns: dict, repeats: int = 5, warmup: int = 1, number: int = 1) -> dict:
    """Time several zero-argument callables **interleaved** (A, B, C, A, B, C, ...), so that a change
    in the machine's load touches all of them alike; returns ``{name: Timing}`` (same fields as
    :func:`best_of`). Use it for the ratio of two ways of doing one thing (e.g. sampling with and
    without a cache) and report ``a.best_s / b.best_s`` (or, on a loaded machine, ``cpu_min_s``)."""
    if not isinstance(fns, dict) or not fns or not all(callable(f) for f in fns.values()):
        raise TypeError("compare(fns) needs a non-empty dict of name -> zero-argument callable")
    _check_counts("compare", repeats, warmup, number)
    results = {name: None for name in fns}
    for _ in range(warmup):
        for name, fn in fns.items():
            results[name] = fn()
    walls, cpus = {name: [] for name in fns}, {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu, results[name] = _one_repeat(fn, number)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {name: Timing(tuple(walls[name]), tuple(cpus[name]), number, warmup, results[name]) for name in fns}


def sweep(xs, make, repeats: int = 5, warmup: int = 1, clock: str = "cpu") -> dict[str, list[float]]:
    """Seconds per call against a size: for each ``x`` in ``xs``, ``compare(make(x))`` (interleaved) and
    keep, per name, the least CPU time (``clock="cpu"``, robust to a loaded machine) or the best wall
    time (``clock="wall"``). Returns ``{name: [seconds at each x]}``, ready for ``plot.timing``."""
    if clock not in ("cpu", "wall"):
        raise ValueError(f"sweep: clock must be 'cpu' or 'wall', got {clock!r}")
    series: dict[str, list[float]] = {}
    for x in xs:
        for name, t in compare(make(x), repeats=repeats, warmup=warmup).items():
            series.setdefault(name, []).append(t.cpu_min_s if clock == "cpu" else t.best_s)
    return series


def best_of(fn, *args, repeats: int = 5, warmup: int = 1, number: int = 1, **kwargs) -> Timing:
    """Time ``fn(*args, **kwargs)``: ``warmup`` untimed calls, then ``repeats`` timed repeats of
    ``number`` calls each; returns a :class:`Timing` with seconds **per call** (best, median,
    spread, CPU seconds, and the last result).

    Use ``number > 1`` for calls much shorter than a millisecond (as ``timeit`` does). To compare
    two functions on a loaded machine, interleave them (``best_of(a)``, ``best_of(b)`` inside one
    loop over sizes) and show their ratio as well as their times.
    """
    if not callable(fn):
        raise TypeError(f"best_of(fn, *args, **kwargs) needs a callable first, got {type(fn).__name__}")
    _check_counts("best_of", repeats, warmup, number)
    return compare({"fn": lambda: fn(*args, **kwargs)}, repeats=repeats, warmup=warmup, number=number)["fn"]


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """``with torch_threads(1): ...`` runs PyTorch's intra-op work on ``n`` threads, then restores
    the previous setting. Timings made inside compare code, not how many cores happened to be free."""
    import torch

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"torch_threads: n must be an integer >= 1, got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
