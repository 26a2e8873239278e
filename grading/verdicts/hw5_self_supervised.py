"""The grade of homework 5 (self-supervised learning). Never released.

Components (InfoNCE, NT-Xent, MoCo's momentum update, queue and loss) are judged exactly against the
reference on hidden inputs; augmentations and training functions on their contract in quick mode
(shapes, dtypes, ranges, reproducibility, finite losses that go down, features of the right shape).
The probes import nothing from the reference; the judges import it lazily.
"""

from __future__ import annotations

import math

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
    shape_ok,
)

HIDDEN_SEED = 20261205
Q1_N = 32  # candidates of the quick-mode InfoNCE bound


def _data(name, n_train, n_test):
    from deepul_helpers import data

    return data.load(name, "train")[:n_train], data.load(name, "test")[:n_test]


def _features_ok(out, n) -> bool:
    """Did the student's encode return finite float features (n, F)?"""
    f = out.get("fit_features")
    return isinstance(f, np.ndarray) and f.ndim == 2 and f.shape[0] == n and f.dtype.kind == "f" \
        and bool(np.all(np.isfinite(f)))


# ----------------------------------------------------------------------------- question 1


def _q1_scores(seed):
    rng = hidden_rng(seed, 1)
    n = int(rng.integers(3, 20))
    return (rng.normal(0, 2, (n, n)) + np.diag(rng.normal(2, 1, n))).astype(np.float32)


def probe_q1(ns, seed):
    out = {}
    s = _q1_scores(seed)
    attempt(out, "nce", lambda: {"nce": array(ns["info_nce"](torch.from_numpy(s))).reshape(-1)})
    train_x, test_x = _data("gaussian_pairs", 2000, 256)
    attempt(out, "fit", lambda: fit_outputs("fit", quick_fit(ns["q1_fit"], train_x, test_x, Q1_N, seed=seed),
                                            third="bound"))
    return out


def judge_q1(out, seed):
    from deepul_helpers.models.selfsupervised import info_nce

    c = Checks(out)
    if not c.raised("nce", "info_nce"):
        want = info_nce(torch.from_numpy(_q1_scores(seed)).double()).numpy().reshape(1)
        c.check(1.0, close(out, "nce", want, atol=1e-5), "info_nce: {why}")
    if not c.raised("fit", "q1_fit", " in quick mode"):
        c.check(1.0, losses_ok(out, "fit"), "q1_fit: {why}")
        bound, test = out.get("fit_bound"), out.get("fit_test")
        ok = (isinstance(bound, np.ndarray) and bound.size == 1 and bound.dtype.kind in "biuf"
              and isinstance(test, np.ndarray) and test.size >= 1 and bool(np.isfinite(bound).all()))
        b = float(bound.reshape(-1)[0]) if ok else math.nan
        ok = ok and abs(b - (math.log(Q1_N) - float(test[-1]))) < 1e-4 and b <= math.log(Q1_N) + 1e-6
        c.check(1.0, ok, "q1_fit: bound must be log(batch_size) - the last test loss (and at most log N)")
    return c.result()


# ----------------------------------------------------------------------------- question 2


def _q2_inputs(seed):
    rng = hidden_rng(seed, 2)
    b, d = int(rng.integers(3, 10)), int(rng.integers(2, 9))
    t = float(rng.choice([0.1, 0.5, 1.0]))
    return rng.normal(0, 1, (b, d)).astype(np.float32), rng.normal(0, 1, (b, d)).astype(np.float32), t


def _q2_images(seed):
    return hidden_rng(seed, 2, 1).random((6, 1, 8, 8)).astype(np.float32)


def _views(ns, seed):
    x = torch.from_numpy(_q2_images(seed))
    s = int(hidden_rng(seed, 2, 2).integers(0, 2**31))
    aug = ns["augment"]
    a, b = aug(x.clone(), torch.Generator().manual_seed(s)), aug(x.clone(), torch.Generator().manual_seed(s))
    other = aug(x.clone(), torch.Generator().manual_seed(s + 1))
    return {"aug_a": array(a), "aug_b": array(b), "aug_other": array(other)}


