"""Runners of homework 5 (self-supervised learning): InfoNCE on correlated Gaussians, SimCLR on
``digits``, MoCo's components (checked in the notebook, no runner), CPC on ``signals``.

Every runner loads the data, calls the student's function through the kit (timed, its return
contract checked), plots, prints the final test loss next to ``EXPECTED`` and, for the encoders,
the accuracy of a linear probe with 10 labels per class next to ``EXPECTED_PROBE``, and records.
The contrastive losses are in nats (one InfoNCE cross-entropy per example, not per dimension).
"""

from __future__ import annotations

import math

import numpy as np

from deepul_helpers import data
from deepul_helpers.homework import kit
from deepul_helpers.metrics import probes

ASSIGNMENT = "hw5_self_supervised"
Q1_BATCH = 128  # N: the candidates of the InfoNCE bound in question 1
# Reference solution (solutions/hw5_self_supervised/hw5.ipynb), full mode, seed 0. Seconds: wall-clock of
# each run in one full notebook run on the shared 2-core CPU under heavy load (load average ~12-18; CPU
# seconds of q4 alone: 11 s); an idle machine takes several times less.
EXPECTED = kit.table(
    kit.Expected("q1", "gaussian_pairs", loss=1.450, tol=0.25, seconds=10, variant="InfoNCE, N = 128",
                 unit="nats/example"),
    kit.Expected("q2", "digits", loss=4.382, tol=0.3, seconds=124, variant="SimCLR NT-Xent, batch 256",
                 unit="nats/example"),
    kit.Expected("q4", "signals", loss=2.119, tol=0.3, seconds=63, variant="CPC, 4 steps ahead, batch 64",
                 unit="nats/example"),
)
# Linear-probe accuracy with 10 labels per class (mean of 3 draws) of the reference, full mode, seed 0
# (measured 0.932 and 0.837), and the tolerance of a correct solution.
EXPECTED_PROBE = {"q2": (0.93, 0.03), "q4": (0.84, 0.05)}


def _probe_line(run, key: str, question: str, name: str, encode, labelled: str) -> float:
    """Linear probe with 10 labels per class on the student's frozen features; printed and returned."""
    x, y = data.load(labelled, "train", seed=run.seed, labels=True)
    xt, yt = data.load(labelled, "test", seed=run.seed, labels=True)
    if run.quick:
        x, y = x[:1000], y[:1000]
    f, ft = (kit.to_numpy(encode(a), f"{name}'s encode") for a in (x, xt))
    if f.ndim != 2 or ft.shape[0] != len(xt) or f.shape[0] != len(x):
        raise ValueError(f"{name}: encode(x) must return features (N, F) for images/signals (N, ...), got {f.shape}")
    acc = probes.probe(f.astype(np.float32), y, ft.astype(np.float32), yt, labels_per_class=(10,), seed=run.seed)[0]
    want, tol = EXPECTED_PROBE[question]
    line = (f"{key}: linear probe, 10 labels per class: {100 * acc['mean']:.1f}% (± {100 * acc['std']:.1f} over "
            f"3 draws); expected {100 * want:.0f}% ± {100 * tol:.0f} (reference, full mode)")
    if run.quick:
        line += "  [quick mode: training was cut short, compare only after a full run]"
    elif acc["mean"] < want - tol:
        line += "  <-- below the expected accuracy by more than its tolerance"
    elif acc["mean"] > want + tol:
        line += "  (above the reference by more than its tolerance: a better representation)"
    print(line)
    return acc["mean"]


def run_q1(q1_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 1: ``q1_fit(train_pairs, test_pairs, batch_size, quick=, seed=, device=)`` on
    ``gaussian_pairs`` ((N, 2, 5) float32) returns ``(train_losses, test_losses, bound)``: InfoNCE
    losses in nats and the bound log(batch_size) - final test loss on I(x; y)."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    exp = EXPECTED["q1/gaussian_pairs/InfoNCE, N = 128"]
    train_x, test_x = run.splits(exp.data)
    res = run.call(q1_fit, train_x, test_x, Q1_BATCH, returns=("train_losses", "test_losses", "bound"))
    bound, cap = float(res["bound"]), math.log(Q1_BATCH)
    true_mi = data.true_distribution(exp.data).mutual_information
    if not math.isfinite(bound) or abs(bound - (cap - res.test[-1])) > 1e-3:
        raise ValueError(f"q1_fit: bound must be log(batch_size) - the last test loss = {cap - res.test[-1]:.4f}, "
                         f"got {bound}")
    res.values["bound"] = bound

    def panel(ax):
        ax.bar(["InfoNCE bound", "true I", "log N"], [bound, true_mi, cap], color=["C0", "C3", "0.5"])
        ax.set_ylabel("nats")
        ax.set_title(f"I(x; y) >= {bound:.2f} nats with N = {Q1_BATCH}")

    run.save(kit.curves(res, None, panel, title="InfoNCE on gaussian_pairs (nats)"), "q1.png")
    print(f"{exp.key}: final test InfoNCE {res.test[-1]:.4f} nats; expected {exp.loss:.3f} ± {exp.tol:.3f} "
          f"(reference, full mode). Bound {bound:.3f} nats <= log N = {cap:.3f}; true I = {true_mi:.3f}")
    run.record(exp.key, train_losses=res.train, test_losses=res.test, seconds=res.seconds, bound=bound)
    return res.values


def _encoder_question(run, exp, question, fn, name, labelled):
    train_x, test_x = run.splits(exp.data)
    res = run.call(fn, train_x, test_x, returns=("train_losses", "test_losses", "encode"))
    if not callable(res["encode"]):
        raise TypeError(f"{name}: the third value must be a function encode(x) -> features (N, F)")
    acc = _probe_line(run, exp.key, question, name, res["encode"], labelled)
    res.values["probe_accuracy"] = acc
    run.save(kit.curves(res, None, title=f"{exp.data}: {exp.variant} (nats)"), f"{question}.png")
    print(f"{exp.key}: final test loss {res.test[-1]:.4f} nats; expected {exp.loss:.3f} ± {exp.tol:.3f} "
          f"(reference, full mode, {exp.took} on a 2-core CPU)")
    run.record(exp.key, train_losses=res.train, test_losses=res.test, seconds=res.seconds, probe_accuracy=acc)
    return res.values


def run_q2(q2_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 2: ``q2_fit(train_x, test_x, quick=, seed=, device=)`` on ``digits`` (NHWC uint8, 17 levels)
    returns ``(train_losses, test_losses, encode)``: NT-Xent losses (nats) and ``encode(x) -> (N, F)``."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    return _encoder_question(run, EXPECTED["q2/digits/SimCLR NT-Xent, batch 256"], "q2", q2_fit, "q2_fit", "digits")


def run_q4(q4_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 4: ``q4_fit(train_x, test_x, quick=, seed=, device=)`` on ``signals`` ((N, 256) int64 levels)
    returns ``(train_losses, test_losses, encode)``: CPC losses (nats) and ``encode(x) -> (N, F)``; the
    probe predicts the frequency band of the dominant sine."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    return _encoder_question(run, EXPECTED["q4/signals/CPC, 4 steps ahead, batch 64"], "q4", q4_fit, "q4_fit",
                             "signals")
