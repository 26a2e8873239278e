"""Correct implementations of the homework components written differently from the course's reference
solutions, for the fairness tests (``tests/test_fairness.py``) and the seed sweep (``tools/seed_sweep.py``).

Each meets its homework's stated contract; they differ from the reference solution where a student's code
may: float32 instead of the input's dtype, other formulas (a clamp, a mid-point approximation, a
``torch.distributions`` CDF, a loop where the reference vectorises), or other training settings.
``namespace(assignment, variant)`` is the reference solution's namespace (what the grader loads from it) with
a variant's definitions put in its place; ``VARIANTS`` lists every homework's variants.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepul_helpers.autograde.verdict import notebook_namespace

REPO = Path(__file__).resolve().parents[1]
FIT_NAMES = {f"q{k}_fit" for k in range(1, 6)}


# ----------------------------------------------------------------------------- hw1


def logistic_clamped(x, logit_weights, means, log_scales, levels):
    """Written as the original course's solution is: differences of float32 sigmoids, the edge bins
    taking the tails, and a small clamp before the log."""
    xf = x.float().unsqueeze(-1)
    log_scales = log_scales.clamp(-30.0, 50.0)
    inv_s = torch.exp(-log_scales)
    plus = torch.sigmoid((xf + 0.5 - means) * inv_s)
    minus = torch.sigmoid((xf - 0.5 - means) * inv_s)
    cdf_plus = torch.where(xf >= levels - 1, torch.ones_like(plus), plus)
    cdf_minus = torch.where(xf <= 0, torch.zeros_like(minus), minus)
    log_p = torch.log(torch.clamp(cdf_plus - cdf_minus, min=1e-12))
    return torch.logsumexp(F.log_softmax(logit_weights, dim=-1) + log_p, dim=-1)


def logistic_midpoint(x, logit_weights, means, log_scales, levels):
    """Written as PixelCNN++'s likelihood is: exact log-CDFs at the edge bins, the sigmoid difference
    where it is at least 1e-5, the density at the bin's centre (bin width 1) below that."""
    xf = x.float().unsqueeze(-1)
    log_scales = log_scales.clamp(-30.0, 50.0)
    inv_s = torch.exp(-log_scales)
    plus_in, min_in, mid_in = (xf + 0.5 - means) * inv_s, (xf - 0.5 - means) * inv_s, (xf - means) * inv_s
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    inner = torch.where(cdf_delta > 1e-5, torch.log(torch.clamp(cdf_delta, min=1e-12)), log_pdf_mid)
    log_p = torch.where(xf <= 0, F.logsigmoid(plus_in),
                        torch.where(xf >= levels - 1, -F.softplus(min_in), inner))
    return torch.logsumexp(F.log_softmax(logit_weights, dim=-1) + log_p, dim=-1)


def made_masks_loops(degrees, levels=1):
    """Unit by unit, in numpy, returned as float32 tensors."""
    units = [np.repeat(np.asarray(degrees[0]), levels), *[np.asarray(d) for d in degrees[1:]]]
    masks = []
    for below, above in zip(units[:-1], units[1:]):
        m = np.zeros((len(above), len(below)), dtype=np.float32)
        for i, a in enumerate(above):
            for j, b in enumerate(below):
                m[i, j] = float(a >= b)
        masks.append(torch.from_numpy(m))
    out = units[0]
    last = np.array([[float(o > h) for h in units[-1]] for o in out], dtype=np.float32).reshape(len(out), -1)
    return [*masks, torch.from_numpy(last)]


def ensemble_log_prob_float32(log_probs):
    """In float32 (a log-mean-exp by hand)."""
    lp = log_probs.float()
    top = lp.max(0).values
    return top + torch.log(torch.exp(lp - top).mean(0))


def pixelcnn_mask_loops(mask_type, in_channels, out_channels, kernel_size, color_channels=1):
    """Entry by entry, in numpy."""
    c = kernel_size // 2
    m = np.zeros((out_channels, in_channels, kernel_size, kernel_size), dtype=np.float32)
    for o in range(out_channels):
        for i in range(in_channels):
            for r in range(kernel_size):
                for s in range(kernel_size):
                    if r < c or (r == c and s < c):
                        m[o, i, r, s] = 1
                    elif r == c and s == c:
                        go, gi = o % color_channels, i % color_channels
                        m[o, i, r, s] = gi < go if mask_type == "A" else gi <= go
    return torch.from_numpy(m)


def causal_attention_float32(q, k, v):
    """torch's fused attention, in float32."""
    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)


def attention_step_float32(q, k, v, cache=None):
    """In float32, the cache concatenated before the scores."""
    q, k, v = q.float(), k.float(), v.float()
    if cache is not None:
        k, v = torch.cat([cache[0].float(), k], 2), torch.cat([cache[1].float(), v], 2)
    w = torch.softmax(torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1]), -1)
    return torch.einsum("bhqk,bhkd->bhqd", w, v), (k, v)


