"""The adversarial losses, written from the discriminator's raw outputs (logits or critic values).

Notation: ``real`` = D's output on data (B,), ``fake`` = D's output on generated samples (B,).
For the GAN losses the output is a logit: D(x) = sigmoid(logit). Every loss is a mean over the
batch and is *minimised* by the player it belongs to.

- minimax (Goodfellow et al. 2014), the value V(D, G) = E log D(x) + E log(1 - D(G(z))):
  discriminator ``-V``, generator ``E log(1 - D(G(z)))`` (it descends V). At the optimal
  discriminator D* = p_data / (p_data + p_g), V = -log 4 + 2 JSD(p_data || p_g).
- non-saturating: the generator minimises ``-E log D(G(z))`` instead (same fixed point; strong
  gradients when D confidently rejects the fakes, where the minimax generator's vanish).
- Wasserstein (WGAN): critic ``E f(G(z)) - E f(x)``, generator ``-E f(G(z))``; with the
  gradient penalty (WGAN-GP) ``lambda E (||grad f(x_hat)||_2 - 1)^2`` on x_hat = eps x + (1 - eps)
  G(z), one eps ~ U[0, 1] per example.
- hinge: discriminator ``E relu(1 - D(x)) + E relu(1 + D(G(z)))``, generator ``-E D(G(z))``.

log D = logsigmoid(logit) and log(1 - D) = logsigmoid(-logit): stable for any logit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def minimax_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-E log D(x) - E log(1 - D(G(z))) (binary cross-entropy, real = 1, fake = 0)."""
    return -(F.logsigmoid(real).mean() + F.logsigmoid(-fake).mean())


def minimax_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """E log(1 - D(G(z))): saturates (flat) where D(G(z)) -> 0."""
    return F.logsigmoid(-fake).mean()


def nonsaturating_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """-E log D(G(z))."""
    return -F.logsigmoid(fake).mean()


def wasserstein_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E f(G(z)) - E f(x): minus the critic's estimate of the Wasserstein-1 distance."""
    return fake.mean() - real.mean()


def wasserstein_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """-E f(G(z)) (also the hinge generator loss)."""
    return -fake.mean()


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E relu(1 - D(x)) + E relu(1 + D(G(z)))."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


hinge_g_loss = wasserstein_g_loss

# loss kind -> (discriminator loss, generator loss)
LOSSES = {
    "minimax": (minimax_d_loss, minimax_g_loss),
    "nonsaturating": (minimax_d_loss, nonsaturating_g_loss),
    "wgan-gp": (wasserstein_d_loss, wasserstein_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
}


def interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """x_hat = eps x + (1 - eps) G(z) with one eps ~ U[0, 1] per example (broadcast over its dimensions)."""
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches must have the same shape, got {tuple(real.shape)} and "
                         f"{tuple(fake.shape)}")
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device)
    eps = eps.reshape(-1, *([1] * (real.dim() - 1))).to(real.dtype)  # (B, 1, ..., 1)
    return eps * real + (1 - eps) * fake


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """WGAN-GP's E (||grad_x f(x_hat)||_2 - 1)^2 and the per-example gradient norms (B,).

    ``critic`` maps a batch to one value per example (or per pack of examples: the gradient
    of their sum still separates the examples, each input enters one output only).
    The penalty keeps its graph (create_graph=True), so it trains the critic.
    """
    x_hat = interpolate(real, fake.detach(), eps).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)  # (B, ...)
    norms = grad.reshape(grad.shape[0], -1).norm(dim=1)  # (B,)
    return ((norms - 1.0) ** 2).mean(), norms.detach()
