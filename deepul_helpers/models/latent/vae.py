"""Variational autoencoder (Kingma & Welling 2014): a Gaussian encoder q(z|x), a prior N(0, I), a decoder
p(x|z) matched to the data (Gaussian, Bernoulli, or categorical over the data's levels).

    log p(x) >= ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))            (reconstruction - KL)
    log p(x) >= IWAE_k(x) = E[log 1/k sum_i p(x, z_i) / q(z_i|x)],  z_i ~ q  (Burda et al. 2016)

ELBO <= IWAE_k <= IWAE_k' <= log p(x) for k <= k'. With a discrete decoder both bound the
*discrete* NLL (p(x|z) is a probability), so ``loss`` compares with the autoregressive week's.

``loss(x)`` is -ELBO / D (the analytic KL, one reparameterised draw for the reconstruction).
``objective(x, iteration)`` is what training minimises: the same, or the IWAE_k bound
(``iw_k > 1``), or the beta / free-bits / warm-up variants, which are *not* bounds; train with
``fit(model, ..., step=objective_step)`` (the test loss ``fit`` reports stays the bound).
"""

from __future__ import annotations

import torch
from torch import nn

from deepul_helpers.models._common import model_device
from deepul_helpers.models.latent._common import (
    gaussian_kl,
    log_mean_exp,
    log_normal,
    log_standard_normal,
    make_likelihood,
    reparameterize,
)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPDecoder(nn.Module):
    """z (..., Z) -> the likelihood's parameters (..., n_params) through an MLP; p(x|z) by ``likelihood``."""

    def __init__(self, likelihood, latent_dim: int, hidden: int, n_hidden: int):
        super().__init__()
        self.likelihood = likelihood
        self.net = mlp([latent_dim] + [hidden] * n_hidden + [likelihood.n_params])

    def log_prob(self, x, z):
        """x (B, *shape) checked levels/floats, z (k, B, Z) -> (k, B) log p(x|z)."""
        return self.likelihood.log_prob(x, self.net(z))

    def sample(self, z, noise: bool = True):
        """z (n, Z) -> (n, *shape) in data format; ``noise=False``: the decoder's mean / mode."""
        return self.likelihood.sample(self.net(z), noise)


