"""The verdict author's kit: what a verdict module (``grading/verdicts/<assignment>.py``) is made of.

A verdict module lists ``QUESTIONS``, one :class:`Question` per graded test cell, and a
``HIDDEN_SEED``. Each question has a ``probe`` (runs in the sandbox beside the student's code,
returns plain data) and a ``judge`` (runs in the trusted grader, awards points). See
CONTRIBUTING.md ("Homework and how it is graded") and ``templates/homework/`` for a whole example.

Probe side (untrusted process, imports nothing from the reference a question forbids):

    def probe_q1(ns, seed):
        out = {}
        x = hidden_rng(seed, 1).normal(size=(8, 3))                    # hidden inputs
        attempt(out, "f", lambda: {"f": array(ns["softmax"](x))})      # a raise -> out["f_error"]
        attempt(out, "fit", lambda: fit_outputs("fit", quick_fit(ns["q1_fit"], train, test, seed=seed)))
        return out

Judge side (trusted): one line per sub-check, its points and its message:

    def judge_q1(out, seed):
        c = Checks(out)
        if not c.raised("f", "softmax"):
            c.check(1.0, close(out, "f", reference(x), atol=1e-6), "softmax: {why}")
        if not c.raised("fit", "q1_fit", " in quick mode"):
            c.check(1.0, losses_ok(out, "fit"), "q1_fit: {why}")
        return c.result()

Nothing here holds a secret: these helpers keep every verdict's error handling, hidden inputs
and comparisons the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


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


# ----------------------------------------------------------------------------- probe side


def hidden_rng(seed: int, question: int, part: int = 0) -> np.random.Generator:
    """The generator of question ``question``'s hidden inputs, part ``part``: the probe and the
    judge call it with the same arguments and get the same inputs; another part gets other ones."""
    return np.random.default_rng([int(seed) % 2**32, int(question), int(part)])


def fit_seed(seed: int) -> int:
    """The seed a probe passes to a student's training function (and to ``torch.manual_seed``)."""
    return int(seed) % 1000


def quick_fit(fn, *args, seed: int, **kwargs):
    """Call a student's training function ``fn(*args, quick=True, seed=fit_seed(seed), device="cpu")``
    after seeding torch the same way: what every probe of a training function does."""
    import torch

    s = fit_seed(seed)
    torch.manual_seed(s)
    return fn(*args, quick=True, seed=s, device="cpu", **kwargs)


