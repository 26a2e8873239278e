"""RealNVP models: affine couplings with alternating masks for 2D points, and the multiscale
architecture for images (checkerboard couplings, squeeze, channel couplings, factor out half).
``glow=True`` adds Glow's ActNorm + invertible 1x1 convolution before every coupling."""

from __future__ import annotations

from .bijectors import FlowSequence
from .coupling import AffineCoupling, alternating_mask, channel_mask, checkerboard_mask, conv_net, mlp
from .dequantization import VariationalDequantization
from .flow import Flow
from .glow import ActNorm, InvertibleConv1x1
from .multiscale import FactorOut, Squeeze, Unsqueeze


class RealNVP(Flow):
    """RealNVP for points (N, D) (the 2D toys): ActNorm, then ``n_couplings`` affine couplings with
    alternating masks (each preceded by ActNorm, and by an invertible linear map when ``glow``).

    Args:
        dim: D. n_couplings: coupling layers. hidden / n_hidden_layers: each coupling's MLP.
        levels: int levels for discrete points ((N, 2) int64 row/col), None for float32 points.
        glow: add a learned invertible linear map (LU 1x1 "convolution") before each coupling.
    """

    def __init__(self, dim: int = 2, n_couplings: int = 8, hidden: int = 64, n_hidden_layers: int = 2,
                 levels: int | None = None, glow: bool = False):
        layers = [ActNorm(dim)]
        for i in range(n_couplings):
            if glow:
                layers += [InvertibleConv1x1(dim, seed=i)]
            layers += [AffineCoupling(alternating_mask(dim, parity=i % 2), mlp(dim, 2 * dim, hidden,
                                                                                n_hidden_layers), dim)]
            if i < n_couplings - 1:
                layers += [ActNorm(dim)]
        super().__init__(FlowSequence(layers), (dim,), levels=levels)


def _coupling_block(kind, n, c, h, w, channels, n_blocks, glow, start_parity=0):
    layers = []
    for i in range(n):
        if glow:
            layers += [ActNorm(c), InvertibleConv1x1(c, seed=i)]
        parity = (start_parity + i) % 2
        mask = checkerboard_mask(h, w, parity) if kind == "checkerboard" else channel_mask(c, parity)
        layers.append(AffineCoupling(mask, conv_net(c, 2 * c, channels, n_blocks), c))
    return layers


def multiscale_bijector(c: int, h: int, w: int, n_scales: int = 2, channels: int = 64, n_blocks: int = 2,
                        glow: bool = False) -> FlowSequence:
    """RealNVP multiscale bijector on (B, C, H, W), shape-preserving. Each scale but the last:
    3 checkerboard couplings, squeeze, 3 channel couplings, factor out half the channels, recurse,
    unsqueeze. The last scale: 4 checkerboard couplings."""
    if n_scales <= 1 or h % 2 or w % 2:
        return FlowSequence(_coupling_block("checkerboard", 4, c, h, w, channels, n_blocks, glow))
    layers = _coupling_block("checkerboard", 3, c, h, w, channels, n_blocks, glow)
    layers.append(Squeeze())
    layers += _coupling_block("channel", 3, 4 * c, h // 2, w // 2, channels, n_blocks, glow)
    inner = multiscale_bijector(2 * c, h // 2, w // 2, n_scales - 1, channels, n_blocks, glow)
    layers += [FactorOut(inner, 2 * c), Unsqueeze()]
    return FlowSequence(layers)


class RealNVPImage(Flow):
    """ActNorm, then a multiscale RealNVP on images NHWC with ``levels`` values (uint8), reporting the bound on the
    discrete NLL (scaled to [0, 1] by 1/levels, logit with ``logit_alpha``, all log-dets counted).

    Args:
        shape: (H, W, C) of one image. levels: number of pixel values (e.g. 17 for digits).
        n_scales: multiscale levels (each halves H and W). channels / n_blocks: coupling ResNets.
        dequantization: ``"uniform"`` or ``"variational"`` (Flow++-style learned noise).
        glow: add ActNorm and an invertible 1x1 convolution before every coupling.
    """

    def __init__(self, shape, levels: int, n_scales: int = 2, channels: int = 64, n_blocks: int = 2,
                 dequantization: str = "uniform", glow: bool = False, logit_alpha: float = 0.05,
                 deq_couplings: int = 4, deq_channels: int = 32):
        h, w, c = (int(s) for s in shape)
        if dequantization == "variational":
            dequantization = VariationalDequantization(shape, deq_couplings, deq_channels)
        elif dequantization != "uniform":
            raise ValueError(f"dequantization must be 'uniform' or 'variational', got {dequantization!r}")
        # ActNorm first: standardises the logit-space pixels with the first batch's statistics
        bij = FlowSequence([ActNorm(c), *multiscale_bijector(c, h, w, n_scales, channels, n_blocks, glow).layers])
        super().__init__(bij, (h, w, c), levels=levels, dequantization=dequantization,
                         logit_alpha=logit_alpha)
