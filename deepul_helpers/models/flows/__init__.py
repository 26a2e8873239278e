"""Normalizing flows: reference implementations for the course (lecture 02, homework 2).

Every bijector maps data-side x to base-side z: ``forward(x) -> (z, logdet)``,
``inverse(z) -> (x, logdet)``, logdet of shape (B,). ``Flow`` wraps a bijector and a base
distribution into a likelihood model (``log_prob``, ``loss`` in nats/dim, ``sample``,
``forward_layers``, ``encode``/``decode``); discrete data report the bound on the discrete NLL.

Models: ``CDFFlow1d``, ``CDFFlow2d``, ``MAF``, ``IAF``, ``RealNVP`` (points), ``RealNVPImage``,
``SplineFlow`` (rational-quadratic spline couplings, points).
"""

from .autoregressive import IAF, MAF, IAFLayer, MADEConditioner, MAFLayer, MaskedLinear
from .bijectors import Bijector, ElementwiseAffine, FlowSequence, Logit, Reshape, Reverse, Sigmoid
from .cdf import AutoregressiveCDF2d, CDFFlow1d, CDFFlow2d, MixtureCDF
from .coupling import AffineCoupling, alternating_mask, channel_mask, checkerboard_mask, conv_net, mlp
from .dequantization import UniformDequantization, VariationalDequantization
from .flow import Flow
from .glow import ActNorm, InvertibleConv1x1
from .multiscale import FactorOut, Squeeze, Unsqueeze
from .realnvp import RealNVP, RealNVPImage, multiscale_bijector
from .spline import SplineCoupling, SplineFlow, rq_spline

__all__ = [
    "AffineCoupling", "ActNorm", "AutoregressiveCDF2d", "Bijector", "CDFFlow1d", "CDFFlow2d",
    "ElementwiseAffine", "FactorOut", "Flow", "FlowSequence", "IAF", "IAFLayer", "InvertibleConv1x1",
    "Logit", "MADEConditioner", "MAF", "MAFLayer", "MaskedLinear", "MixtureCDF", "RealNVP",
    "RealNVPImage", "Reshape", "Reverse", "Sigmoid", "Squeeze", "UniformDequantization", "Unsqueeze",
    "VariationalDequantization", "alternating_mask", "channel_mask", "checkerboard_mask", "conv_net",
    "mlp", "multiscale_bijector", "SplineCoupling", "SplineFlow", "rq_spline",
]
