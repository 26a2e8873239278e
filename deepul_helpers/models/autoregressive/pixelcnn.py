"""PixelCNN: masked convolutions over NHWC images in raster order.

van den Oord et al. (2016). A type-'A' mask hides the centre pixel (first layer:
the output at a pixel must not see that pixel); type 'B' lets the centre through
(later layers: the centre feature already only holds the past). Stacked 'B'
layers leave a *blind spot*: pixels above-right of the current one that the
receptive field never reaches (see GatedPixelCNN for the fix).

Colour: with ``color_channels=3`` the channels of every layer are split into
R, G, B groups (channel i belongs to group i % 3), and at the centre pixel
group g sees groups < g (mask 'A') or <= g (mask 'B'), so that
p(x) = prod_pixels p(R | past) p(G | R, past) p(B | R, G, past).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from deepul_helpers.models.autoregressive.raster import RasterImageModel


def pixelcnn_mask(mask_type: str, in_channels: int, out_channels: int, kernel_size: int,
                  color_channels: int = 1) -> torch.Tensor:
    """The 0/1 mask ``(out_channels, in_channels, k, k)`` of a masked convolution.

    Rows above the centre and pixels left of it in the centre row are visible;
    at the centre, out group g sees in group h when h < g ('A') or h <= g ('B'),
    with channel i in group ``i % color_channels``.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd so the kernel has a centre, got {kernel_size}")
    k, k_half = kernel_size, kernel_size // 2
    mask = torch.zeros(out_channels, in_channels, k, k)
    mask[:, :, :k_half, :] = 1  # rows above
    mask[:, :, k_half, :k_half] = 1  # left in the centre row
    g_out = torch.arange(out_channels) % color_channels
    g_in = torch.arange(in_channels) % color_channels
    centre = g_in[None, :] < g_out[:, None] if mask_type == "A" else g_in[None, :] <= g_out[:, None]
    mask[:, :, k_half, k_half] = centre.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same padding) whose weight is multiplied by :func:`pixelcnn_mask` (a buffer).

    Input and output are NCHW like any convolution.
    """

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int,
                 color_channels: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask_type = mask_type
        self.register_buffer("mask", pixelcnn_mask(mask_type, in_channels, out_channels, kernel_size,
                                                   color_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(RasterImageModel):
    """PixelCNN for NHWC uint8 images with ``levels`` values per channel.

    image_shape: ``(H, W, C)``. levels: values per channel (2 for binary images).
    n_filters, n_layers: width and number of masked layers (one 'A', then 'B'
    layers with residual connections), each ``kernel_size`` wide, then two 1x1 'B' layers.
    color_conditioning: with C > 1, True -> R, G, B autoregressive within a pixel;
    False -> the channels of a pixel are independent given the previous pixels.

    ``logits(x)``: (B, H, W, C, levels). ``loss(x)``: NLL in nats/dim (dims = H*W*C).
    ``sample(n)``: (n, H, W, C) uint8 on the CPU, H*W*C forward passes.
    """

    def __init__(self, image_shape, levels: int, n_filters: int = 64, n_layers: int = 8,
                 kernel_size: int = 7, color_conditioning: bool = True):
        super().__init__()
        self._set_image(image_shape, levels)
        if int(n_layers) < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        c = self.image_shape[2]
        self.color_conditioning = bool(color_conditioning)
        g = c if (self.color_conditioning and c > 1) else 1  # channel groups inside the masks
        self.color_channels = g
        self.first = MaskedConv2d("A", c, n_filters, kernel_size, g)
        self.hidden = nn.ModuleList(
            MaskedConv2d("B", n_filters, n_filters, kernel_size, g) for _ in range(int(n_layers) - 1)
        )
        self.out1 = MaskedConv2d("B", n_filters, n_filters, 1, g)
        # output channel o is level o // C of channel o % C (so its group is o % C = its channel)
        self.out2 = MaskedConv2d("B", n_filters, c * self.levels, 1, g)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) float input scaled to [-1, 1] -> (B, H, W, C, levels) logits.

        Takes floats (not levels) so gradients can reach the input (receptive-field maps).
        """
        b, (h, w, c) = z.shape[0], self.image_shape
        z = z.permute(0, 3, 1, 2)  # (B, C, H, W)
        z = F.relu(self.first(z))  # (B, F, H, W)
        for layer in self.hidden:
            z = z + F.relu(layer(z))  # (B, F, H, W)
        z = self.out2(F.relu(self.out1(z)))  # (B, levels*C, H, W)
        return z.reshape(b, self.levels, c, h, w).permute(0, 3, 4, 2, 1)  # (B, H, W, C, levels)