def array(value, dtype=None) -> np.ndarray:
    """A student's tensor / array / number / list as a numpy array with its own dtype kept
    (float32 stays float32, uint8 stays uint8; no gradients, on the CPU), or as ``dtype`` when given."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            value = value.double()  # exact for float16/32, before numpy casts it
        value = value.numpy()
    return np.array(value, dtype=dtype) if dtype is not None else np.asarray(value)


def fit_outputs(tag: str, result, third: str | None = None, dtype=None) -> dict:
    """``{tag}_train``, ``{tag}_test`` from a training function's ``(train_losses, test_losses, ...)``
    (as ``array(..., dtype)``), and ``{tag}_{third}``, its third value with its own dtype, when named."""
    out = {f"{tag}_train": array(result[0], dtype), f"{tag}_test": array(result[1], dtype)}
    if third is not None:
        out[f"{tag}_{third}"] = array(result[2])
    return out


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: set on every class created by a class statement or type()
_BUILTIN_ERRORS = {n: v for n, v in vars(__import__("builtins")).items()
                   if isinstance(v, type) and issubclass(v, BaseException)}


def error_name(e: BaseException) -> str:
    """The name of the nearest builtin exception class of ``e``: never the message, which a
    student could fill with the hidden inputs. A class counts as builtin only if it is one of the
    interpreter's own (a static type, never a class defined in Python, whatever its ``__module__``
    or its name says, or whether student code put it into ``builtins``)."""
    for cls in type(e).__mro__:
        if not cls.__flags__ & _HEAPTYPE and _BUILTIN_ERRORS.get(cls.__name__) is cls:
            return cls.__name__
    return "Exception"


def attempt(out: dict, part: str, fn) -> None:
    """Probe side: run ``fn() -> dict`` and merge its values into ``out``; when the student's code
    raises, record ``out[part + "_error"]`` (the exception's builtin class name) instead."""
    try:
        out.update(fn())
    except Exception as e:  # student code may raise anything
        out[f"{part}_error"] = error_name(e)


def grid_mass(log_prob, extent: float = 7.0, n: int = 200) -> float:
    """Probe side: the integral of ``exp(log_prob)`` over the square ``[-extent, extent]^2`` by the
    midpoint rule on an ``n`` x ``n`` grid (``metrics.grid_mass``), for a student's 2D model whose
    ``log_prob`` takes a float32 torch tensor (B, 2). A normalised density gives ~1."""
    import torch

    from deepul_helpers.metrics import grid_mass as mass

    def lp(points):
        with torch.no_grad():
            return array(log_prob(torch.from_numpy(points)), np.float64)

    return mass(lp, (-extent, extent, -extent, extent), n=n, chunk=5000)


# ----------------------------------------------------------------------------- judge side


def close(out: dict, key: str, expected, atol: float, rtol: float = 1e-4) -> tuple[bool, str]:
    """Is ``out[key]`` a finite numeric array of ``expected``'s shape, within
    ``atol + rtol * |expected|`` of it? Returns (ok, what was wrong, without the values)."""
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


def losses_ok(out: dict, tag: str, *, decreasing: bool = True) -> tuple[bool, str]:
    """``out[tag + "_train"]`` (one loss per iteration) and ``out[tag + "_test"]`` (before training and
    after each epoch): 1D finite float arrays; with ``decreasing``, the test loss went down."""
    tr, te = out.get(f"{tag}_train"), out.get(f"{tag}_test")
    if not (isinstance(tr, np.ndarray) and isinstance(te, np.ndarray) and tr.ndim == 1 and te.ndim == 1
            and tr.size >= 1 and te.size >= 2 and tr.dtype.kind == "f" and te.dtype.kind == "f"):
        return False, ("expected 1D float arrays: train losses (one per iteration) and test losses "
                       "(before training and after each epoch)")
    if not (np.all(np.isfinite(tr)) and np.all(np.isfinite(te))):
        return False, "the losses contain NaN or inf"
    if decreasing and not float(te[-1]) < float(te[0]):
        return False, "the test loss did not go down in quick mode"
    return True, ""


def shape_ok(x, shape: tuple, kinds: str = "biuf", finite: bool = True) -> bool:
    """Is ``x`` a numpy array of exactly ``shape``, a dtype of one of ``kinds`` (numpy kind letters:
    "f" float, "u" unsigned, "i" signed, "b" bool), and (``finite``) without NaN or inf?"""
    return (isinstance(x, np.ndarray) and x.shape == tuple(shape) and x.dtype.kind in kinds
            and (not finite or bool(np.all(np.isfinite(x)))))


def levels_ok(x, shape: tuple, levels: int, kinds: str = "iu") -> bool:
    """Is ``x`` a non-empty integer array (dtype kinds ``kinds``) of ``shape`` with values in 0..levels-1?"""
    return shape_ok(x, shape, kinds, finite=False) and x.size > 0 and int(x.min()) >= 0 and int(x.max()) < levels


_SUBCHECKS: list | None = None  # set by ``subchecks`` only (a verdict's tests and seed sweeps), never by the grader


@dataclass
class Checks:
    """A judge's points and messages, one line per sub-check::

        c = Checks(out)
        if not c.raised("a", "made_masks"):            # the probe recorded out["a_error"]
            c.check(1.0, close(out, "a", want, atol=1e-6), "made_masks: {why}")
        c.check(0.5, levels_ok(out.get("s"), (4, 2), 25), "samples must be (n, 2) ints in 0..24")
        return c.result()

    ``check(points, ok, message)`` adds ``points`` when ``ok`` and the message otherwise; ``ok`` may be
    a bool or an ``(ok, why)`` pair (what ``close`` and ``losses_ok`` return), whose ``why`` fills
    ``{why}`` in the message; an empty message adds none. Messages name the check, never the hidden inputs.
    """

    out: dict = field(default_factory=dict)
    points: float = 0.0
    messages: list[str] = field(default_factory=list)

    def check(self, points: float, ok, message: str) -> bool:
        why = ""
        if isinstance(ok, tuple):
            ok, why = ok
        if ok:
            self.points += points
        elif message:
            self.messages.append(message.replace("{why}", why))
        if _SUBCHECKS is not None:
            _SUBCHECKS.append((message, points, bool(ok)))
        return bool(ok)

    def raised(self, part: str, name: str, context: str = "") -> bool:
        """True (and the message ``"<name> raised <Error><context>"``) when the probe recorded that
        part ``part`` raised; the judge then skips that part's checks."""
        err = self.out.get(f"{part}_error")
        if err is None:
            return False
        self.messages.append(f"{name} raised {err}{context}")
        if _SUBCHECKS is not None:
            _SUBCHECKS.append((f"{name} raised{context}", 0.0, False))
        return True

    def fail(self, message: str) -> None:
        """A message without points (e.g. a part that could not be checked)."""
        self.messages.append(message)

    def note(self, message: str) -> None:
        """Information for the student that no points depend on (e.g. timings, which the grading
        machine's load changes)."""
        self.messages.append(message)

    def result(self) -> tuple[float, list[str]]:
        """``(points, messages)`` for the judge to return (points rounded to 1e-6: sums of quarters stay exact)."""
        return round(self.points, 6), list(self.messages)


# ----------------------------------------------------------------------------- testing a verdict


def notebook_namespace(path, **parameters) -> dict:
    """What the grader's sandbox builds from a homework notebook, here in this process: the parameters
    (``quick=True, seed=0, device="cpu"`` unless given), then the setup cell and every solution cell in
    order. For a verdict's tests: the reference solution's namespace, or the blank release's."""
    import nbformat

    ns = {"quick": True, "seed": 0, "device": "cpu", **parameters}
    for cell in nbformat.read(str(path), as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == "setup" or meta.get("solution"):
            exec(compile(cell.source, f"<{meta['grade_id']}>", "exec"), ns)
    return ns


def grade_here(question: Question, ns: dict, seed: int) -> tuple[float, list[str]]:
    """``question.probe(ns, seed)``, the sandbox's strict plain-data transport, then ``question.judge``:
    one question graded in this process, for a verdict's tests (the grader runs the probe sandboxed)."""
    import tempfile

    from deepul_helpers.autograde import transport

    out = question.probe(ns, seed)
    with tempfile.TemporaryDirectory() as tmp:
        transport.dump(out, tmp, question.grade_id)
        out = transport.load(tmp, question.grade_id)
    return question.judge(out, seed)


def subchecks(question: Question, ns: dict, seed: int) -> tuple[float, list[str], list[tuple[str, float, bool]]]:
    """``grade_here`` that also returns every sub-check the judge ran, in order, as ``(message template,
    points, passed)`` (a part whose probe raised appears once as ``("<name> raised...", 0, False)`` and its
    sub-checks not at all): what a seed sweep counts per sub-check (``python -m deepul_helpers.bench.grading
    --seeds N``)."""
    global _SUBCHECKS
    _SUBCHECKS = []
    try:
        points, messages = grade_here(question, ns, seed)
        return points, messages, _SUBCHECKS
    finally:
        _SUBCHECKS = None