def _features(ns, seed):
    train_x, test_x = _data("digits", 512, 128)
    res = quick_fit(ns["q2_fit"], train_x, test_x, seed=seed)
    return {**fit_outputs("fit", res), "fit_features": array(res[2](test_x[:50]))}


def probe_q2(ns, seed):
    out = {}
    z1, z2, t = _q2_inputs(seed)
    attempt(out, "ntx", lambda: {"ntx": array(ns["nt_xent"](torch.from_numpy(z1), torch.from_numpy(z2), t)
                                              ).reshape(-1)})
    attempt(out, "aug", lambda: _views(ns, seed))
    attempt(out, "fit", lambda: _features(ns, seed))
    return out


def judge_q2(out, seed):
    from deepul_helpers.models.selfsupervised import nt_xent

    c = Checks(out)
    if not c.raised("ntx", "nt_xent"):
        z1, z2, t = _q2_inputs(seed)
        want = nt_xent(torch.from_numpy(z1).double(), torch.from_numpy(z2).double(), t).numpy().reshape(1)
        c.check(1.5, close(out, "ntx", want, atol=1e-5), "nt_xent: {why}")
    if not c.raised("aug", "augment"):
        a, b, other = out.get("aug_a"), out.get("aug_b"), out.get("aug_other")
        x = _q2_images(seed)
        ok = all(shape_ok(v, x.shape, "f") and v.dtype == np.float32 and v.min() >= 0 and v.max() <= 1
                 for v in (a, b, other))
        c.check(0.5, ok, "augment: views must keep the shape, dtype (float32 here) and the range [0, 1]")
        c.check(0.5, ok and np.array_equal(a, b) and not np.array_equal(a, other) and not np.array_equal(a, x),
                "augment: the same generator state must give the same views, another state other views, "
                "and a view must differ from the image")
    if not c.raised("fit", "q2_fit", " in quick mode"):
        c.check(1.0, losses_ok(out, "fit"), "q2_fit: {why}")
        c.check(0.5, _features_ok(out, 50), "q2_fit: encode(x) must return finite float features (N, F) for N images")
    return c.result()


# ----------------------------------------------------------------------------- question 3


def _q3_inputs(seed):
    rng = hidden_rng(seed, 3)
    d_in, d_out = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    m = float(rng.uniform(0.5, 0.999))
    params = [rng.normal(0, 1, s).astype(np.float64) for s in ((d_out, d_in), (d_out,), (d_out, d_in), (d_out,))]
    size, dim = int(rng.integers(3, 10)), int(rng.integers(1, 4))
    batches = [int(b) for b in rng.integers(1, 2 * size, 4)]
    keys = [rng.normal(0, 1, (b, dim)).astype(np.float64) for b in batches]
    b, m_q, d = int(rng.integers(2, 6)), int(rng.integers(1, 12)), int(rng.integers(2, 6))
    qkq = [rng.normal(0, 1, s).astype(np.float32) for s in ((b, d), (b, d), (m_q, d))]
    return m, params, size, dim, keys, qkq, float(rng.choice([0.07, 0.2, 0.5]))


def _linear(w, b):
    layer = torch.nn.Linear(w.shape[1], w.shape[0]).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
    return layer


def _momentum(ns, seed):
    m, p, *_ = _q3_inputs(seed)
    target, online = _linear(p[0], p[1]), _linear(p[2], p[3])
    ns["momentum_update"](target, online, m)
    return {"mom_w": array(target.weight), "mom_b": array(target.bias)}


def _queue(ns, seed):
    _, _, size, dim, keys, *_ = _q3_inputs(seed)
    queue, ptr, ptrs, states = torch.zeros(size, dim, dtype=torch.float64), 0, [], []
    for k in keys:
        ptr = int(ns["enqueue"](queue, ptr, torch.from_numpy(k)))
        ptrs.append(ptr)
        states.append(array(queue).copy())
    return {"queue_states": states, "queue_ptrs": np.array(ptrs, dtype=np.int64)}


def probe_q3(ns, seed):
    out = {}
    attempt(out, "mom", lambda: _momentum(ns, seed))
    attempt(out, "queue", lambda: _queue(ns, seed))
    *_, qkq, t = _q3_inputs(seed)
    attempt(out, "loss", lambda: {"loss": array(ns["moco_loss"](*(torch.from_numpy(a) for a in qkq), t)).reshape(-1)})
    return out


