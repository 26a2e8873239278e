"""The grade of homework 4 (implicit models). Never released.

Each ``probe_qk`` runs in the sandbox beside the student's code and returns plain data; each ``judge_qk``
runs in the trusted grader, rebuilds the same hidden inputs, recomputes the expected values with the
reference implementations (``deepul_helpers.models.implicit``, imported lazily in the judges) and awards
points per sub-check. Training functions run in quick mode and are judged on their contract.
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
    hidden_rng,
    levels_ok,
    quick_fit,
    shape_ok,
)

HIDDEN_SEED = 20261204


def _logits(seed, part):
    rng = hidden_rng(seed, 1, part)
    n = int(rng.integers(5, 40))
    return rng.normal(0, 4, n).astype(np.float32), rng.normal(0, 4, n).astype(np.float32)


def _data(name, split, n):
    from deepul_helpers import data

    return data.load(name, split)[:n]


def _is_series(x) -> bool:
    return isinstance(x, np.ndarray) and x.ndim == 1 and x.size >= 1 and x.dtype.kind == "f"


# ----------------------------------------------------------------------------- question 1


def probe_q1(ns, seed):
    out = {}
    real, fake = (torch.from_numpy(v) for v in _logits(seed, 0))
    attempt(out, "d", lambda: {"d": array(ns["d_loss"](real, fake), np.float64).reshape(-1)})
    attempt(out, "mm", lambda: {"mm": array(ns["g_loss_minimax"](fake), np.float64).reshape(-1)})
    attempt(out, "ns", lambda: {"ns": array(ns["g_loss_nonsaturating"](fake), np.float64).reshape(-1)})

    def fit():
        d, g, samples, grad = quick_fit(ns["q1_fit"], _data("mixture_1d", "train", 2000), "nonsaturating", seed=seed)
        return {"fit_d": array(d, np.float64).reshape(-1), "fit_g": array(g, np.float64).reshape(-1),
                "fit_samples": array(samples), "fit_grad": float(grad)}

    attempt(out, "fit", fit)
    return out


def judge_q1(out, seed):
    from deepul_helpers.models import implicit

    c = Checks(out)
    real, fake = (torch.from_numpy(v).double() for v in _logits(seed, 0))
    if not c.raised("d", "d_loss"):
        c.check(1.0, close(out, "d", [float(implicit.minimax_d_loss(real, fake))], atol=1e-5), "d_loss: {why}")
    if not c.raised("mm", "g_loss_minimax"):
        c.check(1.0, close(out, "mm", [float(implicit.minimax_g_loss(fake))], atol=1e-5), "g_loss_minimax: {why}")
    if not c.raised("ns", "g_loss_nonsaturating"):
        c.check(1.0, close(out, "ns", [float(implicit.nonsaturating_g_loss(fake))], atol=1e-5),
                "g_loss_nonsaturating: {why}")
    if not c.raised("fit", "q1_fit", " in quick mode"):
        d, g, s, grad = out.get("fit_d"), out.get("fit_g"), out.get("fit_samples"), out.get("fit_grad")
        ok = (_is_series(d) and _is_series(g) and len(d) == len(g) and np.all(np.isfinite(d))
              and isinstance(s, np.ndarray) and s.shape == (5000, 1) and s.dtype == np.float32
              and bool(np.all(np.isfinite(s))) and isinstance(grad, float) and np.isfinite(grad) and grad > 0)
        c.check(1.0, ok, "q1_fit: expected (d_losses, g_losses) of one length, finite, samples (5000, 1) float32 "
                "and a positive grad_at_start, in quick mode")
    return c.result()


# ----------------------------------------------------------------------------- question 2


def _q2_inputs(seed):
    rng = hidden_rng(seed, 2, 0)
    b, d, h = int(rng.integers(3, 12)), int(rng.integers(2, 5)), int(rng.integers(3, 9))
    real, fake, eps = rng.normal(size=(b, d)), rng.normal(size=(b, d)), rng.random(b)
    w1, b1, w2 = rng.normal(size=(d, h)), rng.normal(size=h), rng.normal(size=h)
    out, k = int(rng.integers(3, 9)), int(rng.integers(2, 4))
    weight = rng.normal(size=(out, int(rng.integers(2, 5)), k, k))
    u = rng.normal(size=out)
    return [torch.from_numpy(v) for v in (real, fake, eps, w1, b1, w2, weight, u / np.linalg.norm(u))]


def _critic(w1, b1, w2):
    return lambda x: torch.tanh(x @ w1 + b1) @ w2  # (B, D) -> (B,), a smooth critic with a varying gradient


def probe_q2(ns, seed):
    out = {}
    real, fake, eps, w1, b1, w2, weight, u = _q2_inputs(seed)
    attempt(out, "gp", lambda: {"gp": array(ns["gradient_penalty"](_critic(w1, b1, w2), real, fake, eps),
                                            np.float64).reshape(-1)})

    def sn():
        normed, sigma, u_new = ns["spectral_normalize"](weight, u, 1000)
        return {"sn_w": array(normed, np.float64), "sn_sigma": array(sigma, np.float64).reshape(-1),
                "sn_u": array(u_new, np.float64).reshape(-1)}

    attempt(out, "sn", sn)

    def fit():
        d, samples = quick_fit(ns["q2_fit"], _data("gaussians_25_narrow", "train", 2000), seed=seed)
        return {"fit_d": array(d, np.float64).reshape(-1), "fit_samples": array(samples)}

    attempt(out, "fit", fit)
    return out


def judge_q2(out, seed):
    from deepul_helpers.models import implicit

    c = Checks(out)
    real, fake, eps, w1, b1, w2, weight, _ = _q2_inputs(seed)
    if not c.raised("gp", "gradient_penalty"):
        want, _ = implicit.gradient_penalty(_critic(w1, b1, w2), real, fake, eps)
        c.check(1.0, close(out, "gp", [float(want.detach())], atol=1e-6), "gradient_penalty: {why}")
    if not c.raised("sn", "spectral_normalize"):
        mat = weight.reshape(weight.shape[0], -1)
        left = torch.linalg.svd(mat)[0][:, 0].numpy()
        sigma = float(torch.linalg.svdvals(mat)[0])
        u = out.get("sn_u")
        ok_u = isinstance(u, np.ndarray) and u.shape == left.shape and abs(abs(float(u @ left)) - 1) < 1e-4
        ok = (close(out, "sn_sigma", [sigma], atol=1e-5)[0] and close(out, "sn_w", (weight / sigma).numpy(),
                                                                        atol=1e-5)[0] and ok_u)
        c.check(1.0, ok, "spectral_normalize: sigma, weight / sigma or u differ from the converged power iteration")
    if not c.raised("fit", "q2_fit", " in quick mode"):
        d, s = out.get("fit_d"), out.get("fit_samples")
        ok = _is_series(d) and np.all(np.isfinite(d)) and shape_ok(s, (2500, 2), "f") and s.dtype == np.float32
        c.check(1.0, ok, "q2_fit: expected finite d_losses (one per iteration) and samples (2500, 2) float32, "
                "in quick mode")
    return c.result()


# ----------------------------------------------------------------------------- question 3


def probe_q3(ns, seed):
    out = {}

    def fit():
        d, samples = quick_fit(ns["q3_fit"], _data("digits", "train", 512), seed=seed)
        return {"fit_d": array(d, np.float64).reshape(-1), "fit_samples": array(samples)}

    attempt(out, "fit", fit)
    return out


def judge_q3(out, seed):
    c = Checks(out)
    if not c.raised("fit", "q3_fit", " in quick mode"):
        d = out.get("fit_d")
        c.check(1.0, _is_series(d) and bool(np.all(np.isfinite(d))),
                "q3_fit: d_losses must be finite, one per iteration")
        c.check(1.0, levels_ok(out.get("fit_samples"), (1000, 8, 8, 1), 17),
                "q3_fit: samples must be (1000, 8, 8, 1) integer levels in 0..16")
    return c.result()


# ----------------------------------------------------------------------------- question 4

_EXTENT, _GRID = (-4.0, 4.0, -4.0, 4.0), 24


def _q4_inputs(seed):
    rng = hidden_rng(seed, 4, 0)
    m, n, d = int(rng.integers(3, 15)), int(rng.integers(3, 15)), int(rng.integers(1, 4))
    bw = tuple(float(b) for b in rng.uniform(0.3, 3.0, int(rng.integers(1, 4))))
    return torch.from_numpy(rng.normal(size=(m, d))), torch.from_numpy(rng.normal(0.5, 1.2, size=(n, d))), bw


def probe_q4(ns, seed):
    out = {}
    x, y, bw = _q4_inputs(seed)
    attempt(out, "mmd", lambda: {"mmd": array(ns["mmd2_unbiased"](x, y, bw), np.float64).reshape(-1)})

    def fit():
        tr, te, table = quick_fit(ns["q4_fit"], _data("moons", "train", 2000), _data("moons", "test", 256),
                                  _EXTENT, _GRID, seed=seed)
        return {"fit_train": array(tr, np.float64).reshape(-1), "fit_test": array(te, np.float64).reshape(-1),
                "fit_table": array(table, np.float64)}

    attempt(out, "fit", fit)
    return out


def judge_q4(out, seed):
    from deepul_helpers.models import implicit

    c = Checks(out)
    x, y, bw = _q4_inputs(seed)
    if not c.raised("mmd", "mmd2_unbiased"):
        c.check(1.0, close(out, "mmd", [float(implicit.mmd2_unbiased(x, y, bw))], atol=1e-6), "mmd2_unbiased: {why}")
    if not c.raised("fit", "q4_fit", " in quick mode"):
        tr, te, table = out.get("fit_train"), out.get("fit_test"), out.get("fit_table")
        c.check(1.0, _is_series(tr) and _is_series(te) and len(te) >= 2 and bool(np.all(np.isfinite(te))),
                "q4_fit: expected finite train losses and test losses (before training and after each epoch)")
        ok = shape_ok(table, (_GRID, _GRID), "f")
        if ok:
            area = (_EXTENT[1] - _EXTENT[0]) * (_EXTENT[3] - _EXTENT[2]) / _GRID**2
            test = _data("moons", "test", 256).astype(np.float64)
            i = np.clip(np.floor((test[:, 0] - _EXTENT[0]) / (_EXTENT[1] - _EXTENT[0]) * _GRID), 0, _GRID - 1)
            j = np.clip(np.floor((test[:, 1] - _EXTENT[2]) / (_EXTENT[3] - _EXTENT[2]) * _GRID), 0, _GRID - 1)
            nll = float(-table[i.astype(int), j.astype(int)].mean() / 2)
            ok = abs(float(np.exp(table).sum()) * area - 1) < 1e-3 and _is_series(te) and abs(nll - te[-1]) < 1e-3
        c.check(1.0, ok, "q4_fit: log_density must be (grid, grid), normalised on the grid, and give the last "
                "test loss as the NLL of the test data")
    return c.result()


_FORBID = ("deepul_helpers.models.implicit",)
QUESTIONS = [
    Question(grade_id="q1_tests", points=4, requires=("d_loss", "g_loss_minimax", "g_loss_nonsaturating", "q1_fit"),
             forbidden=_FORBID, probe=probe_q1, judge=judge_q1, timeout_s=120),
    Question(grade_id="q2_tests", points=3, requires=("gradient_penalty", "spectral_normalize", "q2_fit"),
             forbidden=_FORBID, probe=probe_q2, judge=judge_q2, timeout_s=120),
    Question(grade_id="q3_tests", points=2, requires=("q3_fit",), forbidden=_FORBID, probe=probe_q3, judge=judge_q3,
             timeout_s=120),
    Question(grade_id="q4_tests", points=3, requires=("mmd2_unbiased", "q4_fit"), forbidden=_FORBID,
             probe=probe_q4, judge=judge_q4, timeout_s=120),
]
