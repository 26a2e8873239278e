"""The grade of the template homework (copy to ``grading/verdicts/hwN_<family>.py``). Never released.

``probe_q1`` runs in the sandbox beside the student's code and returns plain data; ``judge_q1`` runs
in the trusted grader, rebuilds the same hidden inputs, recomputes the expected values and awards
points per sub-check. The probe imports nothing from the reference the question forbids; the
judge imports what it needs lazily.
"""

from __future__ import annotations

import numpy as np
import torch

from deepul_helpers.autograde.verdict import (
    Checks,
    Question,
    array,
    attempt,
    close,
    fit_outputs,
    hidden_rng,
    losses_ok,
    quick_fit,
)

HIDDEN_SEED = 20261201


def _q1_inputs(seed):
    """Hidden logits and values: the same for the probe and the judge."""
    rng = hidden_rng(seed, 1)
    levels = int(rng.integers(3, 40))
    return rng.normal(0, 3, levels).astype(np.float32), rng.integers(0, levels, 64), levels


def _q1_data():
    from deepul_helpers import data

    return data.load("1d_a", "train")[:2000], data.load("1d_a", "test")[:256], data.info("1d_a").levels


def probe_q1(ns, seed):
    out = {}
    logits, x, _ = _q1_inputs(seed)
    nll = ns["histogram_nll"]
    attempt(out, "nll", lambda: {"nll": array(nll(torch.from_numpy(logits), torch.from_numpy(x))).reshape(-1)})
    train_x, test_x, levels = _q1_data()
    attempt(out, "fit", lambda: fit_outputs("fit", quick_fit(ns["q1_fit"], train_x, test_x, levels, seed=seed),
                                            third="probs"))
    return out


def judge_q1(out, seed):
    c = Checks(out)
    logits, x, _ = _q1_inputs(seed)
    if not c.raised("nll", "histogram_nll"):
        want = -torch.log_softmax(torch.from_numpy(logits).double(), 0)[torch.from_numpy(x)].mean()
        c.check(1.0, close(out, "nll", want.numpy().reshape(1), atol=1e-5), "histogram_nll: {why}")
    if not c.raised("fit", "q1_fit", " in quick mode"):
        c.check(1.0, losses_ok(out, "fit"), "q1_fit: {why}")
        _, test_x, levels = _q1_data()
        probs = out.get("fit_probs")
        ok = (isinstance(probs, np.ndarray) and probs.shape == (levels,) and probs.dtype.kind == "f"
              and abs(float(probs.sum()) - 1) < 1e-4 and isinstance(out.get("fit_test"), np.ndarray))
        with np.errstate(divide="ignore"):
            ok = ok and abs(float(-np.log(probs[test_x]).mean()) - float(out["fit_test"][-1])) < 1e-3
        c.check(1.0, ok, "q1_fit: probs must sum to 1 and give the last test loss as their NLL on the test data")
    return c.result()


QUESTIONS = [
    Question(grade_id="q1_tests", points=3, requires=("histogram_nll", "q1_fit"),
             forbidden=("deepul_helpers.models.autoregressive.histogram",), probe=probe_q1, judge=judge_q1,
             timeout_s=60),
]
