"""A Helmholtz machine trained by wake-sleep (Hinton, Dayan, Frey & Neal 1995), on binary data.

generative model: z ~ Bernoulli(sigmoid(a))^L,  x | z ~ Bernoulli(sigmoid(W z + b))^D
recognition model: q(z|x) = Bernoulli(sigmoid(R x + c))^L (factorised)

wake phase:  z ~ q(z|x) for real x; raise log p(x, z) (the generative weights learn)
sleep phase: (z, x) ~ p dreamt by the generative model; raise log q(z|x) (the recognition weights)

Neither phase follows the gradient of log p(x) (the sleep phase minimises KL(p || q) of the
wrong direction), which is why wake-sleep is a teaching contrast to the VAE. With L small
(here 2^L <= 65536) the marginal is exact by enumeration:
log p(x) = logsumexp_z [log p(z) + log p(x|z)], so ``loss`` is the *exact* NLL in nats/dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepul_helpers.models._common import check_levels, check_shape


def bernoulli_log_prob(v: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """sum over the last dimension of log Bernoulli(v; sigmoid(logits))."""
    logits, v = torch.broadcast_tensors(logits, v.to(logits.dtype))
    return -F.binary_cross_entropy_with_logits(logits, v, reduction="none").sum(-1)


class HelmholtzMachine(nn.Module):
    """Binary latents (``n_latent``, at most 16 for the enumeration) above binary images of ``shape``."""

    def __init__(self, shape, n_latent: int = 8):
        super().__init__()
        if not 1 <= n_latent <= 16:
            raise ValueError(f"n_latent must be 1..16 so that log p(x) can be enumerated, got {n_latent}")
        self.shape, self.n_latent = tuple(shape), int(n_latent)
        self.dims = int(torch.tensor(self.shape).prod())
        self.prior_logits = nn.Parameter(torch.zeros(n_latent))  # a (L,)
        self.gen = nn.Linear(n_latent, self.dims)  # W (D, L), b (D,)
        self.rec = nn.Linear(self.dims, n_latent)  # R (L, D), c (L,)
        nn.init.normal_(self.gen.weight, std=0.1)
        nn.init.normal_(self.rec.weight, std=0.1)
        bits = (torch.arange(1 << n_latent)[:, None] >> torch.arange(n_latent - 1, -1, -1)) & 1
        self.register_buffer("all_z", bits.float())  # (2^L, L) every latent configuration

    def _flat(self, x, what):
        check_shape(x, self.shape, what)
        return check_levels(x, 2, what).reshape(len(x), self.dims).to(self.gen.weight.dtype)  # (B, D)

    def log_joint(self, x, z) -> torch.Tensor:
        """log p(z) + log p(x|z): x (B, D) floats, z (..., B, L) or (M, L) broadcastable."""
        return bernoulli_log_prob(z, self.prior_logits) + bernoulli_log_prob(x, self.gen(z))

    def log_prob(self, x) -> torch.Tensor:
        """(B,) exact log p(x) by summing over all 2^L latent configurations, nats."""
        x = self._flat(x, "HelmholtzMachine.log_prob")
        log_pz = bernoulli_log_prob(self.all_z, self.prior_logits)  # (M,)
        logits = self.gen(self.all_z)  # (M, D)
        log_px_z = logits @ x.T - F.softplus(logits).sum(1, keepdim=True)  # (M, B): sum_d x_d l_d - log(1 + e^l_d)
        return torch.logsumexp(log_pz[:, None] + log_px_z, dim=0)  # (B,)

    def loss(self, x) -> torch.Tensor:
        """The exact NLL in nats per dimension, batch mean."""
        return -self.log_prob(x).mean() / self.dims

    def recognise(self, x) -> torch.Tensor:
        """(B, D) float pixels -> (B, L) logits of q(z|x)."""
        return self.rec(x * 2 - 1)

    def wake_sleep_losses(self, x) -> dict:
        """The two phases' losses on a batch (B, *shape); each reaches only its own model's weights."""
        xf = self._flat(x, "HelmholtzMachine.wake_sleep_losses")
        with torch.no_grad():
            z_wake = torch.bernoulli(torch.sigmoid(self.recognise(xf)))  # z ~ q(z|x)
            z_dream = torch.bernoulli(torch.sigmoid(self.prior_logits).expand(len(xf), -1))  # z ~ p(z)
            x_dream = torch.bernoulli(torch.sigmoid(self.gen(z_dream)))  # x ~ p(x|z)
        wake = -self.log_joint(xf, z_wake).mean()
        sleep = -bernoulli_log_prob(z_dream, self.recognise(x_dream)).mean()
        return {"wake": wake, "sleep": sleep}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """(n, *shape) uint8 on the CPU, ancestral sampling."""
        z = torch.bernoulli(torch.sigmoid(self.prior_logits).expand(int(n), -1))
        x = torch.bernoulli(torch.sigmoid(self.gen(z)))
        return x.reshape(int(n), *self.shape).to(torch.uint8).cpu()


def wake_sleep_step(model: HelmholtzMachine, batch, optimizer, iteration):
    """A ``fit(step=...)`` update: one wake and one sleep phase; records the exact NLL (nats/dim) as the loss."""
    optimizer.zero_grad(set_to_none=True)
    out = model.wake_sleep_losses(batch)
    (out["wake"] + out["sleep"]).backward()
    optimizer.step()
    with torch.no_grad():
        nll = model.loss(batch)
    return {"loss": float(nll), "wake": float(out["wake"].detach()), "sleep": float(out["sleep"].detach())}

