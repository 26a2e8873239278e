"""The grade of homework 2 (normalizing flows). Never released to students.

Each question's ``probe`` runs beside the student's code in the sandbox: it calls the student's
functions on hidden inputs made from the seed and returns plain data. Each ``judge`` runs in the
trusted grader: it rebuilds the same hidden inputs, recomputes the expected values with the
reference implementations (``deepul_helpers.models.flows``, ``deepul_helpers.metrics``), and
awards partial credit per sub-check, with messages that name the check but not the inputs.

Components are judged exactly (to float32 round-off); training functions are called in quick
mode and judged on their contract: shapes, finiteness, a reported test loss that is the model's
own NLL, a density that integrates to 1, samples in the data's range. Question 4's timings are
judged on consistency and direction, never on seconds.

The probes import nothing from ``deepul_helpers.models.flows`` (the sandbox reports any import
of it as the student's); the judges import the reference lazily.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deepul_helpers.autograde.verdict import Question, attempt, close

HIDDEN_SEED = 20261125
FLOWS = "deepul_helpers.models.flows"

# ----------------------------------------------------------------------------- shared helpers


def _rng(seed: int, question: int, part: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed) % 2**32, question, part])


def _arr(value) -> np.ndarray:
    """A student's tensor/array/number -> float64 numpy array (no gradients)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return np.array(value, dtype=np.float64)




