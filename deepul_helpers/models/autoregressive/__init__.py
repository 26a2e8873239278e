"""Autoregressive reference models: p(x) = prod_i p(x_i | x_<i).

Every model is a ``torch.nn.Module`` with the course's likelihood interface
(see CONTRIBUTING.md): ``loss(x)`` is the negative log-likelihood of a batch in
nats per dimension (``x`` exactly as the data set stores it), and ``sample(n)``
returns a CPU tensor in data format (same dtype, shape and value range).

| data                         | models                                                    |
|------------------------------|-----------------------------------------------------------|
| 1D, ``(N,)`` int64           | :class:`Histogram`, :class:`DiscretizedLogisticMixture`   |
| 2D discrete ``(N, 2)`` int64 | :class:`MADE`                                             |
| images NHWC uint8            | :class:`MADE`, :class:`PixelCNN`, :class:`GatedPixelCNN`, :class:`ImageTransformer` |
| text ``(N, T)`` int64        | :class:`CharTransformer`                                  |
| signals ``(N, T)`` int64     | :class:`WaveNet`                                          |
"""

from deepul_helpers.models.autoregressive.gated_pixelcnn import GatedPixelCNN
from deepul_helpers.models.autoregressive.histogram import Histogram
from deepul_helpers.models.autoregressive.logistic_mixture import (
    DiscretizedLogisticMixture,
    discretized_logistic_mixture_log_probs,
)
from deepul_helpers.models.autoregressive.made import MADE, made_degrees, made_masks
from deepul_helpers.models.autoregressive.parallel_pixelcnn import ParallelPixelCNN, multiscale_steps
from deepul_helpers.models.autoregressive.pixelcnn import MaskedConv2d, PixelCNN, pixelcnn_mask
from deepul_helpers.models.autoregressive.transformer import CharTransformer, ImageTransformer, Transformer
from deepul_helpers.models.autoregressive.wavenet import WaveNet

__all__ = [
    "CharTransformer",
    "DiscretizedLogisticMixture",
    "GatedPixelCNN",
    "Histogram",
    "ImageTransformer",
    "MADE",
    "MaskedConv2d",
    "ParallelPixelCNN",
    "PixelCNN",
    "Transformer",
    "WaveNet",
    "discretized_logistic_mixture_log_probs",
    "made_degrees",
    "made_masks",
    "multiscale_steps",
    "pixelcnn_mask",
]
