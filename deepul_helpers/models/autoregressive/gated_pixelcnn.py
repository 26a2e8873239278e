"""Gated PixelCNN: a vertical and a horizontal stack, no blind spot.

van den Oord et al. (2016), "Conditional image generation with PixelCNN decoders".
The vertical stack sees every pixel in the rows above (k wide, growing with depth);
its features are shifted down one row before they enter the horizontal stack, which
sees the pixels to the left in the current row. Together the receptive field covers
every earlier pixel within reach, including those above-right that the plain
PixelCNN misses. Each layer is gated: tanh(a) * sigmoid(b).

Colour (``color_conditioning=True``, C > 1): as in :mod:`pixelcnn`, channel i of
the horizontal stack belongs to colour group i % C and the centre column of the
horizontal convolutions is masked by group ('A' in the first layer, 'B' after).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from deepul_helpers.models.autoregressive.pixelcnn import MaskedConv2d, pixelcnn_mask
from deepul_helpers.models.autoregressive.raster import RasterImageModel


class HorizontalConv(nn.Conv2d):
    """1 x (k//2 + 1) convolution over the current pixel and those to its left (NCHW).

    The centre (last) column is masked by colour group like a PixelCNN centre pixel.
    """

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int, groups: int):
        super().__init__(in_channels, out_channels, (1, kernel_size // 2 + 1))
        self.pad = kernel_size // 2
        mask = torch.ones(out_channels, in_channels, 1, kernel_size // 2 + 1)
        mask[:, :, 0, -1] = pixelcnn_mask(mask_type, in_channels, out_channels, 1, groups)[:, :, 0, 0]
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad, 0, 0, 0))  # pad left only
        return F.conv2d(x, self.weight * self.mask, self.bias)


class GatedLayer(nn.Module):
    """One gated layer: (v, h) -> (v, h), both (B, F, H, W) (the first takes the image)."""

    def __init__(self, in_channels: int, n_filters: int, kernel_size: int, groups: int, first: bool):
        super().__init__()
        k = kernel_size
        self.first, self.k = first, k
        self.v_conv = nn.Conv2d(in_channels, 2 * n_filters, (k // 2 + 1, k))  # rows i-k//2..i
        self.v_to_h = nn.Conv2d(2 * n_filters, 2 * n_filters, 1)
        self.h_conv = HorizontalConv("A" if first else "B", in_channels, 2 * n_filters, k, groups)
        self.h_out = MaskedConv2d("B", n_filters, n_filters, 1, groups)

    @staticmethod
    def gate(z: torch.Tensor) -> torch.Tensor:
        a, b = z.chunk(2, dim=1)  # channel o and o + F share colour group o % C
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, v: torch.Tensor, h: torch.Tensor):
        k = self.k
        v_pre = self.v_conv(F.pad(v, (k // 2, k // 2, k // 2, 0)))  # (B, 2F, H, W), rows <= i
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # shift down: rows < i only
        h_pre = self.h_conv(h) + self.v_to_h(v_down)  # (B, 2F, H, W)
        h_new = self.h_out(self.gate(h_pre))
        return self.gate(v_pre), (h_new if self.first else h + h_new)


class GatedPixelCNN(RasterImageModel):
    """Gated PixelCNN for NHWC uint8 images with ``levels`` values per channel.

    image_shape: ``(H, W, C)``; n_filters per stack (a multiple of C when colour-conditioned);
    n_layers gated layers with ``kernel_size``-wide kernels; color_conditioning as in PixelCNN.
    ``logits(x)``: (B, H, W, C, levels). ``loss(x)``: NLL in nats/dim.
    ``sample(n)``: (n, H, W, C) uint8 on the CPU.
    """

    def __init__(self, image_shape, levels: int, n_filters: int = 48, n_layers: int = 6,
                 kernel_size: int = 5, color_conditioning: bool = True):
        super().__init__()
        self._set_image(image_shape, levels)
        if kernel_size % 2 != 1 or kernel_size < 3:
            raise ValueError(f"kernel_size must be odd and at least 3, got {kernel_size}")
        c = self.image_shape[2]
        g = c if (color_conditioning and c > 1) else 1
        if n_filters % g:
            raise ValueError(f"n_filters={n_filters} must be a multiple of the {g} colour channels; "
                             f"use e.g. {g * (n_filters // g + 1)} or color_conditioning=False")
        self.color_conditioning, self.color_channels = bool(color_conditioning), g
        self.layers = nn.ModuleList(
            GatedLayer(c if i == 0 else n_filters, n_filters, kernel_size, g, first=(i == 0))
            for i in range(int(n_layers))
        )
        self.out1 = MaskedConv2d("B", n_filters, n_filters, 1, g)
        self.out2 = MaskedConv2d("B", n_filters, c * self.levels, 1, g)  # channel o: level o // C, colour o % C

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) float input scaled to [-1, 1] -> (B, H, W, C, levels) logits.

        Takes floats (not levels) so gradients can reach the input (receptive-field maps).
        """
        b, (h, w, c) = z.shape[0], self.image_shape
        z = z.permute(0, 3, 1, 2)  # (B, C, H, W)
        v = hz = z
        for layer in self.layers:
            v, hz = layer(v, hz)  # (B, F, H, W) each
        out = self.out2(F.relu(self.out1(F.relu(hz))))  # (B, levels*C, H, W)
        return out.reshape(b, self.levels, c, h, w).permute(0, 3, 4, 2, 1)
