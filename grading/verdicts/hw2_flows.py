"""The grade of homework 2 (normalizing flows). Never released to students.

Each question's ``probe`` runs beside the student's code in the sandbox: it calls the student's
functions on hidden inputs made from the seed and returns plain data. Each ``judge`` runs in the
trusted grader: it rebuilds the same hidden inputs, recomputes the expected values with the
reference implementations (``deepul_helpers.models.flows``, ``deepul_helpers.metrics``), and
awards partial credit per sub-check, with messages that name the check but not the inputs.

Components are judged exactly (to float32 round-off); training functions are called in quick
mode and judged on their contract: shapes, finiteness, a reported test loss that is the model's
own NLL, a density that integrates to 1, samples in the data's range. Question 4's timings are
judged on consistency only (the speedups are the ratios of the returned times); the direction they
measure is judged by counting the network passes of each algorithm, never on seconds, which the
grading machine's load changes (the seconds are shown in the feedback as information).

The probes import nothing from ``deepul_helpers.models.flows`` (the sandbox reports any import
of it as the student's); the judges import the reference lazily.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deepul_helpers.autograde.verdict import (
    Checks,
    Question,
    array,
    attempt,
    close,
    fit_outputs,
    fit_seed,
    grid_mass,
    hidden_rng,
    losses_ok,
    quick_fit,
    shape_ok,
)

HIDDEN_SEED = 20261125
FLOWS = "deepul_helpers.models.flows"
F64 = np.float64

# ----------------------------------------------------------------------------- shared helpers


def _fit_data(seed: int, question: int, n_train: int = 1000, n_test: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Hidden 2D training data: a ring of Gaussians with a hidden number of modes and radius."""
    rng = hidden_rng(seed, question, 9)
    k, radius = int(rng.integers(3, 7)), float(rng.uniform(1.5, 2.5))
    centre = rng.uniform(-0.5, 0.5, size=2)

    def draw(n):
        ang = rng.integers(0, k, n) * 2 * np.pi / k
        pts = np.stack([np.cos(ang), np.sin(ang)], 1) * radius + centre + rng.normal(size=(n, 2)) * 0.3
        return pts.astype(np.float32)

    return draw(n_train), draw(n_test)


def _probe_fit(out: dict, tag: str, fit, seed: int, question: int) -> None:
    """Call a 2D fit function in quick mode on hidden data; record its losses, its own NLL on the
    test data, and the mass of its density on a grid covering the data."""
    train_x, test_x = _fit_data(seed, question)

    def run():
        tr, te, model = quick_fit(fit, train_x, test_x, seed=seed)
        res = fit_outputs(tag, (tr, te), dtype=F64)
        if hasattr(model, "eval"):
            model.eval()
        with torch.no_grad():
            res[f"{tag}_nll"] = float(-array(model.log_prob(torch.from_numpy(test_x)), F64).mean() / 2)
        # [-28, 28]^2 at the cells of 0.07 the check always had: a correct flow trained for a few iterations
        # may keep several percent of its mass beyond 7 (a RealNVP initialised away from the identity: 0.939
        # on [-7, 7]^2, 0.99993 here, at one seed of 25), which [-7, 7]^2 called "does not integrate to 1"
        res[f"{tag}_mass"] = grid_mass(model.log_prob, extent=28.0, n=800)
        if hasattr(model, "sample"):
            with torch.no_grad():
                s = model.sample(50)
            res[f"{tag}_sample_dtype"] = str(s.dtype)
            res[f"{tag}_sample"] = array(s, F64)
        return res

    attempt(out, tag, run)