def _fit_data(seed: int, question: int, n_train: int = 1000, n_test: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Hidden 2D training data: a ring of Gaussians with a hidden number of modes and radius."""
    rng = _rng(seed, question, 9)
    k, radius = int(rng.integers(3, 7)), float(rng.uniform(1.5, 2.5))
    centre = rng.uniform(-0.5, 0.5, size=2)

    def draw(n):
        ang = rng.integers(0, k, n) * 2 * np.pi / k
        pts = np.stack([np.cos(ang), np.sin(ang)], 1) * radius + centre + rng.normal(size=(n, 2)) * 0.3
        return pts.astype(np.float32)

    return draw(n_train), draw(n_test)


GRID_EXTENT = 7.0  # the hidden 2D data lies well inside [-3.5, 3.5]^2
GRID_N = 200


def _grid_mass(log_prob_fn) -> float:
    """Integral of exp(log_prob) over [-7, 7]^2 by the midpoint rule on a 200 x 200 grid."""
    h = 2 * GRID_EXTENT / GRID_N
    c = -GRID_EXTENT + h * (np.arange(GRID_N) + 0.5)
    gx, gy = np.meshgrid(c, c)
    pts = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32))
    with torch.no_grad():
        lp = torch.cat([log_prob_fn(chunk) for chunk in pts.split(5000)])
    return float(np.exp(_arr(lp)).sum() * h * h)


def _probe_fit(out: dict, tag: str, fit, seed: int, question: int) -> None:
    """Call a 2D fit function in quick mode on hidden data; record its losses, its own NLL on the
    test data, and the grid mass of its density."""
    train_x, test_x = _fit_data(seed, question)

    def run():
        torch.manual_seed(seed % 1000)
        tr, te, model = fit(train_x, test_x, quick=True, seed=seed % 1000, device="cpu")
        res = {f"{tag}_train": _arr(tr), f"{tag}_test": _arr(te)}
        if hasattr(model, "eval"):
            model.eval()
        with torch.no_grad():
            res[f"{tag}_nll"] = float(-_arr(model.log_prob(torch.from_numpy(test_x))).mean() / 2)
        res[f"{tag}_mass"] = _grid_mass(model.log_prob)
        if hasattr(model, "sample"):
            with torch.no_grad():
                s = model.sample(50)
            res[f"{tag}_sample_dtype"] = str(s.dtype)
            res[f"{tag}_sample"] = _arr(s)
        return res

    attempt(out, tag, run)


def _judge_fit(out: dict, tag: str, name: str, points: float, samples: bool = False) -> tuple[float, list[str]]:
    """Contract of a 2D fit: losses, reported loss = own NLL, density integrates to 1 (, samples)."""
    if f"{tag}_error" in out:
        return 0.0, [f"{name} raised {out[f'{tag}_error']} in quick mode"]
    checks = 4 + int(samples)
    each, score, msgs = points / checks, 0.0, []
    tr, te = out.get(f"{tag}_train"), out.get(f"{tag}_test")
    shaped = (isinstance(tr, np.ndarray) and isinstance(te, np.ndarray) and tr.ndim == 1 and te.ndim == 1
              and tr.size >= 1 and te.size >= 2)
    if shaped and np.all(np.isfinite(tr)) and np.all(np.isfinite(te)):
        score += each
    else:
        msgs.append(f"{name}: expected finite train losses per iteration and test losses before training and "
                    "after each epoch")
    nll = out.get(f"{tag}_nll")
    if shaped and isinstance(nll, float) and abs(float(te[-1]) - nll) <= 1e-3 * max(1.0, abs(nll)):
        score += each
    else:
        msgs.append(f"{name}: the final test loss is not the returned model's NLL per dimension on the test data")
    if shaped and float(te[-1]) < float(te[0]):
        score += each
    else:
        msgs.append(f"{name}: the test loss did not go down in quick mode")
    mass = out.get(f"{tag}_mass")
    if isinstance(mass, float) and 0.95 <= mass <= 1.02:
        score += each
    else:
        shown = f"{mass:.3f}" if isinstance(mass, float) else "not computed"
        msgs.append(f"{name}: the model's density does not integrate to 1 (got {shown}); check the log-determinants")
    if samples:
        s = out.get(f"{tag}_sample")
        if (isinstance(s, np.ndarray) and s.shape == (50, 2) and np.all(np.isfinite(s))
                and out.get(f"{tag}_sample_dtype") == "torch.float32"):
            score += each
        else:
            msgs.append(f"{name}: sample(n) must return a finite float32 tensor (n, 2)")
    return score, msgs


# ----------------------------------------------------------------------------- question 1


def _q1_mixture_inputs(seed):
    rng = _rng(seed, 1, 0)
    b, k = 64, 5
    x = rng.normal(0, 2.0, b)
    logits, means = rng.normal(0, 1, (b, k)), rng.normal(0, 1.5, (b, k))
    log_scales = rng.uniform(-1.0, 1.0, (b, k))
    return [a.astype(np.float32) for a in (x, logits, means, log_scales)]


def probe_q1(ns, seed):
    out = {}

    def cdf():
        args = [torch.from_numpy(a) for a in _q1_mixture_inputs(seed)]
        z, ld = ns["mixture_cdf"](*args)
        return {"cdf_z": _arr(z), "cdf_ld": _arr(ld)}

    def model():
        torch.manual_seed(seed % 1000)
        m = ns["AutoregressiveCDFFlow2D"]()
        pts = torch.from_numpy(_rng(seed, 1, 1).normal(0, 1.5, (6, 2)).astype(np.float32))
        z, logdet = m(pts)
        jac = [torch.autograd.functional.jacobian(lambda p: m(p[None])[0][0], p) for p in pts]
        return {"m_z": _arr(z), "m_logdet": _arr(logdet), "m_jac": _arr(torch.stack(jac)),
                "m_log_prob": _arr(m.log_prob(pts)), "m_loss": float(_arr(m.loss(pts)))}

    attempt(out, "cdf", cdf)
    attempt(out, "m", model)
    _probe_fit(out, "fit", ns["q1_fit"], seed, 1)
    return out


def _reference_mixture_cdf(x, logits, means, log_scales):
    """z = F(x) and log F'(x) from the reference CDF flow (which returns logit F and its log-derivative)."""
    from deepul_helpers.models.flows.cdf import mixture_cdf_logit

    t = lambda a: torch.from_numpy(a.astype(np.float64))
    zl, ld = mixture_cdf_logit(t(x)[:, None], t(logits)[:, None], t(means)[:, None], t(log_scales)[:, None],
                               kind="gaussian")
    zl, ld = zl[:, 0], ld[:, 0]
    log_f = ld + torch.nn.functional.logsigmoid(zl) + torch.nn.functional.logsigmoid(-zl)
    return torch.sigmoid(zl).numpy(), log_f.numpy()


def judge_q1(out, seed):
    score, msgs = 0.0, []
    # (a) the mixture CDF, exactly: 1 point
    if "cdf_error" in out:
        msgs.append(f"mixture_cdf raised {out['cdf_error']}")
    else:
        z, log_f = _reference_mixture_cdf(*_q1_mixture_inputs(seed))
        for key, exp, what in (("cdf_z", z, "z"), ("cdf_ld", log_f, "log_dz_dx")):
            ok, why = close(out, key, exp, atol=2e-5)
            score += 0.5 if ok else 0.0
            msgs += [] if ok else [f"mixture_cdf: {what} {why}"]
    # (b) the model's structure, by its own autograd Jacobian: 1 point
    if "m_error" in out:
        msgs.append(f"AutoregressiveCDFFlow2D raised {out['m_error']}")
    else:
        z, jac, logdet = out.get("m_z"), out.get("m_jac"), out.get("m_logdet")
        if isinstance(z, np.ndarray) and z.shape == (6, 2) and np.all((z > 0) & (z < 1)):
            score += 0.25
        else:
            msgs.append("AutoregressiveCDFFlow2D: z must be (B, 2) with values in (0, 1)")
        if isinstance(jac, np.ndarray) and jac.shape == (6, 2, 2) and np.all(jac[:, 0, 1] == 0):
            score += 0.25
        else:
            msgs.append("AutoregressiveCDFFlow2D: z1 must depend on x1 only")
        if (isinstance(jac, np.ndarray) and jac.shape == (6, 2, 2)
                and close(out, "m_logdet", np.log(np.abs(np.linalg.det(jac))), atol=1e-4)[0]):
            score += 0.25
        else:
            msgs.append("AutoregressiveCDFFlow2D: logdet is not log|det dz/dx|")
        lp_ok = isinstance(logdet, np.ndarray) and close(out, "m_log_prob", logdet, atol=1e-5)[0]
        loss = out.get("m_loss")
        if lp_ok and isinstance(loss, float) and abs(loss + float(out["m_log_prob"].mean()) / 2) < 1e-5:
            score += 0.25
        else:
            msgs.append("AutoregressiveCDFFlow2D: log_prob must be the logdet (uniform base) and loss the mean NLL / 2")
    # (c) the training function's contract: 1 point
    s, m = _judge_fit(out, "fit", "q1_fit", 1.0)
    return round(score + s, 6), msgs + m


# ----------------------------------------------------------------------------- question 2


def _q2_net(seed: int, which: int) -> nn.Module:
    """The hidden conditioner the grader puts into the student's coupling layer."""
    rng = _rng(seed, 2, 10 + which)
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.from_numpy(rng.normal(0, 0.7, tuple(p.shape)).astype(np.float32)))
    return net


