"""The linear-Gaussian VAE (probabilistic PCA, Tipping & Bishop 1999): the latent-variable model whose
log-likelihood, posterior and ELBO are all closed form, so every bound can be checked exactly.

    p(z) = N(0, I_Z),  p(x|z) = N(W z + b, s^2 I_D)   =>   p(x) = N(b, W W^T + s^2 I_D)
    exact posterior: p(z|x) = N(M^-1 W^T (x - b), s^2 M^-1),  M = W^T W + s^2 I_Z
    encoder: q(z|x) = N(A x + c, L L^T), L lower triangular (a full covariance, so q can be exact)

``loss`` is -ELBO / D computed analytically (no sampling); ``exact_log_prob`` is log p(x);
``log_prob_iw(x, k)`` the IWAE_k bound by sampling; ``set_exact_posterior()`` makes the ELBO tight.
Runs in float64 by default so the equalities hold to 1e-10.
"""

from __future__ import annotations

import torch
from torch import nn

from deepul_helpers.models._common import check_shape, model_device
from deepul_helpers.models.latent._common import LOG_2PI, log_mean_exp, log_standard_normal


class LinearGaussianVAE(nn.Module):
    """pPCA with an amortised linear encoder for continuous data (B, D) float."""

    def __init__(self, dim: int, latent_dim: int = 1, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.dims, self.latent_dim = int(dim), int(latent_dim)
        d, z = self.dims, self.latent_dim
        self.W = nn.Parameter(torch.randn(d, z, dtype=dtype))  # decoder weights (D, Z)
        self.b = nn.Parameter(torch.zeros(d, dtype=dtype))  # (D,)
        self.log_s = nn.Parameter(torch.zeros((), dtype=dtype))  # observation noise log-sd
        self.A = nn.Parameter(0.1 * torch.randn(z, d, dtype=dtype))  # encoder mean = A x + c
        self.c = nn.Parameter(torch.zeros(z, dtype=dtype))
        self.L_raw = nn.Parameter(torch.zeros(z, z, dtype=dtype))  # encoder covariance factor

    def _x(self, x):
        check_shape(x, (self.dims,), type(self).__name__)
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__}: continuous data must be a float tensor, got {x.dtype}")
        return x.to(self.W.dtype)

    def scale_tril(self) -> torch.Tensor:
        """(Z, Z) L of the encoder's covariance L L^T: strictly lower part free, positive diagonal."""
        return torch.tril(self.L_raw, -1) + torch.diag(torch.exp(torch.diagonal(self.L_raw)))

    def encode(self, x):
        """(B, D) -> posterior mean (B, Z), and L (Z, Z) (the same covariance for every x)."""
        return self._x(x) @ self.A.T + self.c, self.scale_tril()

    def exact_log_prob(self, x) -> torch.Tensor:
        """(B,) log p(x) = log N(x; b, W W^T + s^2 I) in nats."""
        cov = self.W @ self.W.T + torch.exp(2 * self.log_s) * torch.eye(self.dims, dtype=self.W.dtype,
                                                                         device=self.W.device)
        return torch.distributions.MultivariateNormal(self.b, covariance_matrix=cov).log_prob(self._x(x))

    def elbo(self, x) -> torch.Tensor:
        """(B,) the ELBO in closed form: E_q[log p(x|z)] - KL(q || p), nats."""
        x = self._x(x)
        m, L = self.encode(x)  # (B, Z), (Z, Z)
        S = L @ L.T  # (Z, Z)
        s2 = torch.exp(2 * self.log_s)
        resid = x - m @ self.W.T - self.b  # (B, D)
        sq = (resid**2).sum(1) + torch.trace(self.W @ S @ self.W.T)  # E_q |x - W z - b|^2
        recon = -0.5 * (self.dims * (LOG_2PI + torch.log(s2)) + sq / s2)
        kl = 0.5 * (torch.trace(S) + (m**2).sum(1) - self.latent_dim - 2 * torch.log(torch.diagonal(L)).sum())
        return recon - kl

    def log_weights(self, x, k: int) -> torch.Tensor:
        """(k, B): log p(x, z_i) - log q(z_i|x), z_i ~ q."""
        x = self._x(x)
        m, L = self.encode(x)
        eps = torch.randn(k, *m.shape, dtype=m.dtype, device=m.device)  # (k, B, Z)
        z = m + eps @ L.T
        log_q = log_standard_normal(eps) - torch.log(torch.diagonal(L)).sum()  # change of variables eps -> z
        s2 = torch.exp(2 * self.log_s)
        log_px_z = -0.5 * (self.dims * (LOG_2PI + torch.log(s2)) + ((x - z @ self.W.T - self.b) ** 2).sum(-1) / s2)
        return log_px_z + log_standard_normal(z) - log_q

    def log_prob_iw(self, x, k: int = 100, chunk: int = 1024) -> torch.Tensor:
        """(B,) IWAE_k, the importance-weighted bound on log p(x)."""
        return log_mean_exp(torch.cat([self.log_weights(x, min(chunk, k - i)) for i in range(0, k, chunk)]), 0)

    def loss(self, x) -> torch.Tensor:
        """-ELBO in nats per dimension, averaged over the batch (analytic, no sampling)."""
        return -self.elbo(x).mean() / self.dims

    @torch.no_grad()
    def set_exact_posterior(self) -> None:
        """Set the encoder to the exact posterior p(z|x), making the ELBO equal log p(x)."""
        s2 = torch.exp(2 * self.log_s)
        M = self.W.T @ self.W + s2 * torch.eye(self.latent_dim, dtype=self.W.dtype, device=self.W.device)
        Minv = torch.linalg.inv(M)
        self.A.copy_(Minv @ self.W.T)
        self.c.copy_(-(Minv @ self.W.T @ self.b))
        L = torch.linalg.cholesky(s2 * Minv)
        self.L_raw.copy_(torch.tril(L, -1) + torch.diag(torch.log(torch.diagonal(L))))

    @torch.no_grad()
    def set_maximum_likelihood(self, x) -> None:
        """The closed-form maximum-likelihood W, b, s of pPCA on data x (B, D) (Tipping & Bishop), then the
        exact posterior: the best this model can do, against which training can be compared."""
        x = self._x(x)
        self.b.copy_(x.mean(0))
        evals, evecs = torch.linalg.eigh(torch.cov((x - self.b).T, correction=0).reshape(self.dims, self.dims))
        evals, evecs = evals.flip(0), evecs.flip(1)  # descending
        s2 = evals[self.latent_dim:].mean() if self.latent_dim < self.dims else evals.new_tensor(1e-6)
        self.W.copy_(evecs[:, : self.latent_dim] * torch.sqrt(torch.clamp(evals[: self.latent_dim] - s2, min=0)))
        self.log_s.copy_(0.5 * torch.log(s2))
        self.set_exact_posterior()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """(n, D) float32 on the CPU: z ~ N(0, I), x = W z + b + s eps."""
        z = torch.randn(int(n), self.latent_dim, dtype=self.W.dtype, device=model_device(self))
        x = z @ self.W.T + self.b + torch.exp(self.log_s) * torch.randn(int(n), self.dims, dtype=self.W.dtype,
                                                                         device=model_device(self))
        return x.float().cpu()