# ----------------------------------------------------------------------------- hw2


def mixture_cdf_distributions(x, logits, means, log_scales):
    """With torch.distributions, in float32."""
    comp = torch.distributions.Normal(means.float(), log_scales.float().exp())
    log_w = torch.log_softmax(logits.float(), -1)
    xf = x.float()[:, None]
    z = (log_w.exp() * comp.cdf(xf)).sum(-1)
    return z, torch.logsumexp(log_w + comp.log_prob(xf), -1)


class AffineCoupling2DWhere(nn.Module):
    """The free coordinate picked by torch.where instead of mask arithmetic; a Tanh conditioner."""

    def __init__(self, mask, hidden=64):
        super().__init__()
        self.register_buffer("mask", torch.tensor([float(m) for m in mask]).reshape(1, 2))
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 4))
        self.scale = nn.Parameter(torch.ones(1, 2))

    def _params(self, kept):
        h = self.net(kept * self.mask)
        free = 1 - self.mask
        return h[:, :2] * free, (self.scale * torch.tanh(h[:, 2:])) * free

    def forward(self, x):
        t, s = self._params(x)
        return torch.where(self.mask.bool(), x, x * torch.exp(s) + t), s.sum(1)

    def inverse(self, z):
        t, s = self._params(z)
        return torch.where(self.mask.bool(), z, (z - t) / torch.exp(s)), -s.sum(1)


class RealNVP2DWhere(nn.Module):
    """RealNVP over AffineCoupling2DWhere; the standardisation's log-determinant added at the end."""

    def __init__(self, n_couplings=8, hidden=64, loc=(0.0, 0.0), scale=(1.0, 1.0)):
        super().__init__()
        self.register_buffer("loc", torch.tensor([float(v) for v in loc]))
        self.register_buffer("sd", torch.tensor([float(v) for v in scale]))
        self.layers = nn.ModuleList(AffineCoupling2DWhere([(i + 1) % 2, i % 2], hidden) for i in range(n_couplings))

    def forward(self, x):
        z, total = (x - self.loc) / self.sd, 0.0
        for layer in self.layers:
            z, ld = layer(z)
            total = total + ld
        return z, total - torch.log(self.sd).sum()

    def inverse(self, z):
        for layer in self.layers[::-1]:
            z = layer.inverse(z)[0]
        return z * self.sd + self.loc

    def log_prob(self, x):
        z, ld = self(x)
        return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1) + ld

    def loss(self, x):
        return -self.log_prob(x).mean() / 2

    @torch.no_grad()
    def sample(self, n):
        return self.inverse(torch.randn(n, 2)).float()


def logit_transform_softplus(y, alpha=0.05):
    """The log-determinant as softplus(s) + softplus(-s) + log(1 - 2 alpha), in float32."""
    p = alpha + (1 - 2 * alpha) * y.float()
    s = torch.logit(p)
    ld = F.softplus(s) + F.softplus(-s) + math.log(1 - 2 * alpha)
    return s, ld.flatten(1).sum(1)


def dequantized_bits_per_dim_numpy(log_p_y, dim, levels):
    """In numpy: bits = (nats + log levels) / log 2."""
    lp = np.asarray(log_p_y.detach().cpu() if hasattr(log_p_y, "detach") else log_p_y, dtype=np.float64)
    return float((np.mean(-lp) / dim + np.log(levels)) / np.log(2))


def maf_log_prob_stacked(x, conditioner):
    mu, s = conditioner(x)
    z = (x - mu) / torch.exp(s)
    return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1) - s.sum(1)


def maf_sample_stacked(z, conditioner):
    """x built column by column (no in-place writes), D calls."""
    cols = []
    for i in range(z.shape[1]):
        x = torch.cat([*cols, torch.zeros(len(z), z.shape[1] - i, dtype=z.dtype)], 1) if cols else torch.zeros_like(z)
        mu, s = conditioner(x)
        cols.append((mu[:, i] + torch.exp(s[:, i]) * z[:, i])[:, None])
    return torch.cat(cols, 1)


def iaf_sample_stacked(z, conditioner):
    mu, s = conditioner(z)
    return z * torch.exp(s) + mu


def iaf_log_prob_stacked(x, conditioner):
    """z built column by column, D calls; the log-scales of the last call."""
    cols, s = [], None
    for i in range(x.shape[1]):
        z = torch.cat([*cols, torch.zeros(len(x), x.shape[1] - i, dtype=x.dtype)], 1) if cols else torch.zeros_like(x)
        mu, s = conditioner(z)
        cols.append(((x[:, i] - mu[:, i]) / torch.exp(s[:, i]))[:, None])
    z = torch.cat(cols, 1)
    return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1) - s.sum(1)