class VAE(nn.Module):
    """A VAE for one data set. ``shape``: one example's shape ((2,) points, (H, W, C) images).
    ``likelihood``: "gaussian" | "bernoulli" | "categorical" (with ``levels``). The encoder is an MLP
    to (mu, logvar) of ``latent_dim`` dimensions; the decoder an MLP (or ``decoder=``, any module
    with ``log_prob(x, z)`` and ``sample(z, noise)``, e.g. a PixelCNN decoder).
    Training objective: ``beta`` weighs the KL, ``free_bits`` (nats per latent dimension, batch
    mean) floors each dimension's KL, ``warmup_iters`` ramps the KL weight from 0 to ``beta``,
    ``iw_k > 1`` trains on the IWAE_k bound.
    """

    def __init__(self, shape, likelihood: str = "gaussian", levels: int | None = None, latent_dim: int = 2,
                 hidden: int = 128, n_hidden: int = 2, decoder: nn.Module | None = None, beta: float = 1.0,
                 free_bits: float = 0.0, warmup_iters: int = 0, iw_k: int = 1):
        super().__init__()
        self.lik = make_likelihood(likelihood, tuple(shape), levels)
        self.shape, self.dims, self.latent_dim = self.lik.shape, self.lik.dims, int(latent_dim)
        self.encoder = mlp([self.dims] + [hidden] * n_hidden + [2 * self.latent_dim])
        self.decoder = decoder if decoder is not None else MLPDecoder(self.lik, self.latent_dim, hidden, n_hidden)
        if iw_k < 1 or beta < 0 or free_bits < 0 or warmup_iters < 0:
            raise ValueError("need iw_k >= 1, beta >= 0, free_bits >= 0, warmup_iters >= 0")
        self.beta, self.free_bits, self.warmup_iters, self.iw_k = float(beta), float(free_bits), warmup_iters, iw_k

    # ------------------------------------------------------------------ the pieces
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, *shape) data -> mu, logvar of q(z|x), each (B, Z)."""
        mu, logvar = self.encoder(self.lik.to_input(x)).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)

    def posterior_sample(self, x, k: int = 1):
        """k draws z ~ q(z|x) and their log q: (k, B, Z), (k, B). Subclasses with richer posteriors override."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, k)
        return z, log_normal(z, mu, logvar)

    def elbo_terms(self, x: torch.Tensor) -> dict:
        """Per example: ``recon`` = log p(x|z) at one draw z ~ q (B,), ``kl_per_dim`` (B, Z) analytic
        KL of each latent dimension, ``elbo`` = recon - KL (B,), all in nats."""
        x = self.lik.check(x, f"{type(self).__name__}")
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, 1)  # (1, B, Z)
        recon = self.decoder.log_prob(x, z)[0]  # (B,)
        kl = gaussian_kl(mu, logvar)  # (B, Z)
        return {"recon": recon, "kl_per_dim": kl, "elbo": recon - kl.sum(-1)}

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) the ELBO of each example (nats); one reparameterised draw, analytic KL."""
        return self.elbo_terms(x)["elbo"]

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """(k, B): log p(x, z_i) - log q(z_i|x) for k draws z_i ~ q(z|x)."""
        x = self.lik.check(x, f"{type(self).__name__}")
        z, log_q = self.posterior_sample(x, k)
        return self.decoder.log_prob(x, z) + log_standard_normal(z) - log_q

    def log_prob_iw(self, x: torch.Tensor, k: int = 100, chunk: int = 256) -> torch.Tensor:
        """(B,) the importance-weighted bound IWAE_k on log p(x) in nats (k draws, ``chunk`` at a time)."""
        parts = [self.log_weights(x, min(chunk, k - i)) for i in range(0, k, chunk)]
        return log_mean_exp(torch.cat(parts, dim=0), dim=0)

    # ------------------------------------------------------------------ the contract
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """-ELBO in nats per data dimension, averaged over the batch: a bound on the NLL."""
        return -self.elbo(x).mean() / self.dims

    def kl_weight(self, iteration: int) -> float:
        ramp = 1.0 if self.warmup_iters == 0 else min(1.0, iteration / self.warmup_iters)
        return self.beta * ramp

    def objective(self, x: torch.Tensor, iteration: int = 0) -> dict:
        """What training minimises (nats/dim), with ``recon`` and ``kl`` (nats/dim) and ``nelbo`` (the bound)."""
        if self.iw_k > 1:
            bound = -self.log_prob_iw(x, self.iw_k).mean() / self.dims
            return {"loss": bound, "iwae": bound.detach()}
        t = self.elbo_terms(x)
        kl_dims = t["kl_per_dim"].mean(0)  # (Z,) batch-mean KL of each latent dimension
        kl_term = kl_dims.clamp(min=self.free_bits).sum() if self.free_bits > 0 else kl_dims.sum()
        recon = -t["recon"].mean()
        return {"loss": (recon + self.kl_weight(iteration) * kl_term) / self.dims,
                "recon": recon.detach() / self.dims, "kl": kl_dims.sum().detach() / self.dims,
                "nelbo": -t["elbo"].mean().detach() / self.dims}

    @torch.no_grad()
    def sample(self, n: int, noise: bool = True) -> torch.Tensor:
        """(n, *shape) on the CPU in data format: z ~ N(0, I), x ~ p(x|z) (its mean with ``noise=False``)."""
        z = torch.randn(int(n), self.latent_dim, device=model_device(self))
        return self.decoder.sample(z, noise).cpu()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, noise: bool = False) -> torch.Tensor:
        """x -> the decoder's output at the posterior mean (data format, CPU)."""
        x = self.lik.check(x, f"{type(self).__name__}.reconstruct")
        return self.decoder.sample(self.encode(x)[0], noise).cpu()
