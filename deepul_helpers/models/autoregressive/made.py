"""MADE: a masked MLP whose output i sees only the inputs before i in an ordering.

Germain et al. (2015). Every input variable d gets a degree (its 1-based position
in the ordering), every hidden unit a degree in 1..D-1. A hidden unit of degree m
sees the units of the layer below with degree <= m; output d sees the last hidden
layer's units with degree < degree(d). Discrete variables with K levels enter
one-hot (D*K input features) and leave as D softmaxes over K levels.

Several masks ("connectivity-agnostic" training): with ``n_orderings > 1`` each
training step uses the next mask set (ordering + hidden degrees) in turn, and the
model's likelihood is the ensemble mean of the *probabilities* of all mask sets,
log (1/S) sum_s p_s(x), which is itself a normalised distribution (a mixture).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from deepul_helpers.models._common import categorical_log_prob, check_levels, check_shape, model_device


def made_degrees(ordering, hidden, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Degrees of the input variables and of each hidden layer.

    ordering: permutation of ``range(D)``; ``ordering[i]`` is the variable generated i-th,
              so variable ``ordering[i]`` gets degree i+1.
    hidden:   sizes of the hidden layers.
    rng:      None -> hidden degrees cycle deterministically through 1..D-1;
              a numpy Generator -> drawn uniformly from [min degree below, D-1].
    Returns ``[input (D,), hidden_1 (H1,), ...]`` int64 arrays.
    """
    ordering = np.asarray(ordering, dtype=np.int64)
    d = len(ordering)
    if d < 1 or sorted(ordering.tolist()) != list(range(d)):
        raise ValueError(f"ordering must be a permutation of range(D), got {ordering.tolist()}")
    degrees = [np.empty(d, dtype=np.int64)]
    degrees[0][ordering] = np.arange(1, d + 1)
    for h in hidden:
        if d == 1:  # nothing to condition on: hidden units see no input
            degrees.append(np.zeros(int(h), dtype=np.int64))
        elif rng is None:
            degrees.append(np.arange(int(h), dtype=np.int64) % (d - 1) + 1)
        else:
            low = min(int(degrees[-1].min()), d - 1)
            degrees.append(rng.integers(max(low, 1), d, size=int(h)).astype(np.int64))
    return degrees


def made_masks(degrees: list[np.ndarray], levels: int = 1) -> list[torch.Tensor]:
    """Masks ``(out_features, in_features)`` of every linear layer, from ``made_degrees``.

    Inputs and outputs hold ``levels`` features per variable, variable-major
    (feature ``d * levels + k`` is level k of variable d). ``levels=1`` gives the
    plain binary MADE. Returns float32 tensors of 0/1: hidden layers first, output last.
    """
    levels = int(levels)
    masks = []
    below = np.repeat(degrees[0], levels)  # input features
    for deg in degrees[1:]:
        masks.append(torch.from_numpy((deg[:, None] >= below[None, :]).astype(np.float32)))
        below = deg
    out = np.repeat(degrees[0], levels)
    masks.append(torch.from_numpy((out[:, None] > below[None, :]).astype(np.float32)))
    return masks


