"""The grade of homework 1 (autoregressive models). Never released to students.

Each question's ``probe`` runs beside the student's code in the sandbox: it calls the student's
functions on hidden inputs made from the seed and returns plain data. Each ``judge`` runs in the
trusted grader: it rebuilds the same hidden inputs, recomputes the expected values with the
reference implementations (``deepul_helpers.models.autoregressive``) or, for attention, with an
independent float64 computation, and awards partial credit per sub-check, with messages that name
the check but not the inputs.

Components (log-probabilities, masks, attention) are judged exactly (to float round-off);
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

from deepul_helpers.autograde.verdict import Question, attempt, close

HIDDEN_SEED = 20261124
AR = "deepul_helpers.models.autoregressive"

# ----------------------------------------------------------------------------- shared helpers


def _rng(seed: int, question: int, part: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed) % 2**32, question, part])


def _arr(value) -> np.ndarray:
    """A student's tensor/array/number -> numpy array (float64 for floats, no gradients)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.double().numpy() if value.is_floating_point() else value.numpy()
    value = np.asarray(value)
    return value.astype(np.float64) if value.dtype.kind == "f" else value




def _fit_seed(seed: int) -> int:
    return int(seed) % 1000


def _losses_ok(out: dict, tag: str) -> tuple[bool, str]:
    """Train losses per iteration and test losses per epoch: 1D, finite, the test loss went down."""
    tr, te = out.get(f"{tag}_train"), out.get(f"{tag}_test")
    if not (isinstance(tr, np.ndarray) and isinstance(te, np.ndarray) and tr.ndim == 1 and te.ndim == 1
            and tr.size >= 1 and te.size >= 2 and tr.dtype.kind == "f" and te.dtype.kind == "f"):
        return False, ("expected 1D float arrays: train losses (one per iteration) and test losses "
                       "(before training and after each epoch)")
    if not (np.all(np.isfinite(tr)) and np.all(np.isfinite(te))):
        return False, "the losses contain NaN or inf"
    if not float(te[-1]) < float(te[0]):
        return False, "the test loss did not go down in quick mode"
    return True, ""


def _levels_ok(x, shape: tuple, levels: int, kinds: str = "iu") -> bool:
    return (isinstance(x, np.ndarray) and x.dtype.kind in kinds and x.shape == tuple(shape)
            and x.size > 0 and int(x.min()) >= 0 and int(x.max()) < levels)


def _fit_error(out: dict, tag: str, name: str) -> list[str] | None:
    if f"{tag}_error" in out:
        return [f"{name} raised {out[f'{tag}_error']} in quick mode"]
    return None


# ----------------------------------------------------------------------------- question 1


def _q1_inputs(seed):
    """Moderate parameters with a batch shape (6, 5) and 3 components, and an extreme case."""
    rng = _rng(seed, 1, 0)
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
    return moderate, ext


def _q1_data(seed):
    from deepul_helpers import data

    train_x = data.load("1d_b", "train", seed=seed)[:2000]
    test_x = data.load("1d_b", "test", seed=seed)[:256]
    return train_x, test_x, data.info("1d_b").levels


def probe_q1(ns, seed):
    out = {}
    moderate, ext = _q1_inputs(seed)
    f = ns["logistic_mixture_log_probs"]

    def call(args):
        x, w, mu, ls, levels = args
        return _arr(f(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(mu), torch.from_numpy(ls), levels))

    attempt(out, "a", lambda: {"a_logp": call(moderate)})
    attempt(out, "ext", lambda: {"ext_logp": call(ext)})
    train_x, test_x, levels = _q1_data(seed)
    for kind in ("histogram", "logistic"):
        def run(kind=kind):
            torch.manual_seed(_fit_seed(seed))
            tr, te, probs = ns["q1_fit"](train_x, test_x, levels, kind, quick=True, seed=_fit_seed(seed),
                                         device="cpu")
            return {f"{kind}_train": _arr(tr), f"{kind}_test": _arr(te), f"{kind}_probs": _arr(probs)}

        attempt(out, kind, run)
    return out


