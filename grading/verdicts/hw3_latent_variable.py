"""The grade of homework 3 (latent-variable models). Never released.

Components (the KL, the IWAE average, the categorical log-likelihood, the quantiser, the straight-through
estimator, the exact log-likelihood of a sigmoid belief net) are judged exactly against independent
computations on hidden inputs; training functions on their contract in quick mode. The judges compute
the expected values here with numpy / torch, and import nothing from the runners.
"""

from __future__ import annotations

import itertools

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
    levels_ok,
    losses_ok,
    quick_fit,
    shape_ok,
)

HIDDEN_SEED = 20261203
FORBIDDEN = ("deepul_helpers.models.latent",)


def _data(name, n_train=512, n_test=128):
    from deepul_helpers import data

    return data.load(name, "train")[:n_train], data.load(name, "test")[:n_test]


# ----------------------------------------------------------------------------- q1


def _q1_inputs(seed):
    rng = hidden_rng(seed, 1)
    b, z = int(rng.integers(3, 9)), int(rng.integers(1, 6))
    return rng.normal(0, 2, (b, z)).astype(np.float32), rng.normal(0, 1.5, (b, z)).astype(np.float32)


def probe_q1(ns, seed):
    out = {}
    mu, logvar = _q1_inputs(seed)
    attempt(out, "kl", lambda: {"kl": array(ns["gaussian_kl"](torch.from_numpy(mu), torch.from_numpy(logvar)),
                                            np.float64)})
    train_x, test_x = _data("gaussian_rotated")
    attempt(out, "fit", lambda: fit_outputs("fit", quick_fit(ns["q1_fit"], train_x, test_x, seed=seed),
                                            third="kl", dtype=np.float64))
    return out


def judge_q1(out, seed):
    c = Checks(out)
    mu, logvar = (v.astype(np.float64) for v in _q1_inputs(seed))
    if not c.raised("kl", "gaussian_kl"):
        c.check(1.0, close(out, "kl", 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar), atol=1e-5), "gaussian_kl: {why}")
    if not c.raised("fit", "q1_fit", " in quick mode"):
        c.check(1.0, losses_ok(out, "fit"), "q1_fit: {why}")
        kl = out.get("fit_kl")
        ok = isinstance(kl, np.ndarray) and kl.reshape(-1).shape == (2,) and kl.dtype.kind == "f" \
            and bool(np.all(np.isfinite(kl))) and bool(np.all(kl >= -1e-6))
        c.check(1.0, ok, "q1_fit: kl_per_dim must be 2 finite non-negative numbers (one per latent dimension)")
    return c.result()


# ----------------------------------------------------------------------------- q2


def _q2_inputs(seed):
    rng = hidden_rng(seed, 2)
    k, b = int(rng.integers(2, 30)), int(rng.integers(2, 8))
    log_w = rng.normal(-2000, 500, (k, b))  # far below exp's range: a naive log(mean(exp)) gives -inf
    d, levels = int(rng.integers(2, 20)), int(rng.integers(2, 18))
    logits = rng.normal(0, 3, (b, d, levels)).astype(np.float32)
    return log_w, logits, rng.integers(0, levels, (b, d))


def probe_q2(ns, seed):
    out = {}
    log_w, logits, x = _q2_inputs(seed)
    attempt(out, "iw", lambda: {"iw": array(ns["iwae_bound"](torch.from_numpy(log_w)), np.float64)})
    attempt(out, "cat", lambda: {"cat": array(ns["categorical_log_likelihood"](
        torch.from_numpy(logits), torch.from_numpy(x)), np.float64)})
    train_x, test_x = _data("digits", 256, 64)

    def fit():
        res = quick_fit(ns["q2_fit"], train_x, test_x, 17, seed=seed)
        return {**fit_outputs("fit", res, dtype=np.float64), "fit_iwae": float(res[2]),
                "fit_samples": array(res[3])}

    attempt(out, "fit", fit)
    return out


