"""Receptive fields measured by gradients: which inputs can change one output of a network.

Backpropagate from one output to the input; an input with a non-zero gradient is one the output
depends on. For an autoregressive image model (PixelCNN, Gated PixelCNN: ``model(z)`` maps
(B, H, W, C) floats in [-1, 1] to (B, H, W, C, levels) logits) this draws the pixels a
conditional sees, and shows PixelCNN's blind spot. Connectivity does not depend on the weights,
so an untrained model will do; random inputs (a batch of them, summed) keep a ReLU that happens
to be off at one input from hiding a connection. A unit that is off for *every* input (its bias
dominates, more likely in a very narrow untrained network) still hides one: with 8 filters per
layer, 1 in 100 seeds of a 6-layer Gated PixelCNN showed an empty field; with 16, none did.
"""

from __future__ import annotations

import numpy as np


def input_gradients(model, shape, at, channel: int = 0, n: int = 8, seed: int = 0) -> np.ndarray:
    """(H, W, C) array: |d model(z)[:, i, j, channel] / d z| summed over ``n`` random inputs in
    [-1, 1] and over the output's last axis (the levels), for ``at = (i, j)``.

    ``shape`` is the input image's (H, W, C). The global random state is left alone (the inputs
    come from a generator seeded with ``seed``); the model's mode is left as it was.
    """
    import torch

    from deepul_helpers.models._common import model_device

    h, w, c = (int(s) for s in shape)
    i, j = (int(a) for a in at)
    if not (0 <= i < h and 0 <= j < w and 0 <= channel < c):
        raise ValueError(f"at={tuple(at)}, channel={channel} lies outside an image of shape (H, W, C) = {shape}")
    gen = torch.Generator().manual_seed(seed)
    z = (torch.rand(n, h, w, c, generator=gen) * 2 - 1).to(model_device(model)).requires_grad_()
    out = model(z)  # (n, H, W, C, ...) per-pixel outputs
    if tuple(out.shape[1:4]) != (h, w, c):
        raise ValueError(f"model(z) must return (B, H, W, C, ...) outputs for z of shape (B, {h}, {w}, {c}); "
                         f"got {tuple(out.shape)}")
    (grad,) = torch.autograd.grad(out[:, i, j, channel].sum(), z)
    grad = grad.abs().sum(0).cpu().numpy()  # (H, W, C)
    if not np.isfinite(grad).all():
        raise ValueError("the input gradients are not finite (NaN or inf): check the model's parameters")
    return grad


def receptive_field(model, shape, at, channel: int = 0, n: int = 8, seed: int = 0) -> np.ndarray:
    """(H, W) bool: the input pixels (any channel) that output ``at = (i, j)``, ``channel`` depends on."""
    return input_gradients(model, shape, at, channel=channel, n=n, seed=seed).sum(-1) > 0