def _q2_coupling_inputs(seed: int, which: int):
    rng = _rng(seed, 2, 20 + which)
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
            return {f"c{which}_fz": _arr(fz), f"c{which}_fld": _arr(fld), f"c{which}_ix": _arr(ix),
                    f"c{which}_ild": _arr(ild)}

        attempt(out, f"c{which}", coupling)

    def model():
        rng = _rng(seed, 2, 30)
        loc, scale = rng.normal(0, 1, 2), rng.uniform(0.5, 2.0, 2)
        torch.manual_seed(seed % 1000)
        m = ns["RealNVP2D"](n_couplings=4, hidden=16, loc=tuple(loc), scale=tuple(scale))
        with torch.no_grad():  # a non-identity flow: perturb every parameter
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        x = torch.from_numpy((loc + scale * rng.normal(0, 1, (8, 2))).astype(np.float32))
        z, logdet = m(x)
        jac = [torch.autograd.functional.jacobian(lambda p: m(p[None])[0][0], p) for p in x]
        with torch.no_grad():
            back = m.inverse(z)
        return {"m_z": _arr(z), "m_logdet": _arr(logdet), "m_jac": _arr(torch.stack(jac)), "m_back": _arr(back),
                "m_x": _arr(x), "m_log_prob": _arr(m.log_prob(x)), "m_loss": float(_arr(m.loss(x)))}

    attempt(out, "m", model)
    _probe_fit(out, "fit", ns["q2_fit"], seed, 2)
    return out