def judge_q1(out, seed):
    from deepul_helpers.models.autoregressive import discretized_logistic_mixture_log_probs as ref

    score, msgs = 0.0, []
    moderate, ext = _q1_inputs(seed)

    def expected(args):
        x, w, mu, ls, levels = args
        return ref(torch.from_numpy(x), torch.from_numpy(w).double(), torch.from_numpy(mu).double(),
                   torch.from_numpy(ls).double(), levels).numpy()

    if "a_error" in out:
        msgs.append(f"logistic_mixture_log_probs raised {out['a_error']} on moderate parameters")
    else:
        ok, why = close(out, "a_logp", expected(moderate), atol=1e-4)
        score += 1.5 if ok else 0.0
        msgs += [] if ok else [f"logistic_mixture_log_probs (moderate parameters): {why}"]
    if "ext_error" in out:
        msgs.append(f"logistic_mixture_log_probs raised {out['ext_error']} on extreme scales/means")
    else:
        ok, why = close(out, "ext_logp", expected(ext), atol=1e-3, rtol=1e-4)
        score += 0.5 if ok else 0.0
        msgs += [] if ok else [f"logistic_mixture_log_probs (extreme scales and means, must stay finite): {why}"]

    _, test_x, levels = _q1_data(seed)
    for kind in ("histogram", "logistic"):
        err = _fit_error(out, kind, f"q1_fit(model='{kind}')")
        if err:
            msgs += err
            continue
        ok, why = _losses_ok(out, kind)
        probs = out.get(f"{kind}_probs")
        if ok and not (isinstance(probs, np.ndarray) and probs.shape == (levels,) and probs.dtype.kind == "f"
                       and np.all(probs >= 0) and abs(float(probs.sum()) - 1) < 1e-4):
            ok, why = False, "probs must be a (levels,) float array of non-negative values summing to 1"
        if ok:
            with np.errstate(divide="ignore"):
                nll = float(-np.log(probs[test_x]).mean())
            if not abs(nll - float(out[f"{kind}_test"][-1])) <= 1e-3 * max(1.0, abs(nll)):
                ok, why = False, "the final test loss is not the NLL of the returned probs on the test data"
        score += 1.0 if ok else 0.0
        msgs += [] if ok else [f"q1_fit(model='{kind}'): {why}"]
    return score, msgs


# ----------------------------------------------------------------------------- question 2


def _q2_degrees(seed, part):
    rng = _rng(seed, 2, part)
    d = int(rng.integers(3, 9))
    order = rng.permutation(d)
    deg_in = np.empty(d, dtype=np.int64)
    deg_in[order] = np.arange(1, d + 1)
    hidden = [rng.integers(0, d, int(rng.integers(4, 20))).astype(np.int64) for _ in range(int(rng.integers(1, 4)))]
    return [deg_in, *hidden]


def _q2_log_probs(seed):
    rng = _rng(seed, 2, 5)
    base = rng.uniform(-3e3, -1e3, size=(1, 12))
    return base + rng.normal(0, 3, size=(5, 12))  # (S, B): large, close log-probs


def _q2_data(seed):
    from deepul_helpers import data

    return (data.load("image_density_25", "train", seed=seed)[:2000],
            data.load("image_density_25", "test", seed=seed)[:256], 25)


Q2_SAMPLES = 16


