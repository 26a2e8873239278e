"""A GAN: a generator G(z), a discriminator D(x), one of four losses, optional packing, trained by ``fit``.

    model = mlp_gan(dim=2, loss="nonsaturating", pack=1)       # 1D / 2D points
    hist = fit(model, x, epochs=..., step=gan_step, optimizer=gan_optimizer(), lr=2e-4, batch_size=256)
    model.sample(2500)                                         # (2500, 2) float32 on the CPU

``GAN`` holds any generator (noise (B, noise_dim) -> network space) and discriminator (network
space -> one value per example); ``encode`` / ``decode`` map data space to network space and back
(identity for points; images in dcgan.py). ``loss`` is "minimax", "nonsaturating", "wgan-gp" or
"hinge" (losses.py). ``pack = m`` (PacGAN, Lin et al. 2018): D judges m samples at once, all
real or all fake, concatenated along the features (points) or channels (images); a generator
that drops modes then produces packs that look unlike real packs, which D can see.

``gan_step(model, batch, optimizer, iteration)`` is the update ``fit(step=...)`` calls: one
discriminator step per iteration and one generator step every ``n_critic`` iterations (5 for
WGAN-GP, 1 otherwise). It returns ``loss`` (the discriminator's loss, what fit records) and
``g_loss`` (the last generator loss) and, for WGAN-GP, ``grad_norm`` (the critic's mean
gradient norm on the interpolates). ``gan_optimizer`` gives fit the two Adams it needs.
A GAN has no likelihood: it has no ``loss(x)`` and trains with ``test_data=None``.
"""

from __future__ import annotations

import torch
from torch import nn

from deepul_helpers.models._common import model_device

from .losses import LOSSES, gradient_penalty
from .spectral_norm import apply_spectral_norm