def judge_q3(out, seed):
    from deepul_helpers.models.selfsupervised import KeyQueue, queue_info_nce

    c = Checks(out)
    m, p, size, dim, keys, qkq, t = _q3_inputs(seed)
    if not c.raised("mom", "momentum_update"):
        ok_w = close(out, "mom_w", m * p[0] + (1 - m) * p[2], atol=1e-9, rtol=1e-9)
        ok_b = close(out, "mom_b", m * p[1] + (1 - m) * p[3], atol=1e-9, rtol=1e-9)
        c.check(1.0, (ok_w[0] and ok_b[0], ok_w[1] or ok_b[1]), "momentum_update: {why}")
    if not c.raised("queue", "enqueue"):
        # The contract: after each call, torch.roll(queue, -ptr, 0) lists the keys from oldest to newest (the
        # queue's newest M keys). Where a batch larger than the queue leaves them is the student's choice
        # (the reference writes its last M keys from ptr; writing one key at a time wraps over itself and
        # moves ptr by B): judged by that order, not by the reference's layout (a lottery on B > M before).
        ref = KeyQueue(size, dim).double()
        ref.keys.zero_()
        states, ptrs = out.get("queue_states"), out.get("queue_ptrs")
        ok, why = (isinstance(states, list) and len(states) == len(keys) and isinstance(ptrs, np.ndarray)
                   and ptrs.shape == (len(keys),)), "expected one queue state and one int pointer per call"
        for i, k in enumerate(keys if ok else []):
            ref.push(torch.from_numpy(k))
            if not 0 <= int(ptrs[i]) < size:
                ok, why = False, "the returned pointer must be an int in 0..M-1 (the row of the oldest key)"
                break
            ok, why = close({"q": np.roll(states[i], -int(ptrs[i]), 0) if isinstance(states[i], np.ndarray)
                             else None}, "q", ref.in_order().numpy(), atol=1e-9, rtol=1e-9)
            if not ok:
                why = f"after call {i + 1}, torch.roll(queue, -ptr, 0) is not the keys from oldest to newest ({why})"
                break
        c.check(1.0, (ok, why), "enqueue: {why}")
    if not c.raised("loss", "moco_loss"):
        want = queue_info_nce(*(torch.from_numpy(a).double() for a in qkq), t).numpy().reshape(1)
        c.check(1.0, close(out, "loss", want, atol=1e-5), "moco_loss: {why}")
    return c.result()


# ----------------------------------------------------------------------------- question 4


def _cpc(ns, seed):
    train_x, test_x = _data("signals", 512, 128)
    res = quick_fit(ns["q4_fit"], train_x, test_x, seed=seed)
    return {**fit_outputs("fit", res), "fit_features": array(res[2](test_x[:20]))}


def probe_q4(ns, seed):
    out = {}
    attempt(out, "fit", lambda: _cpc(ns, seed))
    return out


def judge_q4(out, seed):
    c = Checks(out)
    if not c.raised("fit", "q4_fit", " in quick mode"):
        c.check(2.0, losses_ok(out, "fit"), "q4_fit: {why}")
        c.check(1.0, _features_ok(out, 20), "q4_fit: encode(x) must return finite float features (N, F) for N signals")
    return c.result()


SSL = "deepul_helpers.models.selfsupervised"
QUESTIONS = [
    Question(grade_id="q1_tests", points=3, requires=("info_nce", "q1_fit"), forbidden=(f"{SSL}.infonce",),
             probe=probe_q1, judge=judge_q1, timeout_s=120),
    Question(grade_id="q2_tests", points=4, requires=("nt_xent", "augment", "q2_fit"),
             forbidden=(f"{SSL}.simclr", "deepul_helpers.augment"), probe=probe_q2, judge=judge_q2, timeout_s=180),
    Question(grade_id="q3_tests", points=3, requires=("momentum_update", "enqueue", "moco_loss"),
             forbidden=(f"{SSL}.moco",), probe=probe_q3, judge=judge_q3, timeout_s=60),
    Question(grade_id="q4_tests", points=3, requires=("q4_fit",), forbidden=(f"{SSL}.cpc",),
             probe=probe_q4, judge=judge_q4, timeout_s=180),
]
