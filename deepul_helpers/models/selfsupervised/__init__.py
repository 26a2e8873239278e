"""Self-supervised learning: reference implementations for the course (lecture 05, homework 5).

Contrastive learning as a dictionary look-up: a query must find its positive key among negatives.

- ``infonce``: ``info_nce(scores)``, ``mi_lower_bound(scores)`` (<= log N), ``InfoNCE`` (a separable
  critic for the correlated Gaussian pairs).
- ``cpc``: ``CPC`` on ``signals`` (patch encoder, GRU context, k-step predictions vs in-batch negatives).
- ``simclr``: ``nt_xent``, ``SimCLR`` (encoder + projection head, two augmented views).
- ``moco``: ``queue_info_nce``, ``momentum_update``, ``KeyQueue``, ``MoCo``.
- ``rotation``: ``RotationPrediction``, the pretext-task baseline; ``encoders``: ``ConvEncoder``,
  ``RandomEncoder`` (the untrained baseline), ``mlp``.
- ``distributed``: SimCLR's negatives gathered across processes with a differentiable gather.

Every model has ``loss(batch)`` (trained with ``train.fit``; MoCo with ``step=model.train_step``)
and ``encode(x) -> (B, F)``, the frozen representation that ``metrics.probes`` reads.
"""

from .cpc import CPC
from .encoders import ConvEncoder, RandomEncoder, mlp
from .infonce import InfoNCE, info_nce, mi_lower_bound
from .moco import KeyQueue, MoCo, momentum_update, queue_info_nce
from .rotation import RotationPrediction
from .simclr import SimCLR, nt_xent

__all__ = [
    "CPC", "ConvEncoder", "InfoNCE", "KeyQueue", "MoCo", "RandomEncoder", "RotationPrediction", "SimCLR",
    "info_nce", "mi_lower_bound", "mlp", "momentum_update", "nt_xent", "queue_info_nce",
]
