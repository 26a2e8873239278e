"""Parallel multiscale PixelCNN: sampling in O(log n) network passes instead of n.

The idea of Reed et al. (2017), "Parallel Multiscale Autoregressive Density Estimation", in its
simplest form. The pixels of an H x W image are split into *groups* by scale:

- step 0: the pixel (0, 0) alone (the coarsest grid, stride 2^L with 2^L >= max(H, W));
- then for each level, stride s = 2^(L-1), ..., 2, 1, the pixels of the stride-s grid that are not on
  the stride-2s grid, in three groups: (odd, odd), then (even, odd), then (odd, even) in units of s.

``multiscale_steps(h, w)`` gives each pixel its step t. The model factorises

    p(x) = prod_t prod_{pixel i in step t} p(x_i | all pixels of steps < t)

(pixels of one step, and the channels of a pixel, are conditionally independent given the earlier
steps). One network pass predicts a whole step, so sampling takes at most 1 + 3 L = O(log n) passes
(n = H W): 10 for 8x8 against 64 for a PixelCNN, 16 for 20x20 against 400. The price: pixels of one
group cannot inform each other, so the likelihood is usually a little worse.

The network is a plain (unmasked) dilated convolution stack; the factorisation comes from its input:
the image with every pixel of steps >= t set to 0 (multiplied by a 0/1 mask, so no gradient reaches
it), the mask of known pixels, and the mask of the pixels to predict.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from deepul_helpers.models._common import CategoricalLikelihood, check_levels, check_shape, model_device


def multiscale_steps(h: int, w: int) -> torch.Tensor:
    """(H, W) int64: the step at which each pixel is generated (0 for pixel (0, 0), at most 3 L)."""
    n_levels = math.ceil(math.log2(max(h, w))) if max(h, w) > 1 else 0
    steps = torch.zeros(h, w, dtype=torch.long)
    for i in range(h):
        for j in range(w):
            if i == 0 and j == 0:
                continue
            level = min(_twos(i, n_levels), _twos(j, n_levels))  # the finest stride 2^level holding (i, j)
            odd_i, odd_j = (i >> level) & 1, (j >> level) & 1
            group = {(1, 1): 0, (0, 1): 1, (1, 0): 2}[(odd_i, odd_j)]
            steps[i, j] = 1 + 3 * (n_levels - 1 - level) + group
    return steps


def _twos(k: int, cap: int) -> int:
    """How many times 2 divides k (``cap`` for k = 0)."""
    if k == 0:
        return cap
    return (k & -k).bit_length() - 1


class ParallelPixelCNN(CategoricalLikelihood):
    """Multiscale PixelCNN for NHWC uint8 images with ``levels`` values per channel.

    image_shape: ``(H, W, C)``. n_filters, n_layers: width and depth of the residual 3x3 stack, with
    dilations 1, 2, 4, 8, ... (cycling up to the image size) so one pass sees the whole image.

    ``logits(x)``: (B, H, W, C, levels), pixel i's logits from the pass of its own step.
    ``loss(x)``: NLL in nats/dim (exact). ``sample(n)``: (n, H, W, C) uint8 on the CPU in
    ``passes_per_sample`` network passes; ``passes`` counts the passes of the last call.
    """

    def __init__(self, image_shape, levels: int, n_filters: int = 64, n_layers: int = 6):
        super().__init__()
        h, w, c = (int(s) for s in image_shape)
        if not 2 <= int(levels) <= 256:
            raise ValueError(f"levels must be in 2..256 for uint8 images, got {levels}")
        if int(n_layers) < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        self.image_shape, self.levels = (h, w, c), int(levels)
        self.register_buffer("steps", multiscale_steps(h, w))  # (H, W)
        self.order = [int(t) for t in torch.unique(self.steps)]  # the non-empty steps, in order
        self.passes_per_sample = len(self.order)
        self.passes = 0
        reach = max(h, w)
        dilations = [2 ** (k % max(1, math.ceil(math.log2(reach)))) for k in range(int(n_layers))]
        self.first = nn.Conv2d(c + 2, n_filters, 3, padding=1)
        self.hidden = nn.ModuleList(nn.Conv2d(n_filters, n_filters, 3, padding=d, dilation=d) for d in dilations)
        self.out = nn.Conv2d(n_filters, c * self.levels, 1)

    def _check(self, x: torch.Tensor, what: str) -> torch.Tensor:
        check_shape(x, self.image_shape, what)
        return check_levels(x, self.levels, what)

    def step_logits(self, z: torch.Tensor, step: int) -> torch.Tensor:
        """One network pass. z: (B, H, W, C) floats in [-1, 1]; returns (B, H, W, C, levels) logits,
        meaningful at the pixels of ``step``; they depend only on the pixels of earlier steps."""
        b, (h, w, c) = z.shape[0], self.image_shape
        known = (self.steps < step).to(z.dtype)  # (H, W)
        target = (self.steps == step).to(z.dtype)
        inp = torch.cat([z.permute(0, 3, 1, 2) * known,  # (B, C, H, W), later pixels zeroed
                         known.expand(b, 1, h, w), target.expand(b, 1, h, w)], 1)  # (B, C+2, H, W)
        a = F.relu(self.first(inp))  # (B, F, H, W)
        for layer in self.hidden:
            a = a + F.relu(layer(a))
        out = self.out(a)  # (B, C*levels, H, W)
        return out.reshape(b, self.levels, c, h, w).permute(0, 3, 4, 2, 1)  # (B, H, W, C, levels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) floats in [-1, 1] -> (B, H, W, C, levels): every step's pass, batched together,
        each pixel taking its logits from the pass of its own step (floats so gradients reach the input)."""
        b, t = z.shape[0], len(self.order)
        zs = z.unsqueeze(0).expand(t, *z.shape).reshape(t * b, *z.shape[1:])  # (T*B, H, W, C)
        outs = torch.cat([self.step_logits(zs[k * b:(k + 1) * b], s) for k, s in enumerate(self.order)])
        outs = outs.reshape(t, b, *outs.shape[1:])  # (T, B, H, W, C, levels)
        index = torch.searchsorted(torch.tensor(self.order, device=z.device), self.steps)  # (H, W) pass of each pixel
        sel = F.one_hot(index, t).permute(2, 0, 1).to(outs.dtype)  # (T, H, W)
        return (outs * sel[:, None, :, :, None, None]).sum(0)  # (B, H, W, C, levels)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) integer levels -> (B, H, W, C, levels) logits of p(x_i | earlier steps)."""
        return self(x.float() / (self.levels - 1) * 2 - 1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, H, W, C) uint8 on the CPU: one network pass per step (``passes_per_sample`` in all)."""
        x = torch.zeros(int(n), *self.image_shape, dtype=torch.long, device=model_device(self))
        self.passes = 0
        for s in self.order:
            logits = self.step_logits(x.float() / (self.levels - 1) * 2 - 1, s)  # (n, H, W, C, levels)
            self.passes += 1
            where = self.steps == s  # (H, W)
            probs = F.softmax(logits[:, where], -1).cpu()  # (n, P, C, levels)
            draw = torch.multinomial(probs.reshape(-1, self.levels), 1, generator=generator)
            x[:, where] = draw.reshape(probs.shape[:-1]).to(x.device)
        return x.cpu().to(torch.uint8)
