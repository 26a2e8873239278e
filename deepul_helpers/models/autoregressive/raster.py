"""Small helpers shared by the autoregressive models (input checks, device look-up, the
likelihood and raster-order sampling of the PixelCNN family)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def model_device(module: torch.nn.Module) -> torch.device:
    """The device of the module's first parameter (CPU for a module without parameters)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def check_levels(x: torch.Tensor, levels: int, what: str) -> torch.Tensor:
    """``x`` as int64 after checking it holds integers in ``0..levels-1``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch tensor of integer levels, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex():
        raise TypeError(
            f"{what}: expected integer levels (uint8/int64) as the data set stores them, got {x.dtype}; "
            "pass the batch unchanged, the model does its own conversion"
        )
    x = x.long()
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= levels):
        raise ValueError(
            f"{what}: values must lie in 0..{levels - 1} (levels={levels}), "
            f"got min {int(x.min())}, max {int(x.max())}"
        )
    return x


def check_shape(x: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    """Raise a clear error unless ``x`` is a batch of examples of shape ``shape``."""
    if tuple(x.shape[1:]) != tuple(shape) or x.dim() != len(shape) + 1:
        raise ValueError(f"{what}: expected a batch of shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")


class RasterImageModel(torch.nn.Module):
    """Likelihood and sampling for a model of NHWC images in raster order (pixels row by row,
    channels R, G, B within a pixel) whose ``logits(x)`` is ``(B, H, W, C, levels)``.

    Subclasses call ``_set_image(image_shape, levels)`` and define ``forward`` on float images scaled
    to [-1, 1] (floats, so that gradients reach the input for receptive-field maps).
    """

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) integer levels -> (B, H, W, C, levels) logits of p(x_i | x_<i)."""
        return self(x.float() / (self.levels - 1) * 2 - 1)

    def _set_image(self, image_shape, levels: int) -> None:
        """Check and store ``image_shape`` (H, W, C) and ``levels`` (2..256, uint8 images)."""
        if len(tuple(image_shape)) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {image_shape}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.levels = int(levels)
        if not 2 <= self.levels <= 256:
            raise ValueError(f"levels must be in 2..256 for uint8 images, got {levels}")

    def _check(self, x: torch.Tensor, what: str) -> torch.Tensor:
        check_shape(x, self.image_shape, what)
        return check_levels(x, self.levels, what)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) log p(x) in nats."""
        x = self._check(x, f"{type(self).__name__}.log_prob")
        logp = F.log_softmax(self.logits(x), dim=-1)
        return logp.gather(-1, x.unsqueeze(-1)).squeeze(-1).flatten(1).sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check(x, f"{type(self).__name__}.loss")
        return F.cross_entropy(self.logits(x).reshape(-1, self.levels), x.reshape(-1))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, H, W, C) uint8 on the CPU: one forward pass per pixel and channel."""
        h, w, c = self.image_shape
        x = torch.zeros(int(n), h, w, c, dtype=torch.long, device=model_device(self))
        for i in range(h):
            for j in range(w):
                for k in range(c):
                    probs = F.softmax(self.logits(x)[:, i, j, k], dim=-1).cpu()  # (n, levels)
                    x[:, i, j, k] = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(x.device)
        return x.cpu().to(torch.uint8)
