"""The grade of homework 1 (autoregressive models). Never released to students.

Each question's ``probe`` runs beside the student's code in the sandbox: it calls the student's
functions on hidden inputs made from the seed and returns plain data. Each ``judge`` runs in the
trusted grader: it rebuilds the same hidden inputs, recomputes the expected values with the
reference implementations (``deepul_helpers.models.autoregressive``) or, for attention, with an
independent float64 computation, and awards partial credit per sub-check, with messages that name
the check but not the inputs.

Components (masks, attention) are judged exactly (to float round-off), the logistic-mixture
log-probabilities by the probabilities they give (``Q1_P_ATOL``, ``Q1_P_RTOL``: what float32 resolves);
training functions are called in quick mode and judged on their contract: shapes, finiteness,
a test loss that went down, a reported loss that is the model's own NLL (question 1), samples of
the right shape, dtype and range, KV-cache sampling equal to naive sampling (question 4).

The probes import nothing from ``deepul_helpers.models`` (the sandbox would report the import as
the student's); the judges import the reference lazily.
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
    levels_ok,
    losses_ok,
    quick_fit,
)

HIDDEN_SEED = 20261124
AR = "deepul_helpers.models.autoregressive"


def _digits(seed, question):
    """A hidden draw of 512 training and 256 test images of ``digits``, and its levels."""
    from deepul_helpers import data

    x = data.load("digits", "train")
    idx = hidden_rng(seed, question, 1).permutation(len(x))
    return x[idx[:512]], x[idx[512:768]], data.info("digits").levels


# ----------------------------------------------------------------------------- question 1


def _q1_inputs(seed):
    """Moderate parameters with a batch shape (6, 5) and 3 components, and an extreme case."""
    rng = hidden_rng(seed, 1, 0)
    levels = int(rng.integers(5, 60))
    x = rng.integers(0, levels, size=(6, 5))
    w = rng.normal(0, 1, (6, 5, 3))
    mu = rng.uniform(-3, levels + 3, (6, 5, 3))
    ls = rng.uniform(-1.5, 2.5, (6, 5, 3))
    moderate = (x, w.astype(np.float32), mu.astype(np.float32), ls.astype(np.float32), levels)
    ext_levels = 256
    ext = (np.arange(ext_levels), rng.normal(0, 1, 3).astype(np.float32),
           np.array([-400.0, rng.uniform(10, 240), 700.0], dtype=np.float32),
           np.array([-14.0, rng.uniform(-8, -3), 11.0], dtype=np.float32), ext_levels)
    # Three sharp components: most values are thousands of scales from every mean (p underflows to 0).
    sharp = (np.arange(ext_levels), rng.normal(0, 1, 3).astype(np.float32),
             rng.uniform(10, 240, 3).astype(np.float32), rng.uniform(-8, -3, 3).astype(np.float32), ext_levels)
    return moderate, ext, sharp


def _q1_data(seed):
    from deepul_helpers import data

    train_x = data.load("1d_b", "train", seed=seed)[:2000]
    test_x = data.load("1d_b", "test", seed=seed)[:256]
    return train_x, test_x, data.info("1d_b").levels


def probe_q1(ns, seed):
    out = {}
    moderate, ext, sharp = _q1_inputs(seed)
    f = ns["logistic_mixture_log_probs"]

    def call(args):
        x, w, mu, ls, levels = args
        return array(f(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(mu), torch.from_numpy(ls), levels))

    attempt(out, "a", lambda: {"a_logp": call(moderate)})
    attempt(out, "ext", lambda: {"ext_logp": call(ext)})
    attempt(out, "sharp", lambda: {"sharp_logp": call(sharp)})
    train_x, test_x, levels = _q1_data(seed)
    for kind in ("histogram", "logistic"):
        attempt(out, kind, lambda kind=kind: fit_outputs(
            kind, quick_fit(ns["q1_fit"], train_x, test_x, levels, kind, seed=seed), third="probs"))
    return out


def _q1_fit_ok(out, kind, test_x, levels):
    """Losses, probs over the levels, and a final test loss that is the NLL of those probs."""
    ok, why = losses_ok(out, kind)
    probs = out.get(f"{kind}_probs")
    if ok and not (isinstance(probs, np.ndarray) and probs.shape == (levels,) and probs.dtype.kind == "f"
                   and np.all(probs >= 0) and abs(float(probs.astype(np.float64).sum()) - 1) < 1e-4):
        return False, "probs must be a (levels,) float array of non-negative values summing to 1"
    if ok:
        with np.errstate(divide="ignore"):
            nll = float(-np.log(probs.astype(np.float64)[test_x]).mean())
        if not abs(nll - float(out[f"{kind}_test"][-1])) <= 1e-3 * max(1.0, abs(nll)):
            return False, "the final test loss is not the NLL of the returned probs on the test data"
    return ok, why


# What "the same log-probabilities" means for question 1(a), in probability space: |p - p_ref| <= P_ATOL +
# P_RTOL * p_ref with p = exp(log p). Any correct float32 formula meets it whatever the hidden inputs: the
# stable one of the hint, sigma(b) - sigma(a) with a small clamp (its round-off is ~1e-7 absolute), and a
# mid-point approximation of the density where the bin's mass is below 1e-5 (as PixelCNN++ does). Log-probs
# far in the tails (p ~ 1e-11) are not compared: float32 cannot resolve them and nothing downstream uses them.
# A wrong formula (bin edges, end bins, mixture weights, a density instead of a mass) is off by far more.
Q1_P_ATOL, Q1_P_RTOL = 1e-5, 1e-3


def _q1_probs_close(out, key, expected_logp) -> tuple[bool, str]:
    got = out.get(key)
    if not isinstance(got, np.ndarray) or got.dtype.kind != "f":
        return False, "not a float array/tensor"
    if got.shape != expected_logp.shape:
        return False, f"shape {got.shape}, expected {expected_logp.shape}"
    if not np.all(np.isfinite(got)):
        return False, "contains NaN or inf (it must stay finite)"
    if np.any(got > 1e-6):
        return False, "a log-probability is positive"
    p_ref = np.exp(expected_logp.astype(np.float64))
    err = np.abs(np.exp(got.astype(np.float64)) - p_ref)
    if not np.all(err <= Q1_P_ATOL + Q1_P_RTOL * p_ref):
        return False, f"the probabilities differ from the reference (largest error {float(err.max()):.3g})"
    return True, ""


def judge_q1(out, seed):
    from deepul_helpers.models.autoregressive import discretized_logistic_mixture_log_probs as ref

    c = Checks(out)
    moderate, ext, sharp = _q1_inputs(seed)

    def expected(args):
        x, w, mu, ls, levels = args
        return ref(torch.from_numpy(x), torch.from_numpy(w).double(), torch.from_numpy(mu).double(),
                   torch.from_numpy(ls).double(), levels).numpy()

    if not c.raised("a", "logistic_mixture_log_probs", " on moderate parameters"):
        c.check(1.5, _q1_probs_close(out, "a_logp", expected(moderate)),
                "logistic_mixture_log_probs (moderate parameters): {why}")
    for part, args, what in (("ext", ext, "extreme scales and means"),
                             ("sharp", sharp, "sharp components far from the values")):
        if not c.raised(part, "logistic_mixture_log_probs", f" on {what}"):
            c.check(0.25, _q1_probs_close(out, f"{part}_logp", expected(args)),
                    f"logistic_mixture_log_probs ({what}: finite, the same probabilities): {{why}}")
    _, test_x, levels = _q1_data(seed)
    for kind in ("histogram", "logistic"):
        if not c.raised(kind, f"q1_fit(model='{kind}')", " in quick mode"):
            c.check(1.0, _q1_fit_ok(out, kind, test_x, levels), f"q1_fit(model='{kind}'): {{why}}")
    return c.result()


# ----------------------------------------------------------------------------- question 2


def _q2_degrees(seed, part):
    rng = hidden_rng(seed, 2, part)
    d = int(rng.integers(3, 9))
    order = rng.permutation(d)
    deg_in = np.empty(d, dtype=np.int64)
    deg_in[order] = np.arange(1, d + 1)
    hidden = [rng.integers(0, d, int(rng.integers(4, 20))).astype(np.int64) for _ in range(int(rng.integers(1, 4)))]
    return [deg_in, *hidden]


def _q2_log_probs(seed):
    rng = hidden_rng(seed, 2, 5)
    base = rng.uniform(-3e3, -1e3, size=(1, 12))
    return base + rng.normal(0, 3, size=(5, 12))  # (S, B): large, close log-probs


def _q2_data(seed):
    from deepul_helpers import data

    return (data.load("image_density_25", "train", seed=seed)[:2000],
            data.load("image_density_25", "test", seed=seed)[:256], 25)


Q2_SAMPLES = 16
Q2_MASKS = ((1, 1, "one feature per variable"), (2, 3, "several levels per variable"))  # part, levels, what


def probe_q2(ns, seed):
    out = {}
    for part, levels, _ in Q2_MASKS:
        deg = _q2_degrees(seed, part)
        attempt(out, f"m{part}", lambda deg=deg, levels=levels, part=part: {
            f"m{part}": [array(m) for m in ns["made_masks"]([d.copy() for d in deg], levels)]})
    lp = torch.from_numpy(_q2_log_probs(seed))
    attempt(out, "ens", lambda: {"ens": array(ns["ensemble_log_prob"](lp))})
    train_x, test_x, levels = _q2_data(seed)
    attempt(out, "fit", lambda: fit_outputs(
        "fit", quick_fit(ns["q2_fit"], train_x, test_x, levels, Q2_SAMPLES, seed=seed), third="samples"))
    return out


def _masks_ok(got, want) -> tuple[bool, str]:
    """The same 0/1 pattern as the reference masks, layer by layer."""
    if not isinstance(got, list) or len(got) != len(want):
        return False, f"expected a list of {len(want)} masks (one per linear layer)"
    bad = [i for i, (g, w) in enumerate(zip(got, want))
           if not (isinstance(g, np.ndarray) and g.shape == w.shape and np.array_equal(g != 0, w != 0))]
    return (False, f"mask of layer {bad[0] + 1} differs from the reference (shape or entries)") if bad else (True, "")


def judge_q2(out, seed):
    from deepul_helpers.models.autoregressive import made_masks as ref_masks

    c = Checks(out)
    for part, levels, what in Q2_MASKS:
        label = f"made_masks ({what})"
        if not c.raised(f"m{part}", label):
            want = [m.numpy() for m in ref_masks(_q2_degrees(seed, part), levels)]
            c.check(1.0, _masks_ok(out.get(f"m{part}"), want), f"{label}: {{why}}")
    if not c.raised("ens", "ensemble_log_prob"):
        lp = torch.from_numpy(_q2_log_probs(seed))
        want = (torch.logsumexp(lp, 0) - math.log(lp.shape[0])).numpy()  # log of the mean probability
        # rtol 1e-6: what float32 resolves at log-probs of -1e3..-3e3 (a float32 log-mean-exp is correct; it
        # failed 1e-9 at every seed); the mean of the log-probs is off by nats, a naive log(mean(exp)) by -inf
        c.check(1.0, close(out, "ens", want, atol=1e-6, rtol=1e-6),
                "ensemble_log_prob: {why} (average probabilities, not log-probabilities)")
    if not c.raised("fit", "q2_fit", " in quick mode"):
        c.check(1.0, losses_ok(out, "fit"), "q2_fit: {why}")
        c.check(1.0, levels_ok(out.get("fit_samples"), (Q2_SAMPLES, 2), 25),
                "q2_fit: samples must be an (n_samples, D) integer array with values in 0..levels-1")
    return c.result()


# ----------------------------------------------------------------------------- question 3


def _q3_cases(seed):
    """(mask_type, in_channels, out_channels, kernel_size, color_channels) for mono and colour masks."""
    rng = hidden_rng(seed, 3, 0)
    mono = [(t, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.choice([3, 5, 7])), 1) for t in "AB"]
    colour = [(t, int(rng.integers(3, 10)), int(rng.integers(3, 10)), int(rng.choice([1, 3, 5])), 3) for t in "AB"]
    return mono, colour


Q3_SAMPLES = 2


def probe_q3(ns, seed):
    out = {}
    mono, colour = _q3_cases(seed)
    for tag, cases in (("mono", mono), ("colour", colour)):
        for i, case in enumerate(cases):  # one attempt per case: an error in one does not discard the other
            attempt(out, f"{tag}{i}", lambda case=case, key=f"{tag}{i}": {key: array(ns["pixelcnn_mask"](*case))})
    train_x, test_x, levels = _digits(seed, 3)
    attempt(out, "fit", lambda: fit_outputs(
        "fit", quick_fit(ns["q3_fit"], train_x, test_x, levels, Q3_SAMPLES, seed=seed), third="samples"))
    return out


def judge_q3(out, seed):
    from deepul_helpers.models.autoregressive import pixelcnn_mask as ref_mask

    c = Checks(out)
    mono, colour = _q3_cases(seed)
    for tag, cases, points in (("mono", mono, 1.0), ("colour", colour, 2.0)):
        for i, case in enumerate(cases):
            if c.raised(f"{tag}{i}", f"pixelcnn_mask ({tag}, type '{case[0]}')"):
                continue
            want, g = ref_mask(*case).numpy(), out.get(f"{tag}{i}")
            c.check(points / len(cases),
                    isinstance(g, np.ndarray) and g.shape == want.shape and np.array_equal(g != 0, want != 0),
                    f"pixelcnn_mask ({tag}, type '{case[0]}'): shape or entries differ from the reference")
    if not c.raised("fit", "q3_fit", " in quick mode"):
        c.check(1.0, losses_ok(out, "fit"), "q3_fit: {why}")
        samples = out.get("fit_samples")
        c.check(1.0, levels_ok(samples, (Q3_SAMPLES, 8, 8, 1), _digits(seed, 3)[2], kinds="u")
                and samples.dtype == np.uint8,
                "q3_fit: samples must be an (n_samples, H, W, C) uint8 array with values in 0..levels-1")
    return c.result()


# ----------------------------------------------------------------------------- question 4


def _q4_qkv(seed):
    rng = hidden_rng(seed, 4, 0)
    b, h, t, hs = 2, int(rng.integers(1, 4)), int(rng.integers(4, 10)), int(rng.integers(2, 9))
    return [rng.normal(0, 1.5, (b, h, t, hs)) for _ in range(3)]


def _causal_reference(q, k, v):
    """Independent float64 computation: row t is softmax(q_t . k_s / sqrt(hs)) over s <= t."""
    t, hs = q.shape[2], q.shape[3]
    scores = np.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(hs)
    scores = np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    return np.einsum("bhts,bhsd->bhtd", w / w.sum(-1, keepdims=True), v)


Q4_GEN = (3, 12)  # n, length for the cache-vs-naive comparison


def probe_q4(ns, seed):
    out = {}
    q, k, v = (torch.from_numpy(a) for a in _q4_qkv(seed))
    attempt(out, "full", lambda: {"full": array(ns["causal_attention"](q, k, v))})

    def steps():
        cache, outs, sizes = None, [], []
        for t in range(q.shape[2]):
            o, cache = ns["attention_step"](q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], cache)
            outs.append(array(o))
            sizes.append([list(cache[0].shape), list(cache[1].shape)])
        return {"steps": np.concatenate(outs, axis=2), "cache_shapes": sizes}

    attempt(out, "step", steps)
    train_x, test_x, levels = _digits(seed, 4)

    def run():
        tr, te, generate = quick_fit(ns["q4_fit"], train_x, test_x, levels, seed=seed)
        res = fit_outputs("fit", (tr, te))
        res["fit_full"] = array(generate(2, 64, True))
        n, length = Q4_GEN
        torch.manual_seed(seed % 7919)
        res["fit_cached"] = array(generate(n, length, True))
        torch.manual_seed(seed % 7919)
        res["fit_naive"] = array(generate(n, length, False))
        return res

    attempt(out, "fit", run)
    return out


def judge_q4(out, seed):
    c = Checks(out)
    q, k, v = _q4_qkv(seed)
    want = _causal_reference(q, k, v)
    if not c.raised("full", "causal_attention"):
        c.check(1.0, close(out, "full", want, atol=1e-6),
                "causal_attention: {why} (position t attends to 0..t, itself included)")
    if not c.raised("step", "attention_step"):
        ok, why = close(out, "steps", want, atol=1e-6)
        b, h, t, hs = q.shape
        if ok and out.get("cache_shapes") != [[[b, h, i + 1, hs]] * 2 for i in range(t)]:
            ok, why = False, "the returned cache must grow by one position per step: (B, H, t+1, hs)"
        c.check(1.0, (ok, why), "attention_step: {why}")
    if c.raised("fit", "q4_fit", " in quick mode"):
        return c.result()
    levels = _digits(seed, 4)[2]
    ok, why = losses_ok(out, "fit")
    if ok and not levels_ok(out.get("fit_full"), (2, 64), levels):
        ok, why = False, "generate(n, length, use_cache) must return an (n, length) integer array in 0..levels-1"
    c.check(1.0, (ok, why), "q4_fit: {why}")
    n, length = Q4_GEN
    a, b = out.get("fit_cached"), out.get("fit_naive")
    c.check(1.0, levels_ok(a, (n, length), levels) and levels_ok(b, (n, length), levels) and np.mean(a == b) >= 0.95,
            "q4_fit: with the same torch seed, generate(..., use_cache=True) and use_cache=False must give "
            "the same tokens")
    return c.result()


# ----------------------------------------------------------------------------- question 5

Q5_DATA = "text_grammar"
Q5_SAMPLES = 2


def _q5_data(seed):
    from deepul_helpers import data

    x_train, x_test = data.load(Q5_DATA, "train", seed=seed), data.load(Q5_DATA, "test", seed=seed)
    pick = hidden_rng(seed, 5, 1).permutation(len(x_train))[:512]
    return x_train[pick], x_test[:256], len(data.info(Q5_DATA).vocab)


def probe_q5(ns, seed):
    out = {}
    train_x, test_x, vocab = _q5_data(seed)
    attempt(out, "fit", lambda: fit_outputs(
        "fit", quick_fit(ns["q5_fit"], train_x, test_x, vocab, Q5_SAMPLES, seed=seed), third="samples"))
    return out


def judge_q5(out, seed):
    c = Checks(out)
    if not c.raised("fit", "q5_fit", " in quick mode"):
        train_x, _, vocab = _q5_data(seed)
        c.check(1.0, losses_ok(out, "fit"), "q5_fit: {why}")
        c.check(1.0, levels_ok(out.get("fit_samples"), (Q5_SAMPLES, train_x.shape[1]), vocab),
                "q5_fit: samples must be an (n_samples, T) integer array of ids in 0..vocab_size-1")
    return c.result()


QUESTIONS = [
    Question(grade_id="q1_tests", points=4, requires=("logistic_mixture_log_probs", "q1_fit"),
             forbidden=(f"{AR}.histogram", f"{AR}.logistic_mixture"), probe=probe_q1, judge=judge_q1),
    Question(grade_id="q2_tests", points=5, requires=("made_masks", "ensemble_log_prob", "q2_fit"),
             forbidden=(f"{AR}.made",), probe=probe_q2, judge=judge_q2),
    Question(grade_id="q3_tests", points=5, requires=("pixelcnn_mask", "q3_fit"),
             forbidden=(f"{AR}.pixelcnn", f"{AR}.gated_pixelcnn"), probe=probe_q3, judge=judge_q3),
    Question(grade_id="q4_tests", points=4, requires=("causal_attention", "attention_step", "q4_fit"),
             forbidden=(f"{AR}.transformer",), probe=probe_q4, judge=judge_q4),
    Question(grade_id="q5_tests", points=2, requires=("q5_fit",),
             forbidden=(f"{AR}.transformer",), probe=probe_q5, judge=judge_q5),
]