# ----------------------------------------------------------------------------- hw3


def gaussian_kl_distributions(mu, logvar):
    q = torch.distributions.Normal(mu.float(), torch.exp(0.5 * logvar.float()))
    return torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))


def iwae_bound_float32(log_w):
    return torch.logsumexp(log_w.float(), 0) - math.log(log_w.shape[0])


def categorical_log_likelihood_ce(logits, x):
    b, d, n = logits.shape
    ce = F.cross_entropy(logits.float().reshape(b * d, n), x.long().reshape(-1), reduction="none")
    return -ce.reshape(b, d).sum(1)


def quantize_expanded(z_e, codebook):
    """Squared distances as |z|^2 - 2 z.e + |e|^2 (float32 round-off: near-ties may go either way)."""
    flat = z_e.reshape(-1, z_e.shape[-1]).float()
    d2 = (flat**2).sum(1, keepdim=True) - 2 * flat @ codebook.float().T + (codebook.float() ** 2).sum(1)
    idx = d2.argmin(1)
    return codebook[idx].reshape(z_e.shape), idx.reshape(z_e.shape[:-1])


def straight_through_detach(z_e, z_q):
    return z_e + (z_q - z_e).detach()


def sbn_log_prob_loops(x, prior_logits, weight, bias):
    """Configuration by configuration, in float32 log space."""
    x, a, w, b = x.float(), prior_logits.float(), weight.float(), bias.float()
    terms = []
    for bits in range(2 ** len(a)):
        z = torch.tensor([(bits >> i) & 1 for i in range(len(a))], dtype=torch.float32)
        log_pz = (z * F.logsigmoid(a) + (1 - z) * F.logsigmoid(-a)).sum()
        logits = w @ z + b
        terms.append(log_pz + (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(1))
    return torch.logsumexp(torch.stack(terms, 1), 1)


# ----------------------------------------------------------------------------- hw4


def d_loss_bce(real_logits, fake_logits):
    r, f = real_logits.float(), fake_logits.float()
    return (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
            + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))


def g_loss_minimax_softplus(fake_logits):
    return -F.softplus(fake_logits.float()).mean()


def g_loss_nonsaturating_bce(fake_logits):
    f = fake_logits.float()
    return F.binary_cross_entropy_with_logits(f, torch.ones_like(f))


def spectral_normalize_vectors(weight, u, iterations=1):
    """Power iteration written with explicit v and u updates."""
    w = weight.reshape(len(weight), -1)
    with torch.no_grad():
        for _ in range(iterations):
            v = w.T @ u
            v = v / v.norm()
            u = w @ v
            u = u / u.norm()
        v = w.T @ u
        v = v / v.norm()
    sigma = torch.dot(u, w @ v)
    return weight / sigma, sigma, u


def mmd2_unbiased_cdist(x, y, bandwidths):
    """torch.cdist distances, the diagonals removed by a mask."""
    def k(a, b):
        d2 = torch.cdist(a, b) ** 2
        return sum(torch.exp(-d2 / (2 * s**2)) for s in bandwidths)

    off = lambda t: t[~torch.eye(len(t), dtype=torch.bool)]  # noqa: E731
    return off(k(x, x)).mean() + off(k(y, y)).mean() - 2 * k(x, y).mean()


# ----------------------------------------------------------------------------- hw5


def info_nce_logsumexp(scores):
    s = scores.float()
    return (torch.logsumexp(s, 1) - s.diagonal()).mean()


def nt_xent_pairs(z1, z2, temperature=0.5):
    """Cosine similarities by F.cosine_similarity, the self-similarity removed by a large negative number."""
    z = torch.cat([z1, z2]).float()
    sim = F.cosine_similarity(z[:, None, :], z[None, :, :], dim=-1) / temperature
    sim = sim - 1e9 * torch.eye(len(z))
    b = len(z1)
    pos = torch.cat([sim[:b, b:].diagonal(), sim[b:, :b].diagonal()])
    return (torch.logsumexp(sim, 1) - pos).mean()