def judge_q2(out, seed):
    from deepul_helpers.models.flows.coupling import AffineCoupling

    score, msgs = 0.0, []
    # (a) the coupling layer against the reference with the same conditioner: 1 point
    for which in (0, 1):
        if f"c{which}_error" in out:
            msgs.append(f"AffineCoupling2D (mask {['[1, 0]', '[0, 1]'][which]}) raised {out[f'c{which}_error']}")
            continue
        mask, scale, x, z = _q2_coupling_inputs(seed, which)
        ref = AffineCoupling(torch.tensor([mask]), _q2_net(seed, which), 2)
        with torch.no_grad():
            ref.scale.copy_(torch.from_numpy(scale).reshape(1, 2))
            fz, fld = ref(torch.from_numpy(x))
            ix, ild = ref.inverse(torch.from_numpy(z))
        for key, exp, what in (("fz", fz, "forward z"), ("fld", fld, "forward logdet"), ("ix", ix, "inverse x"),
                               ("ild", ild, "inverse logdet")):
            ok, why = close(out, f"c{which}_{key}", exp.numpy(), atol=1e-4)
            score += 0.125 if ok else 0.0
            msgs += [] if ok else [f"AffineCoupling2D (mask {['[1, 0]', '[0, 1]'][which]}): {what} {why}"]
    # (b) RealNVP2D: inverse, logdet vs autograd, log_prob and loss: 1 point
    if "m_error" in out:
        msgs.append(f"RealNVP2D raised {out['m_error']}")
    else:
        jac, z, logdet = out.get("m_jac"), out.get("m_z"), out.get("m_logdet")
        if close(out, "m_back", out.get("m_x"), atol=1e-4)[0]:
            score += 0.25
        else:
            msgs.append("RealNVP2D: inverse(forward(x)) does not give x back")
        if (isinstance(jac, np.ndarray) and jac.shape == (8, 2, 2)
                and close(out, "m_logdet", np.log(np.abs(np.linalg.det(jac))), atol=1e-3)[0]):
            score += 0.25
        else:
            msgs.append("RealNVP2D: logdet is not log|det dz/dx| (the standardisation counts too)")
        if isinstance(z, np.ndarray) and z.shape == (8, 2) and isinstance(logdet, np.ndarray):
            expected = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1) + logdet
            ok = close(out, "m_log_prob", expected, atol=1e-4)[0]
        else:
            ok = False
        score += 0.25 if ok else 0.0
        msgs += [] if ok else ["RealNVP2D: log_prob must be log N(z; 0, I) + logdet"]
        loss, lp = out.get("m_loss"), out.get("m_log_prob")
        if isinstance(loss, float) and isinstance(lp, np.ndarray) and abs(loss + float(lp.mean()) / 2) < 1e-4:
            score += 0.25
        else:
            msgs.append("RealNVP2D: loss must be the mean NLL per dimension")
    # (c) the training function's contract, samples included: 1 point
    s, m = _judge_fit(out, "fit", "q2_fit", 1.0, samples=True)
    return round(score + s, 6), msgs + m


# ----------------------------------------------------------------------------- question 3

Q3_NORM_SHAPE, Q3_NORM_LEVELS, Q3_NORM_DRAWS = (2, 2, 1), 2, 256


def _q3_inputs(seed):
    rng = _rng(seed, 3, 0)
    alpha = float(rng.uniform(0.01, 0.2))
    y = rng.uniform(0, 1, (16, 3, 2, 2)).astype(np.float32)
    log_p_y = rng.normal(-40.0, 15.0, 24)
    dim, levels = int(rng.integers(20, 300)), int(rng.integers(2, 257))
    return alpha, y, log_p_y, dim, levels


def _q3_images(seed):
    """Hidden images for q3_fit: digits in a hidden order (train 256, test 64)."""
    from deepul_helpers import data

    x = data.load("digits", "train")
    idx = _rng(seed, 3, 1).permutation(len(x))
    return x[idx[:256]], x[idx[256:320]], data.info("digits").levels


