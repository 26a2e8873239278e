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
