"""A VAE whose decoder is a PixelCNN conditioned on z (PixelVAE-style, Gulrajani et al. 2017).

p(x|z) = prod_i p(x_i | x_<i, z): the decoder alone is already an autoregressive model of the
images, strong enough to ignore z. Trained on the plain ELBO, the KL of every latent
dimension often goes to zero (posterior collapse): the model is then a PixelCNN and z
carries nothing. Free bits (``VAE(free_bits=...)``) or KL warm-up make z worth using.

The conditioning: z (B, Z) -> a (B, F, H, W) map by a linear layer, added after the PixelCNN's
first masked layer and every hidden layer. It does not depend on x, so the masks still make
pixel i see only x_<i (and z).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepul_helpers.models.autoregressive import PixelCNN
from deepul_helpers.models.latent.vae import VAE


class ConditionalPixelCNN(PixelCNN):
    """``models.autoregressive.PixelCNN`` whose every layer gets a learned function of z added."""

    def __init__(self, image_shape, levels: int, latent_dim: int, n_filters: int = 32, n_layers: int = 4,
                 kernel_size: int = 5):
        super().__init__(image_shape, levels, n_filters=n_filters, n_layers=n_layers, kernel_size=kernel_size)
        h, w, _ = self.image_shape
        self.n_filters = n_filters
        self.cond = nn.Linear(latent_dim, n_filters * h * w)  # z -> (F, H, W), one map per layer shared

    def logits_given(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x (B, H, W, C) levels, z (B, Z) -> (B, H, W, C, levels) logits of p(x_i | x_<i, z)."""
        b, (h, w, c) = x.shape[0], self.image_shape
        u = (x.float() / (self.levels - 1) * 2 - 1).permute(0, 3, 1, 2)  # (B, C, H, W)
        cmap = self.cond(z).reshape(b, self.n_filters, h, w)  # (B, F, H, W)
        u = F.relu(self.first(u) + cmap)
        for layer in self.hidden:
            u = u + F.relu(layer(u) + cmap)
        u = self.out2(F.relu(self.out1(u)))  # (B, levels*C, H, W)
        return u.reshape(b, self.levels, c, h, w).permute(0, 3, 4, 2, 1)


class PixelCNNDecoder(nn.Module):
    """The decoder interface of ``VAE`` (``log_prob(x, z)``, ``sample(z, noise)``) around a ConditionalPixelCNN."""

    def __init__(self, image_shape, levels: int, latent_dim: int, **pixelcnn_kw):
        super().__init__()
        self.net = ConditionalPixelCNN(image_shape, levels, latent_dim, **pixelcnn_kw)

    def log_prob(self, x, z):
        """x (B, H, W, C) levels, z (k, B, Z) -> (k, B) log p(x|z)."""
        k, b = z.shape[:2]
        xs = x.long().unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])  # (k*B, H, W, C)
        logp = F.log_softmax(self.net.logits_given(xs, z.reshape(k * b, -1)), dim=-1)
        return logp.gather(-1, xs.unsqueeze(-1)).reshape(k, b, -1).sum(-1)

    @torch.no_grad()
    def sample(self, z, noise: bool = True):
        """z (n, Z) -> (n, H, W, C) uint8, raster order (H*W*C passes); ``noise=False`` takes the mode."""
        h, w, c = self.net.image_shape
        x = torch.zeros(len(z), h, w, c, dtype=torch.long, device=z.device)
        for i in range(h):
            for j in range(w):
                for ch in range(c):
                    logits = self.net.logits_given(x, z)[:, i, j, ch]  # (n, levels)
                    x[:, i, j, ch] = (torch.distributions.Categorical(logits=logits).sample() if noise
                                      else logits.argmax(-1))
        return x.cpu().to(torch.uint8)


class PixelVAE(VAE):
    """A VAE on images of ``levels`` values with the PixelCNN decoder above; other arguments as ``VAE``
    (``free_bits``, ``warmup_iters`` are the remedies for collapse)."""

    def __init__(self, image_shape, levels: int, latent_dim: int = 8, hidden: int = 128, n_filters: int = 32,
                 n_layers: int = 4, kernel_size: int = 5, **vae_kw):
        decoder = PixelCNNDecoder(image_shape, levels, latent_dim, n_filters=n_filters, n_layers=n_layers,
                                  kernel_size=kernel_size)
        super().__init__(image_shape, "bernoulli" if levels == 2 else "categorical", levels=levels,
                         latent_dim=latent_dim, hidden=hidden, decoder=decoder, **vae_kw)