def _judge_fit(c: Checks, tag: str, name: str, points: float, samples: bool = False) -> None:
    """Contract of a 2D fit: losses, reported loss = own NLL, density integrates to 1 (, samples)."""
    if c.raised(tag, name, " in quick mode"):
        return
    out = c.out
    each = points / (4 + int(samples))
    tr, te = out.get(f"{tag}_train"), out.get(f"{tag}_test")
    shaped = (isinstance(tr, np.ndarray) and isinstance(te, np.ndarray) and tr.ndim == 1 and te.ndim == 1
              and tr.size >= 1 and te.size >= 2)
    c.check(each, losses_ok(out, tag, decreasing=False)[0], f"{name}: expected finite train losses per iteration "
            "and test losses before training and after each epoch")
    nll = out.get(f"{tag}_nll")
    c.check(each, shaped and isinstance(nll, float) and abs(float(te[-1]) - nll) <= 1e-3 * max(1.0, abs(nll)),
            f"{name}: the final test loss is not the returned model's NLL per dimension on the test data")
    c.check(each, shaped and float(te[-1]) < float(te[0]), f"{name}: the test loss did not go down in quick mode")
    mass = out.get(f"{tag}_mass")
    shown = f"{mass:.3f}" if isinstance(mass, float) else "not computed"
    c.check(each, isinstance(mass, float) and 0.95 <= mass <= 1.02,
            f"{name}: the model's density does not integrate to 1 (got {shown}); check the log-determinants")
    if samples:
        c.check(each, shape_ok(out.get(f"{tag}_sample"), (50, 2)) and out.get(f"{tag}_sample_dtype") == "torch.float32",
                f"{name}: sample(n) must return a finite float32 tensor (n, 2)")


# ----------------------------------------------------------------------------- question 1


def _q1_mixture_inputs(seed):
    rng = hidden_rng(seed, 1, 0)
    b, k = 64, 5
    x = rng.normal(0, 2.0, b)
    logits, means = rng.normal(0, 1, (b, k)), rng.normal(0, 1.5, (b, k))
    log_scales = rng.uniform(-1.0, 1.0, (b, k))
    return [a.astype(np.float32) for a in (x, logits, means, log_scales)]


def _jacobians(m, pts):
    """(B, 2, 2): d forward(x)[0] / dx of a 2D flow at each point, by autograd."""
    return array(torch.stack([torch.autograd.functional.jacobian(lambda p: m(p[None])[0][0], p) for p in pts]), F64)


def probe_q1(ns, seed):
    out = {}

    def cdf():
        z, ld = ns["mixture_cdf"](*(torch.from_numpy(a) for a in _q1_mixture_inputs(seed)))
        return {"cdf_z": array(z, F64), "cdf_ld": array(ld, F64)}

    def model():
        torch.manual_seed(fit_seed(seed))
        m = ns["AutoregressiveCDFFlow2D"]()
        pts = torch.from_numpy(hidden_rng(seed, 1, 1).normal(0, 1.5, (6, 2)).astype(np.float32))
        z, logdet = m(pts)
        return {"m_z": array(z, F64), "m_logdet": array(logdet, F64), "m_jac": _jacobians(m, pts),
                "m_log_prob": array(m.log_prob(pts), F64), "m_loss": float(array(m.loss(pts), F64))}

    attempt(out, "cdf", cdf)
    attempt(out, "m", model)
    _probe_fit(out, "fit", ns["q1_fit"], seed, 1)
    return out


def _reference_mixture_cdf(x, logits, means, log_scales):
    """z = F(x) and log F'(x) from the reference CDF flow (which returns logit F and its log-derivative)."""
    from deepul_helpers.models.flows.cdf import mixture_cdf_logit

    t = lambda a: torch.from_numpy(a.astype(np.float64))[:, None]  # noqa: E731
    zl, ld = mixture_cdf_logit(t(x), t(logits), t(means), t(log_scales), kind="gaussian")
    zl, ld = zl[:, 0], ld[:, 0]
    log_f = ld + torch.nn.functional.logsigmoid(zl) + torch.nn.functional.logsigmoid(-zl)
    return torch.sigmoid(zl).numpy(), log_f.numpy()