def mlp(d_in: int, d_out: int, hidden: int = 128, layers: int = 3, act=nn.LeakyReLU) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` with activation ``act``, then a linear output."""
    mods, d = [], d_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), act()]
        d = hidden
    return nn.Sequential(*mods, nn.Linear(d, d_out))


def pack_batch(x: torch.Tensor, m: int) -> torch.Tensor:
    """(B, C, ...) -> (B // m, m * C, ...): m consecutive examples side by side (B a multiple of m)."""
    if x.shape[0] % m:
        raise ValueError(f"a batch of {x.shape[0]} examples cannot be cut into packs of {m}")
    return x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])


class GAN(nn.Module):
    """Generator + discriminator + loss kind (see the module docstring)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, noise_dim: int, loss: str = "nonsaturating",
                 pack: int = 1, n_critic: int | None = None, gp_weight: float = 10.0,
                 encode=None, decode=None, data_shape: tuple = ()):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown GAN loss {loss!r}; use one of {', '.join(LOSSES)}")
        if not (isinstance(pack, int) and pack >= 1):
            raise ValueError(f"pack must be a positive integer, got {pack!r}")
        self.generator, self.discriminator = generator, discriminator
        self.noise_dim, self.loss_kind, self.pack, self.gp_weight = noise_dim, loss, pack, gp_weight
        self.n_critic = n_critic if n_critic is not None else (5 if loss == "wgan-gp" else 1)
        self.encode = encode or (lambda x: x.float())
        self.decode = decode or (lambda y: y.float())
        self.data_shape = tuple(data_shape)
        self._last_g_loss = float("nan")

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.noise_dim, device=model_device(self))  # (n, noise_dim)

    def discriminate(self, y: torch.Tensor) -> torch.Tensor:
        """D's raw output (logit / critic value) on network-space examples y (B, ...): (B // pack,)."""
        return self.discriminator(pack_batch(y, self.pack)).reshape(-1)

    @torch.no_grad()
    def d_prob(self, x) -> torch.Tensor:
        """sigmoid(D(x)) for data-space points x (B, D) (pack 1 only): the discriminator curve."""
        if self.pack != 1:
            raise ValueError("d_prob reads one example at a time; it needs pack=1")
        x = torch.as_tensor(x).to(model_device(self))
        return torch.sigmoid(self.discriminate(self.encode(x))).cpu()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n samples in data space, on the CPU."""
        was = self.training
        self.eval()
        out = self.decode(self.generator(self.noise(n))).cpu()
        self.train(was)
        return out


def mlp_gan(dim: int = 2, loss: str = "nonsaturating", pack: int = 1, hidden: int = 128, layers: int = 3,
            noise_dim: int | None = None, spectral_norm: bool | None = None, scale: float = 1.0, **kw) -> GAN:
    """A GAN on points (B, dim): MLP generator and discriminator (LeakyReLU; the discriminator of a
    hinge GAN is spectrally normalised unless ``spectral_norm=False``).

    ``scale``: network space is ``scale`` x data space. A critic held 1-Lipschitz (spectral norm, the
    gradient penalty) in network space is ``scale``-Lipschitz in data space: it can only tell apart
    points about ``1 / scale`` apart, so on components of sd 0.01-0.05 those GANs need ``scale`` ~ 10
    (``bench/implicit.py`` measures both)."""
    if not scale > 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    noise_dim = noise_dim or max(2, dim)
    disc = mlp(dim * pack, 1, hidden, layers)
    if spectral_norm or (spectral_norm is None and loss == "hinge"):
        apply_spectral_norm(disc)
    if scale != 1.0:
        kw.setdefault("encode", lambda x: x.float() * scale)
        kw.setdefault("decode", lambda y: y.float() / scale)
    return GAN(mlp(noise_dim, dim, hidden, layers), disc, noise_dim, loss=loss, pack=pack, data_shape=(dim,), **kw)


class GANOptimizer:
    """Two Adam optimizers (generator ``g``, discriminator ``d``) that ``fit`` sees as one."""

    def __init__(self, model: GAN, lr: float, lr_d: float | None = None, betas=(0.5, 0.999)):
        self.g = torch.optim.Adam(model.generator.parameters(), lr=lr, betas=betas)
        self.d = torch.optim.Adam(model.discriminator.parameters(), lr=lr_d or lr, betas=betas)

    @property
    def param_groups(self):
        return self.g.param_groups + self.d.param_groups

    def state_dict(self):
        return {"g": self.g.state_dict(), "d": self.d.state_dict()}

    def load_state_dict(self, state):
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])


def gan_optimizer(lr_d: float | None = None, betas=(0.5, 0.999)):
    """For ``fit(optimizer=...)``: builds a :class:`GANOptimizer` with fit's ``lr`` for the generator."""
    return lambda model, lr: GANOptimizer(model, lr, lr_d, betas)


def discriminator_loss(model: GAN, y_real: torch.Tensor, y_fake: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The discriminator's loss on network-space batches (plus the gradient penalty for WGAN-GP)."""
    d_loss_fn, _ = LOSSES[model.loss_kind]
    loss = d_loss_fn(model.discriminate(y_real), model.discriminate(y_fake))
    extra = {}
    if model.loss_kind == "wgan-gp":
        penalty, norms = gradient_penalty(model.discriminate, y_real, y_fake)
        loss = loss + model.gp_weight * penalty
        extra["grad_norm"] = float(norms.mean())
    return loss, extra


def generator_loss(model: GAN, n: int) -> torch.Tensor:
    """The generator's loss on n fresh samples."""
    _, g_loss_fn = LOSSES[model.loss_kind]
    return g_loss_fn(model.discriminate(model.generator(model.noise(n))))


def gan_step(model: GAN, batch: torch.Tensor, optimizer: GANOptimizer, iteration: int) -> dict:
    """One discriminator update on ``batch`` (data space), and a generator update every ``n_critic``."""
    y_real = model.encode(batch)
    n = y_real.shape[0] - y_real.shape[0] % model.pack
    if n == 0:
        return {"loss": float("nan"), "g_loss": model._last_g_loss}
    y_real = y_real[:n]
    with torch.no_grad():
        y_fake = model.generator(model.noise(n))
    d_loss, extra = discriminator_loss(model, y_real, y_fake)
    optimizer.d.zero_grad(set_to_none=True)
    d_loss.backward()
    optimizer.d.step()
    if (iteration + 1) % model.n_critic == 0:
        g_loss = generator_loss(model, n)
        optimizer.g.zero_grad(set_to_none=True)
        g_loss.backward()
        optimizer.g.step()
        model._last_g_loss = float(g_loss.detach())
    return {"loss": float(d_loss.detach()), "g_loss": model._last_g_loss, **extra}


def discriminator_step(model: GAN, batch: torch.Tensor, optimizer: GANOptimizer, iteration: int) -> dict:
    """A discriminator update only (the generator stays fixed): ``fit(step=discriminator_step)`` trains D
    against the current generator, e.g. before measuring the generator's gradient at the start."""
    y_real = model.encode(batch)
    n = y_real.shape[0] - y_real.shape[0] % model.pack
    with torch.no_grad():
        y_fake = model.generator(model.noise(n))
    d_loss, extra = discriminator_loss(model, y_real[:n], y_fake)
    optimizer.d.zero_grad(set_to_none=True)
    d_loss.backward()
    optimizer.d.step()
    return {"loss": float(d_loss.detach()), **extra}


def generator_grad_norm(model: GAN, n: int = 512, loss: str | None = None) -> float:
    """||d generator-loss / d generator-parameters||_2 on n fresh samples (no update made).

    ``loss`` overrides the model's generator loss kind ("minimax" or "nonsaturating"), so that
    both can be measured against the same discriminator.
    """
    g_loss_fn = LOSSES[loss or model.loss_kind][1]
    params = [p for p in model.generator.parameters() if p.requires_grad]
    value = g_loss_fn(model.discriminate(model.generator(model.noise(n))))
    grads = torch.autograd.grad(value, params)
    return float(torch.sqrt(sum((g**2).sum() for g in grads)))