def judge_q2(out, seed):
    c = Checks(out)
    log_w, logits, x = _q2_inputs(seed)
    if not c.raised("iw", "iwae_bound"):
        m = log_w.max(0)
        want = m + np.log(np.exp(log_w - m).mean(0))
        # rtol 1e-6: what float32 resolves at log-weights of -2000 +- 500 (a float32 log-mean-exp is correct; it
        # failed 1e-9 at every seed); the mean of the log-weights is off by far more, exp-then-log by -inf
        c.check(1.0, close(out, "iw", want, atol=1e-6, rtol=1e-6), "iwae_bound: {why}")
    if not c.raised("cat", "categorical_log_likelihood"):
        lg = logits.astype(np.float64)
        logp = lg - lg.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        want = np.take_along_axis(logp, x[..., None], -1)[..., 0].sum(-1)
        c.check(1.0, close(out, "cat", want, atol=1e-3), "categorical_log_likelihood: {why}")
    if not c.raised("fit", "q2_fit", " in quick mode"):
        c.check(1.0, losses_ok(out, "fit"), "q2_fit: {why}")
        iw, test = out.get("fit_iwae"), out.get("fit_test")
        ok = isinstance(iw, float) and np.isfinite(iw) and isinstance(test, np.ndarray) and test.size \
            and 0 < iw <= float(test[-1]) + 0.05 and levels_ok(out.get("fit_samples"), (64, 8, 8, 1), 17)
        c.check(1.0, bool(ok), "q2_fit: the IWAE bound must be a positive number no looser than the test -ELBO, "
                "and the samples (64, 8, 8, 1) integers in 0..16")
    return c.result()


# ----------------------------------------------------------------------------- q3


def _q3_inputs(seed):
    rng = hidden_rng(seed, 3)
    k, d = int(rng.integers(3, 40)), int(rng.integers(1, 9))
    return rng.normal(0, 1, (2, 3, int(rng.integers(1, 5)), d)).astype(np.float32), \
        rng.normal(0, 1, (k, d)).astype(np.float32)


def probe_q3(ns, seed):
    out = {}
    z_e, book = _q3_inputs(seed)

    def quantize():
        z_q, idx = ns["quantize"](torch.from_numpy(z_e), torch.from_numpy(book))
        return {"zq": array(z_q, np.float64), "idx": array(idx)}

    def straight():
        ze = torch.from_numpy(z_e).requires_grad_(True)
        zq = torch.from_numpy(np.round(z_e * 2) / 2)
        g = torch.from_numpy(hidden_rng(seed, 3, 1).normal(size=z_e.shape).astype(np.float32))
        value = ns["straight_through"](ze, zq)
        (grad,) = torch.autograd.grad(value, ze, g)
        return {"st_value": array(value, np.float64), "st_grad": array(grad, np.float64)}

    attempt(out, "q", quantize)
    attempt(out, "st", straight)
    train_x, test_x = _data("digits", 256, 64)

    def fit():
        res = quick_fit(ns["q3_fit"], train_x, test_x, 17, seed=seed)
        return {**fit_outputs("fit", res, dtype=np.float64), "fit_bound": float(res[2]),
                "fit_used": float(res[3]), "fit_samples": array(res[4])}

    attempt(out, "fit", fit)
    return out


def judge_q3(out, seed):
    c = Checks(out)
    z_e, book = (v.astype(np.float64) for v in _q3_inputs(seed))
    if not c.raised("q", "quantize"):
        d2 = ((z_e[..., None, :] - book) ** 2).sum(-1)  # (..., K)
        idx = d2.argmin(-1)
        got = out.get("idx")
        ok = shape_ok(got, idx.shape, "iu") and bool(np.all((got >= 0) & (got < len(book))))
        if ok:  # a near-tie (float32 round-off) may pick either of the nearest vectors: not a lottery on the seed
            best = np.take_along_axis(d2, idx[..., None], -1)[..., 0]
            ok = bool(np.all(np.take_along_axis(d2, got[..., None].astype(np.int64), -1)[..., 0]
                             <= best + 1e-5 * (1 + best)))
            idx = got.astype(np.int64) if ok else idx
        c.check(0.5, ok, "quantize: the indices are not those of the nearest codebook vectors")
        c.check(0.5, close(out, "zq", book[idx], atol=1e-6), "quantize: z_q: {why}")
    if not c.raised("st", "straight_through"):
        g = hidden_rng(seed, 3, 1).normal(size=z_e.shape).astype(np.float32).astype(np.float64)
        c.check(0.5, close(out, "st_value", np.round(z_e.astype(np.float32) * 2) / 2, atol=1e-6),
                "straight_through: its value must be z_q ({why})")
        c.check(0.5, close(out, "st_grad", g, atol=1e-6), "straight_through: the gradient w.r.t. z_e must be "
                "passed unchanged ({why})")
    if not c.raised("fit", "q3_fit", " in quick mode"):
        c.check(1.0, losses_ok(out, "fit", decreasing=False), "q3_fit: {why}")
        b, used = out.get("fit_bound"), out.get("fit_used")
        ok = isinstance(b, float) and np.isfinite(b) and b > 0 and isinstance(used, float) and 0 < used <= 1 \
            and levels_ok(out.get("fit_samples"), (64, 8, 8, 1), 17)
        c.check(1.0, bool(ok), "q3_fit: the bound must be a positive number (nats/dim), codes_used in (0, 1], "
                "the samples (64, 8, 8, 1) integers in 0..16")
    return c.result()