def judge_q1(out, seed):
    c = Checks(out)
    # (a) the mixture CDF, exactly: 1 point
    if not c.raised("cdf", "mixture_cdf"):
        z, log_f = _reference_mixture_cdf(*_q1_mixture_inputs(seed))
        for key, exp, what in (("cdf_z", z, "z"), ("cdf_ld", log_f, "log_dz_dx")):
            c.check(0.5, close(out, key, exp, atol=2e-5), f"mixture_cdf: {what} {{why}}")
    # (b) the model's structure, by its own autograd Jacobian: 1 point
    if not c.raised("m", "AutoregressiveCDFFlow2D"):
        z, jac, logdet = out.get("m_z"), out.get("m_jac"), out.get("m_logdet")
        jac_ok = shape_ok(jac, (6, 2, 2), finite=False)
        c.check(0.25, shape_ok(z, (6, 2), finite=False) and bool(np.all((z > 0) & (z < 1))),
                "AutoregressiveCDFFlow2D: z must be (B, 2) with values in (0, 1)")
        c.check(0.25, jac_ok and bool(np.all(jac[:, 0, 1] == 0)), "AutoregressiveCDFFlow2D: z1 must depend on x1 only")
        c.check(0.25, jac_ok and close(out, "m_logdet", np.log(np.abs(np.linalg.det(jac))), atol=1e-4)[0],
                "AutoregressiveCDFFlow2D: logdet is not log|det dz/dx|")
        lp_ok = isinstance(logdet, np.ndarray) and close(out, "m_log_prob", logdet, atol=1e-5)[0]
        loss = out.get("m_loss")
        c.check(0.25, lp_ok and isinstance(loss, float) and abs(loss + float(out["m_log_prob"].mean()) / 2) < 1e-5,
                "AutoregressiveCDFFlow2D: log_prob must be the logdet (uniform base) and loss the mean NLL / 2")
    # (c) the training function's contract: 1 point
    _judge_fit(c, "fit", "q1_fit", 1.0)
    return c.result()


# ----------------------------------------------------------------------------- question 2

MASKS = ("[1, 0]", "[0, 1]")


def _q2_net(seed: int, which: int) -> nn.Module:
    """The hidden conditioner the grader puts into the student's coupling layer."""
    rng = hidden_rng(seed, 2, 10 + which)
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.from_numpy(rng.normal(0, 0.7, tuple(p.shape)).astype(np.float32)))
    return net


def _q2_coupling_inputs(seed: int, which: int):
    rng = hidden_rng(seed, 2, 20 + which)
    mask = [1.0, 0.0] if which == 0 else [0.0, 1.0]
    scale = rng.uniform(0.3, 1.5, 2).astype(np.float32)
    x = rng.normal(0, 1.5, (32, 2)).astype(np.float32)
    z = rng.normal(0, 1.5, (32, 2)).astype(np.float32)
    return mask, scale, x, z


def probe_q2(ns, seed):
    out = {}
    for which in (0, 1):
        def coupling(which=which):
            mask, scale, x, z = _q2_coupling_inputs(seed, which)
            layer = ns["AffineCoupling2D"](mask, hidden=16)
            layer.net = _q2_net(seed, which)
            with torch.no_grad():
                layer.scale.copy_(torch.from_numpy(scale).reshape(layer.scale.shape))
            fz, fld = layer(torch.from_numpy(x))
            ix, ild = layer.inverse(torch.from_numpy(z))
            return {f"c{which}_{k}": array(v, F64) for k, v in (("fz", fz), ("fld", fld), ("ix", ix), ("ild", ild))}

        attempt(out, f"c{which}", coupling)

    def model():
        rng = hidden_rng(seed, 2, 30)
        loc, scale = rng.normal(0, 1, 2), rng.uniform(0.5, 2.0, 2)
        torch.manual_seed(fit_seed(seed))
        m = ns["RealNVP2D"](n_couplings=4, hidden=16, loc=tuple(loc), scale=tuple(scale))
        with torch.no_grad():  # a non-identity flow: perturb every parameter
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        x = torch.from_numpy((loc + scale * rng.normal(0, 1, (8, 2))).astype(np.float32))
        z, logdet = m(x)
        jac = _jacobians(m, x)
        with torch.no_grad():
            back = m.inverse(z)
        return {"m_z": array(z, F64), "m_logdet": array(logdet, F64), "m_jac": jac, "m_back": array(back, F64),
                "m_x": array(x, F64), "m_log_prob": array(m.log_prob(x), F64), "m_loss": float(array(m.loss(x), F64))}

    attempt(out, "m", model)
    _probe_fit(out, "fit", ns["q2_fit"], seed, 2)
    return out


