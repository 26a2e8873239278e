"""The likelihood and raster-order sampling shared by the PixelCNN family (``RasterImageModel``).

Device look-up and the shape/level checks every family uses live in ``deepul_helpers.models._common``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deepul_helpers.models._common import CategoricalLikelihood, check_levels, check_shape, model_device


class RasterImageModel(CategoricalLikelihood):
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