class MaskedLinear(nn.Linear):
    """nn.Linear whose weight is multiplied by a 0/1 mask ``(out_features, in_features)`` given per call."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * mask, self.bias)


class MADE(nn.Module):
    """MADE over ``input_dim`` discrete variables with ``levels`` values each.

    input_dim:   number of variables D, or the shape of one example, e.g. ``2`` for
                 2D discrete points, ``(20, 20, 1)`` for NHWC images (flattened in
                 raster order H, W, C). A 3-tuple is treated as an image: ``sample``
                 returns uint8 in that shape; otherwise int64 ``(n, D)``.
    levels:      values per variable (2 for binary images, the grid size for 2D densities).
    hidden:      hidden layer sizes.
    n_orderings: number of mask sets (orderings + hidden degrees). Set 0 uses ``ordering``
                 (default: natural order) with deterministic hidden degrees; the others
                 draw a random ordering and degrees from ``seed``.
    ordering:    permutation of range(D) for mask set 0 (``ordering[i]`` is generated i-th).

    ``loss(x)``: NLL in nats/dim; in training mode it uses the current mask set and
    then moves to the next; in eval mode the ensemble mean of probabilities.
    ``log_prob(x)``: (B,) ensemble log-likelihood in nats. ``sample(n)``: exact draws
    from the ensemble (a mask set per sample, then D passes in its ordering).
    """

    def __init__(self, input_dim, levels: int, hidden=(512, 512), n_orderings: int = 1, seed: int = 0,
                 ordering=None):
        super().__init__()
        shape = (int(input_dim),) if np.ndim(input_dim) == 0 else tuple(int(s) for s in input_dim)
        self.data_shape = shape
        self.input_dim = d = int(np.prod(shape))
        self.levels = k = int(levels)
        if d < 1 or k < 2:
            raise ValueError(f"MADE needs input_dim >= 1 and levels >= 2, got {input_dim}, {levels}")
        if int(n_orderings) < 1:
            raise ValueError(f"n_orderings must be at least 1, got {n_orderings}")
        self.hidden = tuple(int(h) for h in hidden)
        sizes = [d * k, *self.hidden, d * k]
        self.layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        rng = np.random.default_rng(seed)
        orderings, all_masks = [], []
        for s in range(int(n_orderings)):
            if s == 0:
                order = np.arange(d) if ordering is None else np.asarray(ordering, dtype=np.int64)
                degrees = made_degrees(order, self.hidden, rng=None)
            else:
                order = rng.permutation(d)
                degrees = made_degrees(order, self.hidden, rng=rng)
            orderings.append(torch.as_tensor(order, dtype=torch.long))
            all_masks.append(made_masks(degrees, k))
        # (S, D) orderings; per layer (S, out, in) masks, all buffers (saved, moved with .to()).
        self.register_buffer("orderings", torch.stack(orderings))
        for i in range(len(self.layers)):
            self.register_buffer(f"masks_{i}", torch.stack([m[i] for m in all_masks]))
        self.n_orderings = int(n_orderings)
        self.set_mask(0)
        self._next_mask = 0

    def set_mask(self, s: int) -> None:
        """Use mask set ``s`` in ``forward`` (the masks themselves are never modified)."""
        if not 0 <= int(s) < self.n_orderings:
            raise ValueError(f"mask set must be in 0..{self.n_orderings - 1}, got {s}")
        self.current_mask = int(s)

    def masks(self, s: int | None = None) -> list[torch.Tensor]:
        """The 0/1 masks ``(out, in)`` of every layer for mask set ``s`` (default: the current one)."""
        s = self.current_mask if s is None else int(s)
        return [getattr(self, f"masks_{i}")[s] for i in range(len(self.layers))]

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        """(B, D, K) float one-hot input -> (B, D, K) logits under the current mask set.

        Takes the one-hot encoding (not the levels) so gradients can reach the input.
        """
        masks = self.masks()
        h = onehot.reshape(onehot.shape[0], -1)  # (B, D*K)
        for layer, mask in zip(self.layers[:-1], masks):
            h = F.relu(layer(h, mask))  # (B, H)
        return self.layers[-1](h, masks[-1]).reshape(onehot.shape[0], self.input_dim, self.levels)  # (B, D, K)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) int64 levels -> (B, D, K) logits of p(x_d | x before d) under the current mask set."""
        return self(F.one_hot(x, self.levels).float())

    def _flat(self, x: torch.Tensor, what: str) -> torch.Tensor:
        check_shape(x, self.data_shape, what)
        return check_levels(x, self.levels, what).reshape(x.shape[0], self.input_dim)  # (B, D)

    def _log_prob_mask(self, x: torch.Tensor, s: int) -> torch.Tensor:
        self.set_mask(s)
        return categorical_log_prob(self.logits(x), x)  # (B,) from (B, D, K) logits

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) log p(x) in nats: log of the mean over mask sets of p_s(x)."""
        x = self._flat(x, "MADE.log_prob")
        per_mask = torch.stack([self._log_prob_mask(x, s) for s in range(self.n_orderings)])  # (S, B)
        return torch.logsumexp(per_mask, 0) - math.log(self.n_orderings)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.n_orderings > 1:
            x = self._flat(x, "MADE.loss")
            s = self._next_mask
            self._next_mask = (s + 1) % self.n_orderings
            return -self._log_prob_mask(x, s).mean() / self.input_dim
        return -self.log_prob(x).mean() / self.input_dim

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n, dev = int(n), model_device(self)
        which = torch.randint(self.n_orderings, (n,), generator=generator)  # mask set per sample
        x = torch.zeros(n, self.input_dim, dtype=torch.long)
        for s in range(self.n_orderings):
            rows = (which == s).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            self.set_mask(s)
            xs = torch.zeros(len(rows), self.input_dim, dtype=torch.long, device=dev)
            for d in self.orderings[s].tolist():
                probs = F.softmax(self.logits(xs)[:, d], dim=-1).cpu()  # (b, K)
                xs[:, d] = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(dev)
            x[rows] = xs.cpu()
        dtype = torch.uint8 if len(self.data_shape) == 3 else torch.long
        return x.reshape(n, *self.data_shape).to(dtype)
