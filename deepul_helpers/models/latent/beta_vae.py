"""beta-VAE (Higgins et al. 2017) and what one looks at in a latent space: traversals, interpolations,
and how linearly each generating factor can be read off the posterior mean.

The objective is reconstruction + beta * KL (``VAE(beta=...)``); with beta > 1 it is not a bound
on the NLL, so ``loss`` (the -ELBO, beta = 1) is what is reported and compared, and the price
of disentanglement shows as a worse bound.
"""

from __future__ import annotations

import numpy as np
import torch

from deepul_helpers.models.latent.vae import VAE


class BetaVAE(VAE):
    """``VAE`` with ``beta`` (default 4) weighing the KL in the training objective."""

    def __init__(self, shape, likelihood: str = "bernoulli", levels: int | None = None, latent_dim: int = 6,
                 beta: float = 4.0, **vae_kw):
        super().__init__(shape, likelihood, levels, latent_dim=latent_dim, beta=beta, **vae_kw)


@torch.no_grad()
def traverse(model: VAE, x, values=(-2.5, -1.25, 0.0, 1.25, 2.5)) -> torch.Tensor:
    """Decoder means along each latent axis from the posterior mean of one example x (1, *shape):
    (Z, len(values), *shape), row d = latent d set to each value, the others kept."""
    mu, _ = model.encode(model.lik.check(x, "traverse"))  # (1, Z)
    v = torch.as_tensor(values, dtype=mu.dtype, device=mu.device)
    z = mu.repeat(model.latent_dim, len(v), 1)  # (Z, V, Z)
    for d in range(model.latent_dim):
        z[d, :, d] = v
    out = model.decoder.sample(z.reshape(-1, model.latent_dim), noise=False)
    return out.reshape(model.latent_dim, len(v), *model.shape)


@torch.no_grad()
def interpolate(model: VAE, x_a, x_b, steps: int = 10) -> torch.Tensor:
    """Decoder means on the straight line between the posterior means of x_a and x_b ((1, *shape) each):
    (steps, *shape)."""
    mu_a, _ = model.encode(model.lik.check(x_a, "interpolate"))
    mu_b, _ = model.encode(model.lik.check(x_b, "interpolate"))
    t = torch.linspace(0, 1, steps, dtype=mu_a.dtype, device=mu_a.device)[:, None]
    return model.decoder.sample((1 - t) * mu_a + t * mu_b, noise=False)


@torch.no_grad()
def interpolation_grid(model: VAE, corners, steps: int = 10) -> torch.Tensor:
    """Decoder means on a ``steps`` x ``steps`` grid spanned bilinearly by the posterior means of four
    examples ``corners`` (4, *shape) (top left, top right, bottom left, bottom right): (steps^2, *shape)."""
    mu = model.encode(model.lik.check(corners, "interpolation_grid"))[0]  # (4, Z)
    t = torch.linspace(0, 1, steps, dtype=mu.dtype, device=mu.device)
    top = (1 - t)[:, None] * mu[0] + t[:, None] * mu[1]  # (steps, Z) along the top edge
    bottom = (1 - t)[:, None] * mu[2] + t[:, None] * mu[3]
    z = (1 - t)[:, None, None] * top[None] + t[:, None, None] * bottom[None]  # (rows, cols, Z)
    return model.decoder.sample(z.reshape(-1, model.latent_dim), noise=False)


def factor_r2(features: np.ndarray, factors: dict, train_frac: float = 0.8) -> dict:
    """How well each factor is predicted *linearly* from ``features`` (N, F): R^2 on a held-out split
    (least squares with an intercept, fitted on the first ``train_frac`` of the rows). 1 = perfectly,
    0 = no better than the mean. ``factors``: name -> (N,) values."""
    f = np.asarray(features, dtype=np.float64)
    n_fit = int(len(f) * train_frac)
    design = np.hstack([f, np.ones((len(f), 1))])  # (N, F + 1)
    out = {}
    for name, y in factors.items():
        y = np.asarray(y, dtype=np.float64)
        coef, *_ = np.linalg.lstsq(design[:n_fit], y[:n_fit], rcond=None)
        resid = y[n_fit:] - design[n_fit:] @ coef
        out[name] = float(1 - resid.var() / y[n_fit:].var())
    return out