def probe_q2(ns, seed):
    out = {}
    for part, levels in ((1, 1), (2, 3)):
        deg = _q2_degrees(seed, part)
        attempt(out, f"m{part}", lambda deg=deg, levels=levels, part=part: {
            f"m{part}": [_arr(m) for m in ns["made_masks"]([d.copy() for d in deg], levels)]})
    lp = torch.from_numpy(_q2_log_probs(seed))
    attempt(out, "ens", lambda: {"ens": _arr(ns["ensemble_log_prob"](lp))})
    train_x, test_x, levels = _q2_data(seed)

    def run():
        torch.manual_seed(_fit_seed(seed))
        tr, te, s = ns["q2_fit"](train_x, test_x, levels, Q2_SAMPLES, quick=True, seed=_fit_seed(seed), device="cpu")
        return {"fit_train": _arr(tr), "fit_test": _arr(te), "fit_samples": _arr(s)}

    attempt(out, "fit", run)
    return out


def judge_q2(out, seed):
    from deepul_helpers.models.autoregressive import made_masks as ref_masks

    score, msgs = 0.0, []
    for part, levels in ((1, 1), (2, 3)):
        label = "made_masks (" + ("one feature per variable" if levels == 1 else "several levels per variable") + ")"
        if f"m{part}_error" in out:
            msgs.append(f"{label} raised {out[f'm{part}_error']}")
            continue
        want = [m.numpy() for m in ref_masks(_q2_degrees(seed, part), levels)]
        got = out.get(f"m{part}")
        if not isinstance(got, list) or len(got) != len(want):
            msgs.append(f"{label}: expected a list of {len(want)} masks (one per linear layer)")
            continue
        bad = [i for i, (g, w) in enumerate(zip(got, want))
               if not (isinstance(g, np.ndarray) and g.shape == w.shape and np.array_equal(g != 0, w != 0))]
        if bad:
            msgs.append(f"{label}: mask of layer {bad[0] + 1} differs from the reference (shape or entries)")
        else:
            score += 1.0
    if "ens_error" in out:
        msgs.append(f"ensemble_log_prob raised {out['ens_error']}")
    else:
        lp = torch.from_numpy(_q2_log_probs(seed))
        want = (torch.logsumexp(lp, 0) - math.log(lp.shape[0])).numpy()  # log of the mean probability
        ok, why = close(out, "ens", want, atol=1e-6, rtol=1e-9)
        score += 1.0 if ok else 0.0
        msgs += [] if ok else [f"ensemble_log_prob: {why} (average probabilities, not log-probabilities)"]
    err = _fit_error(out, "fit", "q2_fit")
    if err:
        return score, msgs + err
    ok, why = _losses_ok(out, "fit")
    score += 1.0 if ok else 0.0
    msgs += [] if ok else [f"q2_fit: {why}"]
    if _levels_ok(out.get("fit_samples"), (Q2_SAMPLES, 2), 25):
        score += 1.0
    else:
        msgs.append("q2_fit: samples must be an (n_samples, D) integer array with values in 0..levels-1")
    return score, msgs


# ----------------------------------------------------------------------------- question 3


def _q3_cases(seed):
    """(mask_type, in_channels, out_channels, kernel_size, color_channels) for mono and colour masks."""
    rng = _rng(seed, 3, 0)
    mono = [(t, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.choice([3, 5, 7])), 1) for t in "AB"]
    colour = [(t, int(rng.integers(3, 10)), int(rng.integers(3, 10)), int(rng.choice([1, 3, 5])), 3) for t in "AB"]
    return mono, colour


def _q3_data(seed):
    from deepul_helpers import data

    rng = _rng(seed, 3, 1)
    x = data.load("digits", "train")
    idx = rng.permutation(len(x))
    return x[idx[:512]], x[idx[512:768]], data.info("digits").levels


Q3_SAMPLES = 2


def probe_q3(ns, seed):
    out = {}
    mono, colour = _q3_cases(seed)
    for tag, cases in (("mono", mono), ("colour", colour)):
        attempt(out, tag, lambda cases=cases, tag=tag: {
            tag: [_arr(ns["pixelcnn_mask"](*c)) for c in cases]})
    train_x, test_x, levels = _q3_data(seed)

    def run():
        torch.manual_seed(_fit_seed(seed))
        tr, te, s = ns["q3_fit"](train_x, test_x, levels, Q3_SAMPLES, quick=True, seed=_fit_seed(seed), device="cpu")
        return {"fit_train": _arr(tr), "fit_test": _arr(te), "fit_samples": _arr(s)}

    attempt(out, "fit", run)
    return out