def judge_q2(out, seed):
    from deepul_helpers.models.flows.coupling import AffineCoupling

    c = Checks(out)
    # (a) the coupling layer against the reference with the same conditioner: 1 point
    for which in (0, 1):
        if c.raised(f"c{which}", f"AffineCoupling2D (mask {MASKS[which]})"):
            continue
        mask, scale, x, z = _q2_coupling_inputs(seed, which)
        ref = AffineCoupling(torch.tensor([mask]), _q2_net(seed, which), 2)
        with torch.no_grad():
            ref.scale.copy_(torch.from_numpy(scale).reshape(1, 2))
            fz, fld = ref(torch.from_numpy(x))
            ix, ild = ref.inverse(torch.from_numpy(z))
        for key, exp, what in (("fz", fz, "forward z"), ("fld", fld, "forward logdet"), ("ix", ix, "inverse x"),
                               ("ild", ild, "inverse logdet")):
            c.check(0.125, close(out, f"c{which}_{key}", exp.numpy(), atol=1e-4),
                    f"AffineCoupling2D (mask {MASKS[which]}): {what} {{why}}")
    # (b) RealNVP2D: inverse, logdet vs autograd, log_prob and loss: 1 point
    if not c.raised("m", "RealNVP2D"):
        jac, z, logdet = out.get("m_jac"), out.get("m_z"), out.get("m_logdet")
        c.check(0.25, close(out, "m_back", out.get("m_x"), atol=1e-4)[0],
                "RealNVP2D: inverse(forward(x)) does not give x back")
        c.check(0.25, shape_ok(jac, (8, 2, 2), finite=False)
                and close(out, "m_logdet", np.log(np.abs(np.linalg.det(jac))), atol=1e-3)[0],
                "RealNVP2D: logdet is not log|det dz/dx| (the standardisation counts too)")
        ok = shape_ok(z, (8, 2), finite=False) and isinstance(logdet, np.ndarray)
        ok = ok and close(out, "m_log_prob", (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1) + logdet, atol=1e-4)[0]
        c.check(0.25, ok, "RealNVP2D: log_prob must be log N(z; 0, I) + logdet")
        loss, lp = out.get("m_loss"), out.get("m_log_prob")
        ok = isinstance(loss, float) and isinstance(lp, np.ndarray) and abs(loss + float(lp.mean()) / 2) < 1e-4
        c.check(0.25, ok, "RealNVP2D: loss must be the mean NLL per dimension")
    # (c) the training function's contract, samples included: 1 point
    _judge_fit(c, "fit", "q2_fit", 1.0, samples=True)
    return c.result()


# ----------------------------------------------------------------------------- question 3

Q3_NORM_SHAPE, Q3_NORM_LEVELS, Q3_NORM_DRAWS = (2, 2, 1), 2, 1024


def _q3_inputs(seed):
    rng = hidden_rng(seed, 3, 0)
    alpha = float(rng.uniform(0.01, 0.2))
    y = rng.uniform(0, 1, (16, 3, 2, 2)).astype(np.float32)
    log_p_y = rng.normal(-40.0, 15.0, 24)
    dim, levels = int(rng.integers(20, 300)), int(rng.integers(2, 257))
    return alpha, y, log_p_y, dim, levels


def _q3_images(seed):
    """Hidden images for q3_fit: digits in a hidden order (train 256, test 64)."""
    from deepul_helpers import data

    x = data.load("digits", "train")
    idx = hidden_rng(seed, 3, 1).permutation(len(x))
    return x[idx[:256]], x[idx[256:320]], data.info("digits").levels