# ----------------------------------------------------------------------------- q4


def _q4_inputs(seed):
    rng = hidden_rng(seed, 4)
    latent, d, b = int(rng.integers(1, 6)), int(rng.integers(2, 7)), int(rng.integers(2, 9))
    x = rng.integers(0, 2, (b, d)).astype(np.float32)
    return x, rng.normal(0, 1, latent).astype(np.float32), rng.normal(0, 2, (d, latent)).astype(np.float32), \
        rng.normal(0, 1, d).astype(np.float32)


def probe_q4(ns, seed):
    out = {}
    x, a, w, b = _q4_inputs(seed)
    attempt(out, "lp", lambda: {"lp": array(ns["sbn_log_prob"](*(torch.from_numpy(v) for v in (x, a, w, b))),
                                            np.float64)})
    train_x, test_x = _data("bars", 400, 128)

    def fit():
        res = quick_fit(ns["q4_fit"], train_x, test_x, seed=seed)
        return {**fit_outputs("fit", res, dtype=np.float64), "fit_samples": array(res[2])}

    attempt(out, "fit", fit)
    return out


def judge_q4(out, seed):
    c = Checks(out)
    x, a, w, b = (v.astype(np.float64) for v in _q4_inputs(seed))
    if not c.raised("lp", "sbn_log_prob"):
        sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
        total = np.zeros(len(x))
        for z in itertools.product((0.0, 1.0), repeat=len(a)):  # the literal sum over every configuration
            z = np.array(z)
            pz = np.prod(np.where(z == 1, sig(a), 1 - sig(a)))
            px = np.prod(np.where(x == 1, sig(w @ z + b), 1 - sig(w @ z + b)), axis=1)
            total += pz * px
        c.check(1.0, close(out, "lp", np.log(total), atol=1e-4), "sbn_log_prob: {why}")
    if not c.raised("fit", "q4_fit", " in quick mode"):
        c.check(1.0, losses_ok(out, "fit", decreasing=False), "q4_fit: {why}")
        from deepul_helpers import data

        test = out.get("fit_test")
        # an exact NLL on 128 test images stays above the entropy up to that sample's noise
        ok = isinstance(test, np.ndarray) and test.size and bool(np.all(test >= data.info("bars").entropy - 0.1)) \
            and levels_ok(out.get("fit_samples"), (64, 4, 4, 1), 2)
        c.check(1.0, bool(ok), "q4_fit: the test losses must be exact NLLs (never far below the data's entropy) "
                "and the samples (64, 4, 4, 1) integers in 0..1")
    return c.result()


QUESTIONS = [
    Question(grade_id="q1_tests", points=3, requires=("gaussian_kl", "q1_fit"), forbidden=FORBIDDEN,
             probe=probe_q1, judge=judge_q1, timeout_s=120),
    Question(grade_id="q2_tests", points=4, requires=("iwae_bound", "categorical_log_likelihood", "q2_fit"),
             forbidden=FORBIDDEN, probe=probe_q2, judge=judge_q2, timeout_s=120),
    Question(grade_id="q3_tests", points=4, requires=("quantize", "straight_through", "q3_fit"),
             forbidden=FORBIDDEN, probe=probe_q3, judge=judge_q3, timeout_s=120),
    Question(grade_id="q4_tests", points=3, requires=("sbn_log_prob", "q4_fit"), forbidden=FORBIDDEN,
             probe=probe_q4, judge=judge_q4, timeout_s=120),
]