def judge_q3(out, seed):
    from deepul_helpers.models.autoregressive import pixelcnn_mask as ref_mask

    score, msgs = 0.0, []
    mono, colour = _q3_cases(seed)
    for tag, cases, points in (("mono", mono, 1.0), ("colour", colour, 2.0)):
        if f"{tag}_error" in out:
            msgs.append(f"pixelcnn_mask ({tag}) raised {out[f'{tag}_error']}")
            continue
        got = out.get(tag)
        for i, case in enumerate(cases):
            want = ref_mask(*case).numpy()
            g = got[i] if isinstance(got, list) and len(got) == len(cases) else None
            if isinstance(g, np.ndarray) and g.shape == want.shape and np.array_equal(g != 0, want != 0):
                score += points / len(cases)
            else:
                msgs.append(f"pixelcnn_mask ({tag}, type '{case[0]}'): shape or entries differ from the reference")
    err = _fit_error(out, "fit", "q3_fit")
    if err:
        return score, msgs + err
    ok, why = _losses_ok(out, "fit")
    score += 1.0 if ok else 0.0
    msgs += [] if ok else [f"q3_fit: {why}"]
    _, _, levels = _q3_data(seed)
    if _levels_ok(out.get("fit_samples"), (Q3_SAMPLES, 8, 8, 1), levels, kinds="u") and \
            out["fit_samples"].dtype == np.uint8:
        score += 1.0
    else:
        msgs.append("q3_fit: samples must be an (n_samples, H, W, C) uint8 array with values in 0..levels-1")
    return score, msgs


# ----------------------------------------------------------------------------- question 4


def _q4_qkv(seed):
    rng = _rng(seed, 4, 0)
    b, h, t, hs = 2, int(rng.integers(1, 4)), int(rng.integers(4, 10)), int(rng.integers(2, 9))
    return [rng.normal(0, 1.5, (b, h, t, hs)) for _ in range(3)]


def _causal_reference(q, k, v):
    """Independent float64 computation: row t is softmax(q_t . k_s / sqrt(hs)) over s <= t."""
    t, hs = q.shape[2], q.shape[3]
    scores = np.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(hs)
    scores = np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    return np.einsum("bhts,bhsd->bhtd", w / w.sum(-1, keepdims=True), v)


def _q4_data(seed):
    from deepul_helpers import data

    rng = _rng(seed, 4, 1)
    x = data.load("digits", "train")
    idx = rng.permutation(len(x))
    return x[idx[:512]], x[idx[512:768]], data.info("digits").levels


Q4_GEN = (3, 12)  # n, length for the cache-vs-naive comparison


def probe_q4(ns, seed):
    out = {}
    q, k, v = (torch.from_numpy(a) for a in _q4_qkv(seed))
    attempt(out, "full", lambda: {"full": _arr(ns["causal_attention"](q, k, v))})

    def steps():
        cache, outs, sizes = None, [], []
        for t in range(q.shape[2]):
            o, cache = ns["attention_step"](q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], cache)
            outs.append(_arr(o))
            sizes.append([list(cache[0].shape), list(cache[1].shape)])
        return {"steps": np.concatenate(outs, axis=2), "cache_shapes": sizes}

    attempt(out, "step", steps)
    train_x, test_x, levels = _q4_data(seed)

    def run():
        torch.manual_seed(_fit_seed(seed))
        tr, te, generate = ns["q4_fit"](train_x, test_x, levels, quick=True, seed=_fit_seed(seed), device="cpu")
        res = {"fit_train": _arr(tr), "fit_test": _arr(te)}
        res["fit_full"] = _arr(generate(2, 64, True))
        n, length = Q4_GEN
        torch.manual_seed(seed % 7919)
        res["fit_cached"] = _arr(generate(n, length, True))
        torch.manual_seed(seed % 7919)
        res["fit_naive"] = _arr(generate(n, length, False))
        return res

    attempt(out, "fit", run)
    return out