def probe_q3(ns, seed):
    out = {}
    alpha, y, log_p_y, dim, levels = _q3_inputs(seed)

    def logit():
        s, ld = ns["logit_transform"](torch.from_numpy(y), alpha)
        return {"logit_s": array(s, F64), "logit_ld": array(ld, F64)}

    def bpd():
        f = ns["dequantized_bits_per_dim"]
        return {"bpd_np": f(log_p_y.copy(), dim, levels),
                "bpd_torch": f(torch.from_numpy(log_p_y[:8].astype(np.float32)), dim, levels)}

    def model():
        h, w, ch = Q3_NORM_SHAPE
        torch.manual_seed(fit_seed(seed))
        m = ns["DequantizedRealNVP"](Q3_NORM_SHAPE, Q3_NORM_LEVELS)
        m.eval()
        d = h * w * ch
        codes = np.array([[(i >> j) & 1 for j in range(d)] for i in range(Q3_NORM_LEVELS**d)], dtype=np.uint8)
        x = torch.from_numpy(codes.reshape(-1, h, w, ch)).repeat(Q3_NORM_DRAWS, 1, 1, 1)  # (draws * 16, 2, 2, 1)
        with torch.no_grad():
            lp, lp2 = array(m.log_prob(x), F64), array(m.log_prob(x), F64)
            torch.manual_seed(1)
            loss = float(array(m.loss(x), F64))
            s = m.sample(20)
        p = np.exp(lp).reshape(Q3_NORM_DRAWS, -1)  # (draws, codes)
        se = float(np.sqrt((p.var(0, ddof=1) / Q3_NORM_DRAWS).sum()))  # the Monte Carlo estimate's standard error
        return {"m_lp_shape": list(lp.shape), "m_mass": float(p.mean(0).sum()), "m_mass_se": se,
                "m_noise": not np.array_equal(lp, lp2),
                "m_loss": loss, "m_mean_nll": float(-lp2.mean() / d), "m_sample": array(s, F64),
                "m_sample_dtype": str(s.dtype)}

    def fit():
        tr_x, te_x, lev = _q3_images(seed)
        tr, te, model = quick_fit(ns["q3_fit"], tr_x, te_x, lev, seed=seed)
        model.eval()
        with torch.no_grad():
            again = float(np.mean([array(model.loss(torch.from_numpy(te_x)), F64) for _ in range(4)]))
            s = model.sample(8)
        return {**fit_outputs("fit", (tr, te), dtype=F64), "fit_again": again, "fit_sample": array(s, F64),
                "fit_sample_dtype": str(s.dtype)}

    attempt(out, "logit", logit)
    attempt(out, "bpd", bpd)
    attempt(out, "m", model)
    attempt(out, "fit", fit)
    return out


