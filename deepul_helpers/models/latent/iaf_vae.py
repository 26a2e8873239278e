"""A VAE with a richer posterior: the encoder's Gaussian followed by inverse autoregressive flow
layers (Kingma et al. 2016), the IAF layers of ``models.flows``.

    z_0 = mu(x) + sigma(x) * eps,   z = f(z_0) (IAF layers, one pass each)
    log q(z|x) = log N(z_0; mu, sigma^2) - log |det df/dz_0|

The flow here is shared by all x (not conditioned on the encoder's features): it can still
correlate and bend the posterior, which a diagonal Gaussian cannot. The KL is no longer analytic:
the ELBO uses one draw of log p(z) - log q(z|x). With zero flow layers it is the plain VAE.
"""

from __future__ import annotations

import torch
from torch import nn

from deepul_helpers.models.flows import IAFLayer
from deepul_helpers.models.latent._common import log_normal, log_standard_normal, reparameterize
from deepul_helpers.models.latent.vae import VAE


class IAFVAE(VAE):
    """``VAE`` whose q(z|x) is a diagonal Gaussian pushed through ``n_flows`` IAF layers (MADE width
    ``flow_hidden``), with the latent order reversed between layers. Other arguments as ``VAE``."""

    def __init__(self, shape, likelihood: str = "gaussian", levels: int | None = None, latent_dim: int = 2,
                 n_flows: int = 2, flow_hidden: int = 32, **vae_kw):
        super().__init__(shape, likelihood, levels, latent_dim=latent_dim, **vae_kw)
        if latent_dim < 2:
            raise ValueError("an IAF posterior needs latent_dim >= 2 (with 1 dimension it is elementwise)")
        self.flows = nn.ModuleList(IAFLayer(latent_dim, flow_hidden, 1) for _ in range(n_flows))

    def posterior_sample(self, x, k: int = 1):
        """k draws z ~ q(z|x) and log q(z|x): (k, B, Z), (k, B)."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, k)  # (k, B, Z)
        log_q = log_normal(z, mu, logvar)
        shape = z.shape
        z = z.reshape(-1, self.latent_dim)
        for i, layer in enumerate(self.flows):
            z, logdet = layer.inverse(z)  # one pass: z_i = z0_i * exp(s_i(z0_<i)) + m_i(z0_<i)
            log_q = log_q - logdet.reshape(shape[:2])
            if i < len(self.flows) - 1:
                z = z.flip(-1)
        return z.reshape(shape), log_q

    def elbo_terms(self, x: torch.Tensor) -> dict:
        """As ``VAE.elbo_terms``, with a one-draw KL: ``kl`` (B,) = log q(z|x) - log p(z) at that draw
        (``kl_per_dim`` has no meaning for a non-factorised posterior and is not given)."""
        x = self.lik.check(x, type(self).__name__)
        z, log_q = self.posterior_sample(x, 1)
        recon = self.decoder.log_prob(x, z)[0]
        kl = (log_q - log_standard_normal(z))[0]
        return {"recon": recon, "kl": kl, "kl_per_dim": kl[:, None], "elbo": recon - kl}
