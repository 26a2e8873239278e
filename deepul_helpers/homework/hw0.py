"""Runner of the template homework (``templates/homework/``): copy this file to ``hwN.py`` to start a homework.

One question: fit a histogram (a free softmax over the values) to ``1d_a`` and return its losses and
probabilities. The runner loads the data, calls the student's function through the kit (timed, its
return contract checked), plots, prints the final test loss next to ``EXPECTED``, and records.
"""

from __future__ import annotations

import numpy as np

from deepul_helpers import data, plot
from deepul_helpers.homework import kit

ASSIGNMENT = "hw0_template"
# Reference solution (templates/homework/solutions/hw0_template/hw0.ipynb), full mode, seed 0; seconds of
# the run alone on the shared 2-core CPU.
EXPECTED = kit.table(
    kit.Expected("q1", "1d_a", loss=2.6271, tol=0.02, seconds=0.1, variant="histogram"),
)


def run_q1(q1_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 1: ``q1_fit(train, test, levels, quick=, seed=, device=)`` on ``1d_a`` ((N,) int64);
    returns ``(train_losses, test_losses, probs)`` with ``probs`` ``(levels,)`` summing to 1."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    exp = EXPECTED["q1/1d_a/histogram"]
    info = data.info(exp.data)
    train_x, test_x = run.splits(exp.data)
    res = run.call(q1_fit, train_x, test_x, info.levels, returns=("train_losses", "test_losses", "probs"))
    probs = kit.to_numpy(res["probs"], "probs").astype(np.float64)
    if probs.shape != (info.levels,) or not np.isclose(probs.sum(), 1.0, atol=1e-3):
        raise ValueError(f"q1_fit: probs must be ({info.levels},) summing to 1, got shape {probs.shape}")
    res.values["probs"] = probs

    def panel(ax):
        plot.hist_1d(train_x, info.levels, model_probs=probs, true_probs=data.true_distribution(exp.data).probs,
                     title="model vs data", ax=ax)

    run.save(kit.curves(res, exp, panel), "q1.png")
    run.finish(exp, res, probs=probs)
    return res.values