def augment_shift_flip(x, generator):
    """A shift by up to one pixel (zeros shifted in), a horizontal flip with probability 1/2, and a little noise."""
    b, _, h, w = x.shape
    shifts = torch.randint(-1, 2, (b, 2), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    pad = F.pad(x, (1, 1, 1, 1))
    views = []
    for i in range(b):
        dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
        v = pad[i, :, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        views.append(v.flip(-1) if flips[i] else v)
    noise = 0.03 * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (torch.stack(views) + noise).clamp(0, 1)


@torch.no_grad()
def momentum_update_lerp(target, online, m):
    for pt, po in zip(target.parameters(), online.parameters()):
        pt.copy_(m * pt + (1 - m) * po)


@torch.no_grad()
def enqueue_one_by_one(queue, ptr, keys):
    """One key at a time, the pointer moving past each: a batch larger than the queue wraps over itself,
    which leaves the queue's newest M keys in order from the returned pointer (the stated contract)."""
    for key in keys:
        queue[ptr] = key.to(queue.dtype)
        ptr = (ptr + 1) % len(queue)
    return int(ptr)


def moco_loss_logsumexp(q, k, queue, temperature=0.2):
    q, k, queue = (F.normalize(t.float(), dim=1) for t in (q, k, queue))
    pos = (q * k).sum(1) / temperature
    neg = q @ queue.T / temperature
    return (torch.logsumexp(torch.cat([pos[:, None], neg], 1), 1) - pos).mean()


# ----------------------------------------------------------------------------- variants


def _slower(ns: dict) -> dict:
    """Every ``Qk_SETTINGS`` learning rate a quarter of the reference's (the notebooks say the settings may
    be changed): a training function tuned differently. Returned as the names to replace."""
    def scaled(v):
        if isinstance(v, dict):
            return {k: (x / 4 if k == "lr" else scaled(x)) for k, x in v.items()}
        return v

    return {n: scaled(v) for n, v in ns.items()
            if n.startswith("Q") and n.endswith("_SETTINGS") and isinstance(v, dict)}


def _default_init(ns: dict) -> dict:
    """hw2: the reference's dequantized RealNVP with PyTorch's default initialisation of every convolution
    (the reference starts each coupling as the identity; the contract does not ask for it)."""
    base = ns["DequantizedRealNVP"]

    class DequantizedRealNVPDefaultInit(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    m.reset_parameters()

    return {"DequantizedRealNVP": DequantizedRealNVPDefaultInit}


VARIANTS: dict[str, dict[str, dict]] = {
    "hw1_autoregressive": {
        "reference": {},
        "clamped float32": {"logistic_mixture_log_probs": logistic_clamped, "made_masks": made_masks_loops,
                            "ensemble_log_prob": ensemble_log_prob_float32, "pixelcnn_mask": pixelcnn_mask_loops,
                            "causal_attention": causal_attention_float32,
                            "attention_step": attention_step_float32},
        "mid-point float32": {"logistic_mixture_log_probs": logistic_midpoint},
        "lr / 4": _slower,
    },
    "hw2_flows": {
        "reference": {},
        "float32 rewritten": {"mixture_cdf": mixture_cdf_distributions, "AffineCoupling2D": AffineCoupling2DWhere,
                              "RealNVP2D": RealNVP2DWhere, "logit_transform": logit_transform_softplus,
                              "dequantized_bits_per_dim": dequantized_bits_per_dim_numpy,
                              "maf_log_prob": maf_log_prob_stacked, "maf_sample": maf_sample_stacked,
                              "iaf_sample": iaf_sample_stacked, "iaf_log_prob": iaf_log_prob_stacked},
        "default init": _default_init,
    },
    "hw3_latent_variable": {
        "reference": {},
        "float32 rewritten": {"gaussian_kl": gaussian_kl_distributions, "iwae_bound": iwae_bound_float32,
                              "categorical_log_likelihood": categorical_log_likelihood_ce,
                              "quantize": quantize_expanded, "straight_through": straight_through_detach,
                              "sbn_log_prob": sbn_log_prob_loops},
        "lr / 4": _slower,
    },
    "hw4_implicit": {
        "reference": {},
        "float32 rewritten": {"d_loss": d_loss_bce, "g_loss_minimax": g_loss_minimax_softplus,
                              "g_loss_nonsaturating": g_loss_nonsaturating_bce,
                              "spectral_normalize": spectral_normalize_vectors, "mmd2_unbiased": mmd2_unbiased_cdist},
        "lr / 4": _slower,
    },
    "hw5_self_supervised": {
        "reference": {},
        "float32 rewritten": {"info_nce": info_nce_logsumexp, "nt_xent": nt_xent_pairs, "augment": augment_shift_flip,
                              "momentum_update": momentum_update_lerp, "enqueue": enqueue_one_by_one,
                              "moco_loss": moco_loss_logsumexp},
        "lr / 4": _slower,
    },
}


def namespace(assignment: str, variant: str) -> dict:
    """A fresh namespace of the reference solution with the variant's names replaced (a variant given as a
    function of the namespace returns them). Functions defined here keep their own globals; constants
    replace the solution's, which its functions read at call time."""
    ns = notebook_namespace(next((REPO / "solutions" / assignment).glob("*.ipynb")))
    change = VARIANTS[assignment][variant]
    ns.update(change(ns) if callable(change) else change)
    return ns
