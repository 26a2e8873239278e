"""Implicit models: reference implementations for the course (lecture 04, homework 4).

GANs sample without a likelihood; they train through ``fit(step=gan_step,
optimizer=gan_optimizer())``. The energy-based model has a likelihood, normalised exactly on a
grid; the GMMN trains by the maximum mean discrepancy.

- ``losses``: minimax, non-saturating, Wasserstein, hinge; ``gradient_penalty`` (WGAN-GP).
- ``spectral_norm``: ``spectral_normalize`` (power iteration), ``apply_spectral_norm``.
- ``gan``: ``GAN`` (any generator/discriminator, packing), ``mlp_gan`` (1D/2D), ``gan_step``,
  ``gan_optimizer``, ``generator_grad_norm``.
- ``dcgan``: ``dcgan("digits")`` / ``dcgan("shapes")``.
- ``gmmn``: ``mmd2_unbiased``, ``mmd_permutation_test``, ``GMMN``.
- ``ebm``: ``GridEBM`` (exact grid-normalised density), ``cd_step``, ``dsm_step``.
"""

from .dcgan import dcgan
from .ebm import GridEBM, cd_step, dsm_step
from .gan import (
    GAN,
    GANOptimizer,
    discriminator_step,
    gan_optimizer,
    gan_step,
    generator_grad_norm,
    mlp,
    mlp_gan,
    pack_batch,
)
from .gmmn import GMMN, gaussian_kernel, mmd2_unbiased, mmd_permutation_test
from .losses import (
    LOSSES,
    gradient_penalty,
    hinge_d_loss,
    hinge_g_loss,
    interpolate,
    minimax_d_loss,
    minimax_g_loss,
    nonsaturating_g_loss,
    wasserstein_d_loss,
    wasserstein_g_loss,
)
from .spectral_norm import SpectralNorm, apply_spectral_norm, spectral_normalize

__all__ = [
    "GAN", "GANOptimizer", "GMMN", "GridEBM", "LOSSES", "SpectralNorm", "apply_spectral_norm", "cd_step", "dcgan",
    "discriminator_step", "dsm_step", "gan_optimizer", "gan_step", "gaussian_kernel", "generator_grad_norm",
    "gradient_penalty",
    "hinge_d_loss", "hinge_g_loss", "interpolate", "minimax_d_loss", "minimax_g_loss", "mlp", "mlp_gan",
    "mmd2_unbiased", "mmd_permutation_test", "nonsaturating_g_loss", "pack_batch", "spectral_normalize",
    "wasserstein_d_loss", "wasserstein_g_loss",
]
