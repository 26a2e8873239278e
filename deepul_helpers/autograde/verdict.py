"""What a verdict module (``grading/verdicts/<assignment>.py``) is made of.

A verdict module lists ``QUESTIONS``, one :class:`Question` per graded test cell, and a
``HIDDEN_SEED``. See CONTRIBUTING.md ("Homework and how it is graded").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """One graded question.

    grade_id:  the nbgrader grade_id of the test cell whose points this decides.
    points:    its maximum points (equal to that cell's points).
    requires:  names the student's solution cells must define.
    probe:     ``probe(ns, seed) -> dict``; runs in the sandbox beside the student's code,
               returns plain data only (numpy arrays, numbers, strings, lists of those).
    judge:     ``judge(out, seed) -> (points_awarded, messages)``; runs in the trusted grader,
               recomputes the expected values with the reference implementations.
    forbidden: modules whose use by the student's code scores this question 0 (and flags it).
    timeout_s: wall-clock limit for the probe of this question.
    """

    grade_id: str
    points: float
    requires: tuple[str, ...]
    probe: Callable
    judge: Callable
    forbidden: tuple[str, ...] = ()
    timeout_s: float = 120.0


# ----------------------------------------------------------------------------- helpers for verdict modules
# Probes run beside student code (untrusted); judges run in the trusted grader. These helpers
# hold no secrets: they keep every verdict module's error handling and comparisons the same.


def error_name(e: BaseException) -> str:
    """The name of the nearest builtin exception class of ``e``: never the message, which a
    student could fill with the hidden inputs."""
    import builtins

    for cls in type(e).__mro__:
        if cls.__module__ == "builtins" and isinstance(getattr(builtins, cls.__name__, None), type):
            return cls.__name__
    return "Exception"


def attempt(out: dict, part: str, fn) -> None:
    """Probe side: run ``fn() -> dict`` and merge its values into ``out``; when the student's code
    raises, record ``out[part + "_error"]`` (the exception's builtin class name) instead."""
    try:
        out.update(fn())
    except Exception as e:  # student code may raise anything
        out[f"{part}_error"] = error_name(e)


def close(out: dict, key: str, expected, atol: float, rtol: float = 1e-4) -> tuple[bool, str]:
    """Judge side: is ``out[key]`` a finite numeric array of ``expected``'s shape, within
    ``atol + rtol * |expected|`` of it? Returns (ok, what was wrong, without the values)."""
    import numpy as np

    got = out.get(key)
    expected = np.asarray(expected, dtype=np.float64)
    if not isinstance(got, np.ndarray) or got.dtype.kind not in "biuf":
        return False, "not a numeric array/tensor"
    if got.shape != expected.shape:
        return False, f"shape {got.shape}, expected {expected.shape}"
    if not np.all(np.isfinite(got)):
        return False, "contains NaN or inf"
    err = np.abs(got.astype(np.float64) - expected)
    if not np.all(err <= atol + rtol * np.abs(expected)):
        return False, f"differs from the reference (largest error {float(err.max()):.3g})"
    return True, ""
