"""Small helpers shared by the autoregressive models (input checks, device look-up)."""

from __future__ import annotations

import torch


def model_device(module: torch.nn.Module) -> torch.device:
    """The device of the module's first parameter (CPU for a module without parameters)."""
    for p in module.parameters():
        return p.device
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
    if tuple(x.shape[1:]) != tuple(shape) or x.dim() != len(shape) + 1:
        raise ValueError(f"{what}: expected a batch of shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