def judge_q3(out, seed):
    from deepul_helpers import metrics
    from deepul_helpers.models.flows.bijectors import Logit

    c = Checks(out)
    alpha, y, log_p_y, dim, levels = _q3_inputs(seed)
    # (a) the logit step against the reference bijector: 0.75
    if not c.raised("logit", "logit_transform"):
        s, ld = Logit(alpha).forward(torch.from_numpy(y.astype(np.float64)))
        for key, exp, what, pts in (("logit_s", s, "s", 0.25), ("logit_ld", ld, "logdet", 0.5)):
            c.check(pts, close(out, key, exp.numpy(), atol=1e-4), f"logit_transform: {what} {{why}}")
    # (b) bits/dim of the discrete bound, from metrics: 0.75
    if not c.raised("bpd", "dequantized_bits_per_dim"):
        def expected(lp):
            return float(metrics.bits_per_dim(metrics.discrete_nll_bound(-np.mean(lp) / dim, 1.0 / levels)))

        lp32 = log_p_y[:8].astype(np.float32).astype(np.float64)
        c.check(0.5, isinstance(out.get("bpd_np"), float) and abs(out["bpd_np"] - expected(log_p_y)) < 1e-6,
                "dequantized_bits_per_dim: wrong value (the 1/levels scaling and the nats->bits conversion both "
                "count) or not a python float")
        c.check(0.25, isinstance(out.get("bpd_torch"), float) and abs(out["bpd_torch"] - expected(lp32)) < 1e-4,
                "dequantized_bits_per_dim: must also accept a torch tensor and return a python float")
    # (c) the model: probabilities implied by log_prob sum to ~1, fresh noise, loss, samples: 1.5
    if not c.raised("m", "DequantizedRealNVP"):
        n_codes = Q3_NORM_LEVELS ** math.prod(Q3_NORM_SHAPE)
        mass, se = out.get("m_mass"), out.get("m_mass_se")
        shown = f"{mass:.3f}" if isinstance(mass, float) else "not computed"
        # The true sum is at most 1 (the logit step's box holds less than all of the base's mass). Its Monte
        # Carlo estimate may exceed 1 by its noise: up to 4 of its standard errors (at least 0.03, at most 0.2).
        # A fixed 1.03 failed a correct model initialised away from the identity at 1 seed of 41 (1.040 with
        # a standard error of 0.018 at 256 draws); a missing 1/levels term gives 16, a missing (1 - 2 alpha) 0.66.
        slack = min(0.2, max(0.03, 4 * se)) if isinstance(se, float) and math.isfinite(se) else 0.03
        c.check(0.75, out.get("m_lp_shape") == [n_codes * Q3_NORM_DRAWS] and isinstance(mass, float)
                and 0.8 <= mass <= 1 + slack,
                "DequantizedRealNVP: the probabilities E_u[exp(log_prob(x))] summed over every image of a tiny shape "
                f"must be at most 1 (up to the estimate's noise) and close to it (got {shown}); count the logit step, "
                "the 1/levels scaling and every log-determinant")
        c.check(0.25, out.get("m_noise") is True,
                "DequantizedRealNVP: log_prob must draw fresh dequantization noise at each call")
        loss, mean_nll = out.get("m_loss"), out.get("m_mean_nll")
        c.check(0.25, isinstance(loss, float) and isinstance(mean_nll, float) and abs(loss - mean_nll) < 0.05,
                "DequantizedRealNVP: loss must be -mean(log_prob) / D in nats/dim")
        s = out.get("m_sample")
        c.check(0.25, shape_ok(s, (20, *Q3_NORM_SHAPE), finite=False) and out.get("m_sample_dtype") == "torch.uint8"
                and s.min() >= 0 and s.max() < Q3_NORM_LEVELS,
                "DequantizedRealNVP: sample(n) must return a uint8 tensor (n, H, W, C) with values in 0..levels-1")
    # (d) the training function: 1 point
    if not c.raised("fit", "q3_fit", " in quick mode"):
        te, again = out.get("fit_test"), out.get("fit_again")
        shaped = losses_ok(out, "fit", decreasing=False)[0]
        c.check(0.25, shaped, "q3_fit: expected finite train losses per iteration and test losses per epoch")
        c.check(0.25, shaped and isinstance(again, float) and abs(float(te[-1]) - again) < 0.1,
                "q3_fit: the final test loss is not the returned model's loss on the test data")
        c.check(0.25, shaped and 0 < float(te[-1]) < float(te[0]),
                "q3_fit: the test loss must be a positive bound on a discrete NLL and go down")
        s = out.get("fit_sample")
        c.check(0.25, shape_ok(s, (8, 8, 8, 1), finite=False) and out.get("fit_sample_dtype") == "torch.uint8"
                and s.min() >= 0 and s.max() < 17, "q3_fit: the model's samples must be uint8 (n, 8, 8, 1) in 0..16")
    return c.result()


# ----------------------------------------------------------------------------- question 4

Q4_DIM, Q4_TIMING_DIM = 7, 32
Q4_KEYS = ("maf_log_prob_s", "maf_sample_s", "iaf_log_prob_s", "iaf_sample_s", "sampling_speedup",
           "density_speedup")