def probe_q3(ns, seed):
    out = {}
    alpha, y, log_p_y, dim, levels = _q3_inputs(seed)

    def logit():
        s, ld = ns["logit_transform"](torch.from_numpy(y), alpha)
        return {"logit_s": _arr(s), "logit_ld": _arr(ld)}

    def bpd():
        f = ns["dequantized_bits_per_dim"]
        return {"bpd_np": f(log_p_y.copy(), dim, levels),
                "bpd_torch": f(torch.from_numpy(log_p_y[:8].astype(np.float32)), dim, levels)}

    def model():
        h, w, c = Q3_NORM_SHAPE
        torch.manual_seed(seed % 1000)
        m = ns["DequantizedRealNVP"](Q3_NORM_SHAPE, Q3_NORM_LEVELS)
        m.eval()
        d = h * w * c
        codes = np.array([[(i >> j) & 1 for j in range(d)] for i in range(Q3_NORM_LEVELS**d)], dtype=np.uint8)
        x = torch.from_numpy(codes.reshape(-1, h, w, c)).repeat(Q3_NORM_DRAWS, 1, 1, 1)  # (draws * 16, 2, 2, 1)
        with torch.no_grad():
            lp = m.log_prob(x)
            lp2 = m.log_prob(x)
            torch.manual_seed(1)
            loss = float(_arr(m.loss(x)))
            s = m.sample(20)
        probs = np.exp(_arr(lp)).reshape(Q3_NORM_DRAWS, -1).mean(0)
        return {"m_lp_shape": list(lp.shape), "m_mass": float(probs.sum()), "m_noise": bool(not np.array_equal(
            _arr(lp), _arr(lp2))), "m_loss": loss, "m_mean_nll": float(-_arr(lp2).mean() / d),
            "m_sample": _arr(s), "m_sample_dtype": str(s.dtype)}

    def fit():
        tr_x, te_x, lev = _q3_images(seed)
        torch.manual_seed(seed % 1000)
        tr, te, model = ns["q3_fit"](tr_x, te_x, lev, quick=True, seed=seed % 1000, device="cpu")
        model.eval()
        with torch.no_grad():
            again = float(np.mean([_arr(model.loss(torch.from_numpy(te_x))) for _ in range(4)]))
            s = model.sample(8)
        return {"fit_train": _arr(tr), "fit_test": _arr(te), "fit_again": again, "fit_sample": _arr(s),
                "fit_sample_dtype": str(s.dtype)}

    attempt(out, "logit", logit)
    attempt(out, "bpd", bpd)
    attempt(out, "m", model)
    attempt(out, "fit", fit)
    return out


