"""Units and reference values: nats <-> bits, dequantization-aware bounds, entropies.

Conventions: every loss in the course is a negative log-likelihood in **nats per
dimension** (dimensions counted in data space). ``bits_per_dim`` is the same number
divided by ln 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

LN2 = math.log(2.0)


def bits_per_dim(nats_per_dim):
    """Nats per dimension -> bits per dimension (works on floats, arrays and tensors)."""
    return nats_per_dim / LN2


def nats_per_dim(bits):
    """Bits per dimension -> nats per dimension."""
    return bits * LN2


def discrete_nll_bound(nll_nats_per_dim, scale: float):
    """Upper bound on the discrete NLL of a continuous model fitted to dequantized data.

    The data x in {0, ..., K-1} is mapped to y = (x + u) * scale with u ~ U[0, 1)^D
    (uniform dequantization; ``scale = 1/K`` maps to [0, 1)). A density p_Y on y gives the
    density of v = x + u as p_V(v) = p_Y(v * scale) * scale, and by Jensen
        -log P(x) <= E_u[-log p_V(x + u)] = E_u[-log p_Y(y)] - log(scale)   (per dimension).
    ``nll_nats_per_dim`` is the model's E_u[-log p_Y(y)] per dimension; the result is the
    bound on the discrete NLL in nats per dimension. Any further pre-processing (e.g. a
    logit step) must already be counted in ``nll_nats_per_dim`` through its log-determinant.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive (e.g. 1/levels), got {scale!r}")
    return nll_nats_per_dim - math.log(scale)


def entropy_discrete(probs, axis=None) -> float | np.ndarray:
    """Shannon entropy in nats of a probability table (sums to 1 over ``axis``; all axes by default).

    Zero entries contribute 0. Raises if entries are negative or do not sum to 1 (to 1e-6).
    """
    p = np.asarray(probs, dtype=np.float64)
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError("probabilities must be finite and non-negative")
    total = p.sum(axis=axis)
    if not np.allclose(total, 1.0, atol=1e-6):
        raise ValueError(f"probabilities must sum to 1 over axis={axis}, got {total}")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(axis=axis) if axis is not None else float(terms.sum())


def cross_entropy(probs, log_q) -> float:
    """Exact cross-entropy H(p, q) = -sum_x p(x) log q(x) in nats, for a known distribution p given as
    a probability table and a model's log-probabilities ``log_q`` of the same values (same shape).

    Never below the entropy of p when q is normalised (Gibbs' inequality; equal only when q = p), unlike
    a test-set average, which can fall below it by chance. Values with p(x) = 0 contribute 0; a value
    with p(x) > 0 and q(x) = 0 makes it infinite. Divide by the dimension for nats per dimension.
    """
    p = np.asarray(probs, dtype=np.float64)
    lq = np.asarray(log_q, dtype=np.float64)
    if p.shape != lq.shape:
        raise ValueError(f"probs and log_q must have the same shape (one log q per value of p), "
                         f"got {p.shape} and {lq.shape}")
    entropy_discrete(p)  # raises unless p is a distribution
    if np.any(np.isnan(lq)) or np.any(lq > 1e-9):
        raise ValueError("log_q must hold log-probabilities (<= 0, no NaN)")
    return float(-(p[p > 0] * lq[p > 0]).sum())


def entropy_monte_carlo(log_prob: Callable[[np.ndarray], np.ndarray], samples) -> tuple[float, float]:
    """Monte Carlo estimate of the entropy H = E_p[-log p(x)] and its standard error.

    ``samples`` are drawn from p itself; ``log_prob`` returns log p for each sample (nats).
    Returns (estimate, standard error) in nats, for the whole vector x: divide both by the
    dimension for nats per dimension.
    """
    lp = np.asarray(log_prob(samples), dtype=np.float64).reshape(-1)
    if lp.size < 2:
        raise ValueError("need at least 2 samples for a Monte Carlo estimate with a standard error")
    if not np.all(np.isfinite(lp)):
        raise ValueError("log_prob returned non-finite values on samples from the distribution")
    return float(-lp.mean()), float(lp.std(ddof=1) / math.sqrt(lp.size))


def gap_percent(nll, entropy) -> float | None:
    """How far an NLL is above the true entropy, in % of the entropy (None when unknown)."""
    if entropy is None or nll is None:
        return None
    if entropy <= 0:
        raise ValueError(f"a gap in % needs a positive entropy, got {entropy}")
    return 100.0 * (float(nll) - float(entropy)) / float(entropy)


def grid_mass(log_prob: Callable, extent, n: int = 200, chunk: int = 20_000) -> float:
    """Integral of ``exp(log_prob)`` over the rectangle ``extent = (xmin, xmax, ymin, ymax)`` by the
    midpoint rule on an ``n`` x ``n`` grid: a normalised 2D density gives ~1 over a box that covers it.

    ``log_prob`` maps (M, 2) float32 points (numpy; column 0 = x) to M log-densities (numpy or a
    tensor); for a torch model pass ``log_prob_numpy(model)``. Evaluated ``chunk`` points at a time.
    """
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"extent must be (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, got {extent}")
    if int(n) < 1:
        raise ValueError(f"n (grid points per axis) must be >= 1, got {n}")
    hx, hy = (xmax - xmin) / n, (ymax - ymin) / n
    gx, gy = np.meshgrid(xmin + hx * (np.arange(n) + 0.5), ymin + hy * (np.arange(n) + 0.5))
    pts = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)  # (n*n, 2) cell centres
    total = 0.0
    for i in range(0, len(pts), chunk):
        lp = log_prob(pts[i:i + chunk])
        lp = np.asarray(lp.detach().cpu().numpy() if hasattr(lp, "detach") else lp, dtype=np.float64)
        if lp.shape != (len(pts[i:i + chunk]),):
            raise ValueError(f"log_prob must return one log-density per point, shape {(len(pts[i:i + chunk]),)}, "
                             f"got {lp.shape}")
        total += float(np.exp(lp).sum())
    return total * hx * hy


def log_prob_numpy(model) -> Callable[[np.ndarray], np.ndarray]:
    """``model.log_prob`` as a function of numpy points: float32 tensor on the model's device, no
    gradients, numpy float64 out (for ``grid_mass`` and ``plot.density_2d(..., log=True)``)."""
    import torch

    from deepul_helpers.models._common import model_device

    if not callable(getattr(model, "log_prob", None)):
        raise TypeError(f"log_prob_numpy needs a model with a log_prob(x) method, got {type(model).__name__}")

    device = model_device(model) if isinstance(model, torch.nn.Module) else torch.device("cpu")

    def fn(points):
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(points), dtype=torch.float32, device=device)
            return model.log_prob(x).detach().cpu().numpy().astype(np.float64)

    return fn