def _q4_conditioner(seed: int, dim: int, part: int):
    """A hidden autoregressive conditioner v (B, D) -> (mu, log_scale): a MADE with one tanh hidden layer
    (``made_degrees``/``made_masks`` in the natural order) and random weights; output i sees v_<i only."""
    from deepul_helpers.models.autoregressive.made import made_degrees, made_masks

    rng = hidden_rng(seed, 4, part)
    m1, m2 = made_masks(made_degrees(np.arange(dim), [4 * dim]))  # (H, D), (D, H)

    def weights(shape, sd):
        return torch.from_numpy(rng.normal(0, sd, shape).astype(np.float32))

    w1, b1 = weights(m1.shape, 1 / math.sqrt(dim)) * m1, weights(m1.shape[:1], 0.5)
    wm, ws = (weights(m2.shape, 1 / math.sqrt(m2.shape[1])) * m2 for _ in range(2))
    bm, bs = weights((dim,), 0.5), weights((dim,), 0.5)

    def conditioner(v):
        h = torch.tanh(v @ w1.T + b1)  # (B, H)
        return h @ wm.T + bm, 0.5 * torch.tanh(h @ ws.T + bs)  # (B, D) each; log-scale in (-0.5, 0.5)

    return conditioner


def _q4_inputs(seed):
    rng = hidden_rng(seed, 4, 0)
    x = rng.normal(0, 1.5, (16, Q4_DIM)).astype(np.float32)
    z = rng.normal(0, 1.0, (16, Q4_DIM)).astype(np.float32)
    return _q4_conditioner(seed, Q4_DIM, 1), x, z


class _Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, v):
        self.calls += 1
        return self.fn(v)


def probe_q4(ns, seed):
    out = {}
    cond, x, z = _q4_inputs(seed)
    for name, arg in (("maf_log_prob", x), ("maf_sample", z), ("iaf_sample", z), ("iaf_log_prob", x)):
        def call(name=name, arg=arg):
            counter = _Counting(cond)
            with torch.no_grad():
                res = ns[name](torch.from_numpy(arg), counter)
            return {f"{name}_out": array(res, F64), f"{name}_calls": int(counter.calls)}

        attempt(out, name, call)

    def passes():
        # the claim behind the speedups, counted: network passes of each algorithm at D = 32
        cond = _q4_conditioner(seed, Q4_TIMING_DIM, 2)
        v = torch.from_numpy(hidden_rng(seed, 4, 3).normal(0, 1, (4, Q4_TIMING_DIM)).astype(np.float32))
        res = {}
        for name in ("maf_log_prob", "maf_sample", "iaf_sample", "iaf_log_prob"):
            counter = _Counting(cond)
            with torch.no_grad():
                ns[name](v, counter)
            res[f"p_{name}"] = int(counter.calls)
        return res

    def timings():
        # information only (the grade counts passes instead): one thread and the best of 10 runs
        from deepul_helpers.timing import torch_threads

        with torch_threads(1):
            t = ns["q4_timings"](_q4_conditioner(seed, Q4_TIMING_DIM, 2), Q4_TIMING_DIM, n=256, repeats=10)
        return {f"t_{k}": float(t[k]) if isinstance(t[k], (int, float)) else str(type(t[k]).__name__)
                for k in Q4_KEYS}

    def answers():
        a = ns["q4_answers"]()
        return {f"a_{k}": str(a[k]) for k in ("fit_to_data", "fast_sampling")}

    attempt(out, "p", passes)
    attempt(out, "t", timings)
    attempt(out, "a", answers)
    return out