def judge_q4(out, seed):
    score, msgs = 0.0, []
    q, k, v = _q4_qkv(seed)
    want = _causal_reference(q, k, v)
    if "full_error" in out:
        msgs.append(f"causal_attention raised {out['full_error']}")
    else:
        ok, why = close(out, "full", want, atol=1e-6)
        score += 1.0 if ok else 0.0
        msgs += [] if ok else [f"causal_attention: {why} (position t attends to 0..t, itself included)"]
    if "step_error" in out:
        msgs.append(f"attention_step raised {out['step_error']}")
    else:
        ok, why = close(out, "steps", want, atol=1e-6)
        b, h, t, hs = q.shape
        sizes = out.get("cache_shapes")
        want_sizes = [[[b, h, i + 1, hs]] * 2 for i in range(t)]
        if ok and sizes != want_sizes:
            ok, why = False, "the returned cache must grow by one position per step: (B, H, t+1, hs)"
        score += 1.0 if ok else 0.0
        msgs += [] if ok else [f"attention_step: {why}"]
    err = _fit_error(out, "fit", "q4_fit")
    if err:
        return score, msgs + err
    _, _, levels = _q4_data(seed)
    ok, why = _losses_ok(out, "fit")
    if ok and not _levels_ok(out.get("fit_full"), (2, 64), levels):
        ok, why = False, "generate(n, length, use_cache) must return an (n, length) integer array in 0..levels-1"
    score += 1.0 if ok else 0.0
    msgs += [] if ok else [f"q4_fit: {why}"]
    n, length = Q4_GEN
    a, b = out.get("fit_cached"), out.get("fit_naive")
    if _levels_ok(a, (n, length), levels) and _levels_ok(b, (n, length), levels) and np.mean(a == b) >= 0.95:
        score += 1.0
    else:
        msgs.append("q4_fit: with the same torch seed, generate(..., use_cache=True) and use_cache=False must give "
                    "the same tokens")
    return score, msgs


# ----------------------------------------------------------------------------- question 5

Q5_DATA = "text_grammar"
Q5_SAMPLES = 2


def _q5_data(seed):
    from deepul_helpers import data

    rng = _rng(seed, 5, 1)
    x_train, x_test = data.load(Q5_DATA, "train", seed=seed), data.load(Q5_DATA, "test", seed=seed)
    pick = rng.permutation(len(x_train))[:512]
    return x_train[pick], x_test[:256], len(data.info(Q5_DATA).vocab)


def probe_q5(ns, seed):
    out = {}
    train_x, test_x, vocab = _q5_data(seed)

    def run():
        torch.manual_seed(_fit_seed(seed))
        tr, te, s = ns["q5_fit"](train_x, test_x, vocab, Q5_SAMPLES, quick=True, seed=_fit_seed(seed), device="cpu")
        return {"fit_train": _arr(tr), "fit_test": _arr(te), "fit_samples": _arr(s)}

    attempt(out, "fit", run)
    return out


def judge_q5(out, seed):
    err = _fit_error(out, "fit", "q5_fit")
    if err:
        return 0.0, err
    score, msgs = 0.0, []
    train_x, _, vocab = _q5_data(seed)
    ok, why = _losses_ok(out, "fit")
    score += 1.0 if ok else 0.0
    msgs += [] if ok else [f"q5_fit: {why}"]
    if _levels_ok(out.get("fit_samples"), (Q5_SAMPLES, train_x.shape[1]), vocab):
        score += 1.0
    else:
        msgs.append("q5_fit: samples must be an (n_samples, T) integer array of ids in 0..vocab_size-1")
    return score, msgs


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