def judge_q3(out, seed):
    from deepul_helpers import metrics
    from deepul_helpers.models.flows.bijectors import Logit

    score, msgs = 0.0, []
    alpha, y, log_p_y, dim, levels = _q3_inputs(seed)
    # (a) the logit step against the reference bijector: 0.75
    if "logit_error" in out:
        msgs.append(f"logit_transform raised {out['logit_error']}")
    else:
        s, ld = Logit(alpha).forward(torch.from_numpy(y.astype(np.float64)))
        for key, exp, what, pts in (("logit_s", s, "s", 0.25), ("logit_ld", ld, "logdet", 0.5)):
            ok, why = close(out, key, exp.numpy(), atol=1e-4)
            score += pts if ok else 0.0
            msgs += [] if ok else [f"logit_transform: {what} {why}"]
    # (b) bits/dim of the discrete bound, from metrics: 0.75
    if "bpd_error" in out:
        msgs.append(f"dequantized_bits_per_dim raised {out['bpd_error']}")
    else:
        def expected(lp):
            return float(metrics.bits_per_dim(metrics.discrete_nll_bound(-np.mean(lp) / dim, 1.0 / levels)))

        ok_np = isinstance(out.get("bpd_np"), float) and abs(out["bpd_np"] - expected(log_p_y)) < 1e-6
        lp32 = log_p_y[:8].astype(np.float32).astype(np.float64)
        ok_t = isinstance(out.get("bpd_torch"), float) and abs(out["bpd_torch"] - expected(lp32)) < 1e-4
        score += 0.5 * ok_np + 0.25 * ok_t
        if not ok_np:
            msgs.append("dequantized_bits_per_dim: wrong value (the 1/levels scaling and the nats->bits "
                        "conversion both count) or not a python float")
        if not ok_t:
            msgs.append("dequantized_bits_per_dim: must also accept a torch tensor and return a python float")
    # (c) the model: probabilities implied by log_prob sum to ~1, fresh noise, loss, samples: 1.5
    if "m_error" in out:
        msgs.append(f"DequantizedRealNVP raised {out['m_error']}")
    else:
        n_codes = Q3_NORM_LEVELS ** math.prod(Q3_NORM_SHAPE)
        mass = out.get("m_mass")
        if out.get("m_lp_shape") == [n_codes * Q3_NORM_DRAWS] and isinstance(mass, float) and 0.8 <= mass <= 1.03:
            score += 0.75
        else:
            shown = f"{mass:.3f}" if isinstance(mass, float) else "not computed"
            msgs.append("DequantizedRealNVP: the probabilities E_u[exp(log_prob(x))] summed over every image of a "
                        f"tiny shape must be at most 1 and close to it (got {shown}); count the logit step, the "
                        "1/levels scaling and every log-determinant")
        if out.get("m_noise") is True:
            score += 0.25
        else:
            msgs.append("DequantizedRealNVP: log_prob must draw fresh dequantization noise at each call")
        loss, mean_nll = out.get("m_loss"), out.get("m_mean_nll")
        if isinstance(loss, float) and isinstance(mean_nll, float) and abs(loss - mean_nll) < 0.05:
            score += 0.25
        else:
            msgs.append("DequantizedRealNVP: loss must be -mean(log_prob) / D in nats/dim")
        s = out.get("m_sample")
        if (isinstance(s, np.ndarray) and s.shape == (20, *Q3_NORM_SHAPE) and out.get("m_sample_dtype") ==
                "torch.uint8" and s.min() >= 0 and s.max() < Q3_NORM_LEVELS):
            score += 0.25
        else:
            msgs.append("DequantizedRealNVP: sample(n) must return a uint8 tensor (n, H, W, C) with values "
                        "in 0..levels-1")
    # (d) the training function: 1 point
    if "fit_error" in out:
        msgs.append(f"q3_fit raised {out['fit_error']} in quick mode")
    else:
        tr, te, again = out.get("fit_train"), out.get("fit_test"), out.get("fit_again")
        shaped = (isinstance(tr, np.ndarray) and isinstance(te, np.ndarray) and tr.ndim == 1 and te.ndim == 1
                  and tr.size >= 1 and te.size >= 2 and np.all(np.isfinite(tr)) and np.all(np.isfinite(te)))
        score += 0.25 if shaped else 0.0
        msgs += [] if shaped else ["q3_fit: expected finite train losses per iteration and test losses per epoch"]
        ok = shaped and isinstance(again, float) and abs(float(te[-1]) - again) < 0.1
        score += 0.25 if ok else 0.0
        msgs += [] if ok else ["q3_fit: the final test loss is not the returned model's loss on the test data"]
        ok = shaped and 0 < float(te[-1]) < float(te[0])
        score += 0.25 if ok else 0.0
        msgs += [] if ok else ["q3_fit: the test loss must be a positive bound on a discrete NLL and go down"]
        s = out.get("fit_sample")
        ok = (isinstance(s, np.ndarray) and s.shape == (8, 8, 8, 1) and out.get("fit_sample_dtype") == "torch.uint8"
              and s.min() >= 0 and s.max() < 17)
        score += 0.25 if ok else 0.0
        msgs += [] if ok else ["q3_fit: the model's samples must be uint8 (n, 8, 8, 1) in 0..16"]
    return round(score, 6), msgs


# ----------------------------------------------------------------------------- question 4

Q4_DIM, Q4_TIMING_DIM = 7, 32
Q4_KEYS = ("maf_log_prob_s", "maf_sample_s", "iaf_log_prob_s", "iaf_sample_s", "sampling_speedup",
           "density_speedup")


def _q4_inputs(seed):
    from deepul_helpers.homework.hw2 import make_conditioner

    rng = _rng(seed, 4, 0)
    cond = make_conditioner(Q4_DIM, seed=int(rng.integers(0, 2**31)))
    x = rng.normal(0, 1.5, (16, Q4_DIM)).astype(np.float32)
    z = rng.normal(0, 1.0, (16, Q4_DIM)).astype(np.float32)
    return cond, x, z


