"""Helpers shared by every model family: where a model lives, and the checks on a batch.

- ``model_device(module)``: the device of a module (its first parameter, else its first buffer,
  else the CPU). The one way to ask where a model is.
- ``check_shape(x, shape, what)``: a batch of examples of shape ``shape``, or a clear error.
- ``check_levels(x, levels, what)``: integer levels in ``0..levels-1`` (as int64), or a clear error.

``what`` names the caller in the message (e.g. ``"MADE.loss"``), so the error says which call
got the wrong batch.
"""

from __future__ import annotations

import torch


def model_device(module: torch.nn.Module) -> torch.device:
    """The device of the module's first parameter, else of its first buffer, else the CPU."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def check_levels(x: torch.Tensor, levels: int, what: str) -> torch.Tensor:
    """``x`` as int64 after checking it holds integers in ``0..levels-1``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch tensor of integer levels, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex():
        raise TypeError(
            f"{what}: expected integer levels (uint8/int64) as the data set stores them, got {x.dtype}; "
            "pass the batch unchanged, the model does its own conversion"
        )
    x = x.long()
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= levels):
        raise ValueError(
            f"{what}: values must lie in 0..{levels - 1} (levels={levels}), "
            f"got min {int(x.min())}, max {int(x.max())}"
        )
    return x


def check_shape(x: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    """Raise a clear error unless ``x`` is a batch of examples of shape ``shape``."""
    shape = tuple(shape)
    if tuple(x.shape[1:]) != shape or x.dim() != len(shape) + 1:
        raise ValueError(f"{what}: expected a batch of shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}; "
                         "build the model with the data set's shape")


def categorical_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) log p(x) in nats of integer levels ``x`` (B, ...) under independent categoricals ``logits``
    (B, ..., K) given per dimension (autoregressive models: each dimension's conditional), summed over
    the dimensions."""
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, x.long().unsqueeze(-1)).squeeze(-1).reshape(x.shape[0], -1).sum(1)


class CategoricalLikelihood(torch.nn.Module):
    """``log_prob`` and ``loss`` of a model of integer levels whose ``logits(x)`` (B, ..., levels) holds,
    for every dimension of ``x``, the logits of that dimension's (conditional) distribution.

    A subclass sets ``self.levels`` and defines ``logits(x)`` and ``_check(x, what)``, which checks a
    batch as the data set stores it and returns it as int64 levels in the layout ``logits`` takes.
    """

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) log p(x) in nats: the sum over dimensions of log p(x_d | what the model conditions on)."""
        x = self._check(x, f"{type(self).__name__}.log_prob")
        return categorical_log_prob(self.logits(x), x)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """NLL in nats per dimension, averaged over the batch."""
        x = self._check(x, f"{type(self).__name__}.loss")
        return torch.nn.functional.cross_entropy(self.logits(x).reshape(-1, self.levels), x.reshape(-1))
