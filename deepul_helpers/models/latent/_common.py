"""What the latent-variable models share: Gaussian pieces, the importance-weighted average,
the decoder likelihoods matched to the data, and the training step for objectives that are
not the reported bound (beta, free bits, KL warm-up, IWAE).

Conventions: every log-density is in nats and summed over the dimensions of one example;
``loss`` divides by the data dimensions D (CONTRIBUTING "Likelihood models").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepul_helpers.models._common import check_levels, check_shape

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per latent dimension: (..., Z) -> (..., Z) nats."""
    return 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension: (..., Z) -> (...)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 / logvar.exp()).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z**2).sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, k: int = 1) -> torch.Tensor:
    """k draws z = mu + sigma * eps, eps ~ N(0, I): (B, Z) -> (k, B, Z), differentiable in mu and logvar."""
    eps = torch.randn((k, *mu.shape), dtype=mu.dtype, device=mu.device)
    return mu + (0.5 * logvar).exp() * eps


def log_mean_exp(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/k sum_i exp(log_w_i)) along ``dim``: the importance-weighted bound from k log-weights."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


class Likelihood(nn.Module):
    """p(x | decoder output) for one kind of data; ``params(h)`` reads the decoder's (..., n_params) output.

    ``shape``: one example's shape; ``levels``: values per dimension (None: continuous).
    ``to_input(x)``: the data batch as floats for an encoder; ``check(x)``: the batch after the
    contract's checks; ``log_prob(x, out)``: (...,) summed over the example; ``sample(out, noise)``.
    """

    def __init__(self, shape, levels: int | None):
        super().__init__()
        self.shape, self.levels = tuple(shape), levels
        self.dims = math.prod(self.shape)

    def check(self, x: torch.Tensor, what: str) -> torch.Tensor:
        check_shape(x, self.shape, what)
        if self.levels is None:
            if not x.is_floating_point():
                raise TypeError(f"{what}: continuous data must be a float tensor, got {x.dtype}")
            return x
        return check_levels(x, self.levels, what)

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *shape) -> (B, D) floats: levels scaled to [-1, 1], continuous data unchanged."""
        x = x.reshape(len(x), self.dims).float()
        return x if self.levels is None else x / (self.levels - 1) * 2 - 1

    def data_dtype(self) -> torch.dtype:
        return torch.float32 if self.levels is None else torch.uint8


class GaussianLikelihood(Likelihood):
    """Diagonal Gaussian: the decoder gives a mean and a log-variance per dimension (2 D outputs)."""

    min_logvar = -9.0

    def __init__(self, shape):
        super().__init__(shape, None)
        self.n_params = 2 * self.dims

    def split(self, out):
        mean, logvar = out.chunk(2, dim=-1)  # (..., D) each
        return mean, logvar.clamp(min=self.min_logvar)

    def log_prob(self, x, out):
        mean, logvar = self.split(out)
        return log_normal(x.reshape(*x.shape[:1], self.dims).to(mean.dtype), mean, logvar)

    def sample(self, out, noise: bool = True):
        mean, logvar = self.split(out)
        x = mean + (0.5 * logvar).exp() * torch.randn_like(mean) if noise else mean
        return x.reshape(len(x), *self.shape).float()


class BernoulliLikelihood(Likelihood):
    """Independent Bernoulli pixels (binary data): one logit per dimension."""

    def __init__(self, shape):
        super().__init__(shape, 2)
        self.n_params = self.dims

    def log_prob(self, x, out):
        x = x.reshape(*x.shape[:1], self.dims).to(out.dtype).expand_as(out)
        return -F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)

    def sample(self, out, noise: bool = True):
        x = torch.bernoulli(torch.sigmoid(out)) if noise else (out > 0).float()
        return x.reshape(len(x), *self.shape).to(torch.uint8)


class CategoricalLikelihood(Likelihood):
    """Independent categorical per dimension over ``levels`` values (e.g. 17 for digits)."""

    def __init__(self, shape, levels: int):
        super().__init__(shape, levels)
        self.n_params = self.dims * levels

    def log_prob(self, x, out):
        logp = F.log_softmax(out.reshape(*out.shape[:-1], self.dims, self.levels), dim=-1)  # (..., D, L)
        idx = x.reshape(len(x), self.dims, 1).long().expand(*logp.shape[:-1], 1)
        return logp.gather(-1, idx).squeeze(-1).sum(-1)

    def sample(self, out, noise: bool = True):
        logits = out.reshape(len(out), self.dims, self.levels)
        x = torch.distributions.Categorical(logits=logits).sample() if noise else logits.argmax(-1)
        return x.reshape(len(x), *self.shape).to(torch.uint8)


def make_likelihood(kind: str, shape, levels: int | None = None) -> Likelihood:
    """``"gaussian"`` (continuous), ``"bernoulli"`` (binary) or ``"categorical"`` (``levels`` values)."""
    if kind == "gaussian":
        return GaussianLikelihood(shape)
    if kind == "bernoulli":
        return BernoulliLikelihood(shape)
    if kind == "categorical":
        if levels is None or levels < 2:
            raise ValueError("a categorical decoder needs levels >= 2 (the data set's info(name).levels)")
        return CategoricalLikelihood(shape, levels)
    raise ValueError(f"unknown likelihood {kind!r}; use 'gaussian' (continuous), 'bernoulli' (binary) "
                     "or 'categorical' (discrete levels)")


def objective_step(model, batch, optimizer, iteration):
    """A ``fit(step=...)`` update on ``model.objective(batch, iteration)`` (a dict whose ``"loss"`` is
    minimised; the other entries are recorded in ``History.train_extra``)."""
    optimizer.zero_grad(set_to_none=True)
    out = model.objective(batch, iteration)
    if torch.isfinite(out["loss"]):
        out["loss"].backward()
        optimizer.step()
    return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in out.items()}