class _Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, v):
        self.calls += 1
        return self.fn(v)


def probe_q4(ns, seed):
    from deepul_helpers.homework.hw2 import make_conditioner

    out = {}
    cond, x, z = _q4_inputs(seed)
    for name, arg in (("maf_log_prob", x), ("maf_sample", z), ("iaf_sample", z), ("iaf_log_prob", x)):
        def call(name=name, arg=arg):
            counter = _Counting(cond)
            with torch.no_grad():
                res = ns[name](torch.from_numpy(arg), counter)
            return {f"{name}_out": _arr(res), f"{name}_calls": int(counter.calls)}

        attempt(out, name, call)

    def timings():
        # one thread and the best of 10 runs: the direction must not depend on what else the grading
        # machine is doing (D = 32 sequential passes against one is a ~30x difference when undisturbed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            t = ns["q4_timings"](make_conditioner(Q4_TIMING_DIM, seed=seed % 1000), Q4_TIMING_DIM, n=256,
                                 repeats=10)
        finally:
            torch.set_num_threads(threads)
        return {f"t_{k}": float(t[k]) if isinstance(t[k], (int, float)) else str(type(t[k]).__name__)
                for k in Q4_KEYS}

    def answers():
        a = ns["q4_answers"]()
        return {f"a_{k}": str(a[k]) for k in ("fit_to_data", "fast_sampling")}

    attempt(out, "t", timings)
    attempt(out, "a", answers)
    return out


def judge_q4(out, seed):
    from deepul_helpers.models.flows.autoregressive import IAFLayer, MAFLayer
    from deepul_helpers.models.flows.flow import base_log_prob

    score, msgs = 0.0, []
    cond, x, z = _q4_inputs(seed)
    maf, iaf = MAFLayer(Q4_DIM), IAFLayer(Q4_DIM)
    # the reference algorithms, run with the hidden conditioner (an instance attribute wins over the method)
    maf.__dict__["_params"] = iaf.__dict__["_params"] = cond
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
        if f"{name}_error" in out:
            msgs.append(f"{name} raised {out[f'{name}_error']}")
            calls_ok = False
            continue
        ok, why = close(out, f"{name}_out", value.numpy(), atol=1e-4)
        score += 0.25 if ok else 0.0
        msgs += [] if ok else [f"{name}: {why}"]
        if out.get(f"{name}_calls") != calls:
            calls_ok = False
            msgs.append(f"{name}: called the conditioner {out.get(f'{name}_calls')} times for D = {Q4_DIM}; "
                        f"the algorithm needs {'one call' if calls == 1 else 'D calls'}")
    score += 0.25 if calls_ok else 0.0
    # (b) timings: consistent with their own timings (0.25) and in the right direction (0.25)
    if "t_error" in out:
        msgs.append(f"q4_timings raised {out['t_error']}")
    else:
        t = {k: out.get(f"t_{k}") for k in Q4_KEYS}
        if all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in t.values()):
            consistent = (math.isclose(t["sampling_speedup"], t["maf_sample_s"] / t["iaf_sample_s"], rel_tol=1e-6)
                          and math.isclose(t["density_speedup"], t["iaf_log_prob_s"] / t["maf_log_prob_s"],
                                           rel_tol=1e-6))
            score += 0.25 if consistent else 0.0
            msgs += [] if consistent else ["q4_timings: the speedups must be the ratios of the returned times"]
            direction = t["sampling_speedup"] > 1 and t["density_speedup"] > 1
            score += 0.25 if direction else 0.0
            msgs += [] if direction else [f"q4_timings: with D = {Q4_TIMING_DIM}, IAF must sample faster than MAF "
                                          "and MAF evaluate densities faster than IAF"]
        else:
            msgs.append("q4_timings: every value must be a positive finite python float")
    # (c) the answers: 0.25
    if out.get("a_fit_to_data") == "maf" and out.get("a_fast_sampling") == "iaf":
        score += 0.25
    else:
        msgs.append("q4_answers: not both answers are right")
    return round(score, 6), msgs


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
