"""VQ-VAE (van den Oord et al. 2017) with an autoregressive prior over its grid of codes.

encoder: x (B, H, W, C) -> z_e (B, h, w, d);  quantise: z_q = e_k, k = argmin_j |z_e - e_j|
decoder: z_q -> logits of p(x | z_q), a categorical over the data's levels per dimension
straight-through: the decoder's gradient w.r.t. z_q is passed to z_e unchanged
    (z_st = z_e + (z_q - z_e).detach(): its value is z_q, its Jacobian w.r.t. z_e the identity)
stage 1 loss: -log p(x|z_q) + commitment * |z_e - sg(z_q)|^2, the codebook by EMA of the assigned
    encoder outputs (initialised from encoder outputs of the first batch: random codes die unused)
stage 2: a PixelCNN (``models.autoregressive``) fitted to the code grids ``codes(x)``.

The encoder is deterministic, q(z|x) puts all its mass on one code grid, so
    -log p(x) <= -log p(x | z_q(x)) - log p_prior(z_q(x))
is a bound on the discrete NLL: ``loss(x)`` reports it in nats/dim once ``prior`` is set.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepul_helpers.models._common import check_levels, check_shape, model_device


class VQVAE(nn.Module):
    """VQ-VAE for NHWC images with ``levels`` values. The encoder halves H and W ``n_down`` times
    (8x8 -> 4x4 with 1); ``n_codes`` codebook vectors of ``code_dim``; ``ema`` decay of the codebook."""

    def __init__(self, image_shape, levels: int, n_codes: int = 32, code_dim: int = 16, hidden: int = 64,
                 n_down: int = 1, commitment: float = 0.25, ema: float = 0.95):
        super().__init__()
        self.image_shape, self.levels = tuple(image_shape), int(levels)
        h, w, c = self.image_shape
        self.dims, self.n_codes, self.code_dim = h * w * c, int(n_codes), int(code_dim)
        self.grid = (h >> n_down, w >> n_down)
        self.commitment, self.ema = commitment, ema
        enc, ch = [nn.Conv2d(c, hidden, 3, padding=1), nn.ReLU()], hidden
        for _ in range(n_down):
            enc += [nn.Conv2d(ch, hidden, 4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*enc, nn.Conv2d(hidden, code_dim, 1))
        dec = [nn.Conv2d(code_dim, hidden, 3, padding=1), nn.ReLU()]
        for _ in range(n_down):
            dec += [nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*dec, nn.Conv2d(hidden, c * levels, 1))
        self.register_buffer("codebook", torch.randn(n_codes, code_dim))  # (K, d)
        self.register_buffer("ema_count", torch.ones(n_codes))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialised", torch.tensor(False))
        self.prior: nn.Module | None = None  # a likelihood model of (B, h, w, 1) code grids

    def _check(self, x, what):
        check_shape(x, self.image_shape, what)
        return check_levels(x, self.levels, what)

    def encode(self, x) -> torch.Tensor:
        """(B, H, W, C) levels -> z_e (B, h, w, d)."""
        u = (x.float() / (self.levels - 1) * 2 - 1).permute(0, 3, 1, 2)
        return self.encoder(u).permute(0, 2, 3, 1)

    def quantize(self, z_e) -> tuple[torch.Tensor, torch.Tensor]:
        """z_e (..., d) -> (z_q (..., d), indices (...,) int64) of the nearest codebook vectors."""
        flat = z_e.reshape(-1, self.code_dim)  # (N, d)
        d2 = (flat**2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + (self.codebook**2).sum(1)  # (N, K)
        idx = d2.argmin(1)
        return self.codebook[idx].reshape(z_e.shape), idx.reshape(z_e.shape[:-1])

    @staticmethod
    def straight_through(z_e, z_q):
        """Value z_q, gradient passed to z_e unchanged."""
        return z_e + (z_q - z_e).detach()

    def decode_logits(self, z_q) -> torch.Tensor:
        """z_q (B, h, w, d) -> (B, H, W, C, levels) logits of p(x | z_q)."""
        h, w, c = self.image_shape
        out = self.decoder(z_q.permute(0, 3, 1, 2))  # (B, C*levels, H, W)
        return out.reshape(len(z_q), self.levels, c, h, w).permute(0, 3, 4, 2, 1)

    def codes(self, x) -> torch.Tensor:
        """(B, H, W, C) -> the code grid (B, h, w, 1) int64 (a data set for the prior)."""
        x = self._check(x, "VQVAE.codes")
        with torch.no_grad():
            return self.quantize(self.encode(x))[1].unsqueeze(-1)

    def decoder_log_prob(self, x, idx) -> torch.Tensor:
        """(B,) log p(x | z_q) for code grids idx (B, h, w)."""
        logp = F.log_softmax(self.decode_logits(self.codebook[idx]), dim=-1)
        return logp.gather(-1, x.long().unsqueeze(-1)).flatten(1).sum(1)

    @torch.no_grad()
    def _update_codebook(self, flat, idx):
        """EMA of the code counts and of the sum of the encoder outputs assigned to each code."""
        if not bool(self.initialised):  # data-initialised: codes start on encoder outputs
            pick = flat[torch.randint(len(flat), (self.n_codes,), device=flat.device)]
            self.codebook.copy_(pick)
            self.ema_sum.copy_(pick)
            self.ema_count.fill_(1.0)
            self.initialised.fill_(True)
            return
        onehot = F.one_hot(idx, self.n_codes).to(flat.dtype)  # (N, K)
        self.ema_count.mul_(self.ema).add_(onehot.sum(0), alpha=1 - self.ema)
        self.ema_sum.mul_(self.ema).add_(onehot.T @ flat, alpha=1 - self.ema)
        n = self.ema_count.sum()
        count = (self.ema_count + 1e-5) / (n + self.n_codes * 1e-5) * n  # Laplace smoothing
        self.codebook.copy_(self.ema_sum / count[:, None])

    def objective(self, x, iteration: int = 0) -> dict:
        """Stage-1 training loss (nats/dim for the reconstruction); updates the codebook in training mode."""
        x = self._check(x, "VQVAE.objective")
        z_e = self.encode(x)
        z_q, idx = self.quantize(z_e)
        if self.training:
            self._update_codebook(z_e.detach().reshape(-1, self.code_dim), idx.reshape(-1))
            z_q, idx = self.quantize(z_e)  # against the updated codebook
        logits = self.decode_logits(self.straight_through(z_e, z_q))
        recon = F.cross_entropy(logits.reshape(-1, self.levels), x.reshape(-1))  # nats/dim
        commit = ((z_e - z_q.detach()) ** 2).mean()
        return {"loss": recon + self.commitment * commit, "recon": recon.detach(), "commit": commit.detach()}

    def log_prob_bound(self, x) -> torch.Tensor:
        """(B,) log p(x | z_q(x)) + log p_prior(z_q(x)) <= log p(x), nats."""
        if self.prior is None:
            raise RuntimeError("VQVAE has no prior yet: fit one on vq.codes(x) (e.g. a PixelCNN with "
                               "image_shape=(*vq.grid, 1), levels=vq.n_codes) and set vq.prior = it")
        idx = self.codes(x)  # (B, h, w, 1)
        return self.decoder_log_prob(x, idx[..., 0]) + self.prior.log_prob(idx)

    def loss(self, x) -> torch.Tensor:
        """The bound -log p(x|z_q) - log p(z_q) in nats per data dimension, batch mean."""
        return -self.log_prob_bound(x).mean() / self.dims

    @torch.no_grad()
    def usage(self, x) -> dict:
        """Codebook usage on data x: fraction of codes used and the perplexity exp(H(code frequencies))."""
        idx = self.codes(x).reshape(-1)
        p = torch.bincount(idx, minlength=self.n_codes).double() / idx.numel()
        h = -(p[p > 0] * p[p > 0].log()).sum()
        return {"used": float((p > 0).float().mean()), "perplexity": float(h.exp()), "max_perplexity": self.n_codes,
                "entropy_bits": float(h / math.log(2))}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """(n, H, W, C) uint8 on the CPU: codes from the prior, then x ~ p(x | z_q)."""
        if self.prior is None:
            raise RuntimeError("VQVAE.sample needs a prior over the codes; set vq.prior first")
        idx = self.prior.sample(int(n)).long().to(model_device(self))[..., 0]  # (n, h, w)
        logits = self.decode_logits(self.codebook[idx])
        return torch.distributions.Categorical(logits=logits).sample().to(torch.uint8).cpu()
