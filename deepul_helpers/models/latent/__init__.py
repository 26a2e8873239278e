"""Latent-variable reference models: p(x) = integral p(x|z) p(z) dz, trained on a bound.

Every model has the course's likelihood interface (CONTRIBUTING.md): ``loss(x)`` is the
negative log-likelihood or **its upper bound** in nats per dimension (for discrete data the
bound on the *discrete* NLL, comparable with the autoregressive and flow families), and
``sample(n)`` returns data-format samples on the CPU. Objectives that are not bounds (beta,
free bits, KL warm-up, IWAE training, VQ-VAE's stage 1) are ``model.objective(x, iteration)``,
trained with ``fit(..., step=objective_step)``.

| model                  | latent              | loss                         | exact check               |
|------------------------|---------------------|------------------------------|---------------------------|
| :class:`VAE`           | Gaussian            | -ELBO (analytic KL); IWAE_k   | -                         |
| :class:`LinearGaussianVAE` | Gaussian (pPCA) | -ELBO in closed form         | ``exact_log_prob``        |
| :class:`PixelVAE`      | Gaussian            | -ELBO, PixelCNN decoder       | -                         |
| :class:`IAFVAE`        | Gaussian + IAF      | -ELBO (one-draw KL)           | -                         |
| :class:`BetaVAE`       | Gaussian            | -ELBO (trained with beta KL)  | -                         |
| :class:`VQVAE`         | code grid           | -log p(x|z_q) - log p(z_q)    | -                         |
| :class:`HelmholtzMachine` | binary (wake-sleep) | exact NLL by enumeration | ``log_prob``              |
"""

from deepul_helpers.models.latent._common import gaussian_kl, log_mean_exp, objective_step, reparameterize
from deepul_helpers.models.latent.beta_vae import BetaVAE, factor_r2, interpolate, interpolation_grid, traverse
from deepul_helpers.models.latent.helmholtz import HelmholtzMachine, wake_sleep_step
from deepul_helpers.models.latent.iaf_vae import IAFVAE
from deepul_helpers.models.latent.linear_gaussian import LinearGaussianVAE
from deepul_helpers.models.latent.pixelvae import PixelVAE
from deepul_helpers.models.latent.vae import VAE
from deepul_helpers.models.latent.vqvae import VQVAE

__all__ = [
    "BetaVAE", "HelmholtzMachine", "IAFVAE", "LinearGaussianVAE", "PixelVAE", "VAE", "VQVAE", "factor_r2",
    "gaussian_kl", "interpolate", "interpolation_grid", "log_mean_exp", "objective_step", "reparameterize", "traverse",
    "wake_sleep_step",
]
