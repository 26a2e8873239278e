"""MoCo: a momentum (EMA) key encoder and a FIFO queue of keys as negatives.

The query q = f_q(view 1) is contrasted against its key k+ = f_k(view 2) and the M keys of
earlier batches in the queue (all unit length):

    L = -log( exp(q . k+ / t) / (exp(q . k+ / t) + sum_{m=1..M} exp(q . k_m / t)) ),

so all-equal embeddings give log(M + 1) whatever the batch size: the queue decouples the number
of negatives from the batch. f_k gets no gradient; after each update of f_q it follows it,
theta_k <- m theta_k + (1 - m) theta_q (``momentum_update``), slowly enough that the keys in the
queue stay comparable. Train with ``fit(model, x, step=model.train_step)``: the step updates f_q,
then f_k, then pushes the batch's keys into the queue (oldest out first).

Centring (``centre=True``, the default): queries and keys are centred by a running mean of the keys
(an exponential average over batches, as DINO centres its teacher) before they are normalised. Our
small encoder has no batch normalisation, and at initialisation its outputs for different images are
nearly parallel (cosine similarity 0.999); the negatives of MoCo get no gradient, and from there the
queries collapse instead of spreading (measured on digits: the probe fell below the random encoder's).
A mean over past batches leaks nothing about the current one, unlike batch normalisation, which lets
the positive be found by its batch statistics (the reason MoCo shuffles its batch-norm).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from deepul_helpers.augment import Augment

from .encoders import ConvEncoder, mlp


def queue_info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """MoCo's loss: queries q (B, D) against their keys k (B, D) and the queue's keys (M, D)."""
    q, k, queue = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue, dim=1)
    pos = (q * k).sum(1, keepdim=True)  # (B, 1)
    logits = torch.cat([pos, q @ queue.T], dim=1) / temperature  # (B, 1 + M)
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


@torch.no_grad()
def momentum_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """theta_target <- momentum * theta_target + (1 - momentum) * theta_online, parameter by parameter."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
    for pt, po in zip(target.parameters(), online.parameters(), strict=True):
        pt.mul_(momentum).add_(po.detach(), alpha=1.0 - momentum)


class KeyQueue(nn.Module):
    """A FIFO queue of ``size`` keys (size, dim), a ring buffer: ``push`` overwrites the oldest rows."""

    def __init__(self, size: int, dim: int, seed: int = 0):
        super().__init__()
        init = torch.randn(size, dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("keys", F.normalize(init, dim=1))  # (size, dim) random until filled
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # the row of the oldest key

    @torch.no_grad()
    def push(self, k: torch.Tensor) -> None:
        size = len(self.keys)
        k = k.detach()[-size:]  # a batch larger than the queue keeps its newest rows
        rows = (self.ptr + torch.arange(len(k), device=k.device)) % size  # wraps around the end
        self.keys[rows] = k.to(self.keys.dtype)
        self.ptr.fill_(int((self.ptr + len(k)) % size))

    def in_order(self) -> torch.Tensor:
        """The keys from oldest to newest (size, dim)."""
        return torch.roll(self.keys, -int(self.ptr), dims=0)


class MoCo(nn.Module):
    """Query encoder + head, its momentum copy for keys, and a queue of ``queue_size`` keys.

    Args as ``SimCLR`` plus momentum (m), queue_size (M) and centre (see the module docstring).
    ``encode`` reads the query encoder.
    """

    def __init__(self, shape=(8, 8, 1), levels: int = 17, width: int = 64, features: int = 128,
                 projection: int = 64, temperature: float = 0.2, momentum: float = 0.99, queue_size: int = 1024,
                 augment: Augment | None = None, seed: int = 0, centre: bool = True):
        super().__init__()
        self.encoder = ConvEncoder(shape, levels, width, features)
        self.head = mlp(features, projection, features)
        self.key_encoder, self.key_head = copy.deepcopy(self.encoder), copy.deepcopy(self.head)
        self.key_encoder.requires_grad_(False)
        self.key_head.requires_grad_(False)
        self.queue = KeyQueue(queue_size, projection, seed)
        self.temperature, self.momentum, self.centre = temperature, momentum, centre
        self.register_buffer("key_mean", torch.zeros(projection))  # running mean of the keys (centring)
        self.augment = augment if augment is not None else Augment()
        self.gen = torch.Generator().manual_seed(seed)

    def loss_and_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.encoder.to_views(x)
        v1, v2 = self.augment(u, self.gen), self.augment(u, self.gen)
        q = self.head(self.encoder(v1)) - self.key_mean  # (B, projection)
        with torch.no_grad():
            raw = self.key_head(self.key_encoder(v2))  # (B, projection), no gradient
            k = F.normalize(raw - self.key_mean, dim=1)
        self._raw_key_mean = raw.mean(0)
        return queue_info_nce(q, k, self.queue.keys, self.temperature), k

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss_and_keys(x)[0]

    def train_step(self, model, batch, optimizer, iteration):
        """``fit(..., step=model.train_step)``: update f_q, then f_k by momentum, then the queue."""
        optimizer.zero_grad(set_to_none=True)
        loss, k = self.loss_and_keys(batch)
        loss.backward()
        optimizer.step()
        momentum_update(self.key_encoder, self.encoder, self.momentum)
        momentum_update(self.key_head, self.head, self.momentum)
        self.queue.push(k)
        if self.centre:
            self.key_mean.mul_(0.9).add_(self._raw_key_mean, alpha=0.1)
        return loss.detach()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(x)