def judge_q4(out, seed):
    from deepul_helpers.models.flows.autoregressive import IAFLayer, MAFLayer
    from deepul_helpers.models.flows.flow import base_log_prob

    c = Checks(out)
    cond, x, z = _q4_inputs(seed)
    maf, iaf = MAFLayer(Q4_DIM, conditioner=cond), IAFLayer(Q4_DIM, conditioner=cond)  # the reference algorithms
    with torch.no_grad():
        zx, ld = maf.forward(torch.from_numpy(x))
        zi, ldi = iaf.forward(torch.from_numpy(x))
        expected = {
            "maf_log_prob": (base_log_prob("normal", zx) + ld, 1),
            "maf_sample": (maf.inverse(torch.from_numpy(z))[0], Q4_DIM),
            "iaf_sample": (iaf.inverse(torch.from_numpy(z))[0], 1),
            "iaf_log_prob": (base_log_prob("normal", zi) + ldi, Q4_DIM),
        }
    # (a) each algorithm against the reference (0.25 each) and its number of conditioner calls (0.25 in all)
    calls_ok = True
    for name, (value, calls) in expected.items():
        if c.raised(name, name):
            calls_ok = False
            continue
        c.check(0.25, close(out, f"{name}_out", value.numpy(), atol=1e-4), f"{name}: {{why}}")
        if out.get(f"{name}_calls") != calls:
            calls_ok = False
            c.fail(f"{name}: called the conditioner {out.get(f'{name}_calls')} times for D = {Q4_DIM}; "
                   f"the algorithm needs {'one call' if calls == 1 else 'D calls'}")
    c.check(0.25, calls_ok, "")  # each wrong count has its message above
    # (b) the speedups: the ratios of the returned times (0.25), and the direction they measure, judged by
    # what the machine cannot change, the network passes of each algorithm at D = 32 (0.25). The seconds
    # themselves depend on the grading machine's load: shown as information, never graded.
    if not c.raised("p", "maf/iaf functions", f" with D = {Q4_TIMING_DIM}"):
        p = {k: out.get(f"p_{k}") for k in ("maf_sample", "iaf_sample", "maf_log_prob", "iaf_log_prob")}
        counted = all(isinstance(v, int) and v >= 1 for v in p.values())
        c.check(0.25, counted and p["maf_sample"] > p["iaf_sample"] and p["iaf_log_prob"] > p["maf_log_prob"],
                f"with D = {Q4_TIMING_DIM}, IAF must sample in fewer network passes than MAF, and MAF evaluate "
                "densities in fewer than IAF (conditioner calls counted: "
                + ", ".join(f"{k} {v}" for k, v in p.items()) + ")")
    if not c.raised("t", "q4_timings"):
        t = {k: out.get(f"t_{k}") for k in Q4_KEYS}
        if all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in t.values()):
            c.check(0.25, math.isclose(t["sampling_speedup"], t["maf_sample_s"] / t["iaf_sample_s"], rel_tol=1e-6)
                    and math.isclose(t["density_speedup"], t["iaf_log_prob_s"] / t["maf_log_prob_s"], rel_tol=1e-6),
                    "q4_timings: the speedups must be the ratios of the returned times")
            c.note(f"q4_timings, for information (not graded: seconds depend on the grading machine's load): with "
                   f"D = {Q4_TIMING_DIM}, IAF sampled {t['sampling_speedup']:.1f}x faster than MAF and MAF evaluated "
                   f"densities {t['density_speedup']:.1f}x faster than IAF (best of 10, one thread)")
        else:
            c.fail("q4_timings: every value must be a positive finite python float")
    # (c) the answers: 0.25
    c.check(0.25, out.get("a_fit_to_data") == "maf" and out.get("a_fast_sampling") == "iaf",
            "q4_answers: not both answers are right")
    return c.result()


QUESTIONS = [
    Question(grade_id="q1_tests", points=3, requires=("mixture_cdf", "AutoregressiveCDFFlow2D", "q1_fit"),
             forbidden=(FLOWS,), probe=probe_q1, judge=judge_q1, timeout_s=120.0),
    Question(grade_id="q2_tests", points=3, requires=("AffineCoupling2D", "RealNVP2D", "q2_fit"),
             forbidden=(FLOWS,), probe=probe_q2, judge=judge_q2, timeout_s=120.0),
    Question(grade_id="q3_tests", points=4,
             requires=("logit_transform", "dequantized_bits_per_dim", "DequantizedRealNVP", "q3_fit"),
             forbidden=(FLOWS,), probe=probe_q3, judge=judge_q3, timeout_s=180.0),
    Question(grade_id="q4_tests", points=2,
             requires=("maf_log_prob", "maf_sample", "iaf_sample", "iaf_log_prob", "q4_timings", "q4_answers"),
             forbidden=(FLOWS,), probe=probe_q4, judge=judge_q4, timeout_s=120.0),
]
