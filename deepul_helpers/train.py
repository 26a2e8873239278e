"""One training loop for every family: ``fit``.

Any ``torch.nn.Module`` with ``loss(batch) -> scalar tensor`` trains with ``fit``. Models
that update themselves differently (a GAN's generator and critic) pass ``step=``: the same
loop then calls ``step(model, batch, optimizer, iteration)`` instead of the default
backward-and-update, and records what it returns.

The history contract (what homework and tests rely on):
    train_losses  one value per iteration (nats/dim)
    test_losses   one value before training, then one after each epoch: epochs + 1 values
    wall_time_s   seconds spent in fit
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from deepul_helpers import config
from deepul_helpers.models._common import model_device


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class History:
    train_losses: np.ndarray
    test_losses: np.ndarray
    wall_time_s: float
    epochs: int
    iterations: int
    device: str
    quick: bool
    stopped_by_budget: bool = False
    train_extra: dict[str, np.ndarray] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "train_losses": self.train_losses.tolist(),
            "test_losses": self.test_losses.tolist(),
            "wall_time_s": self.wall_time_s,
            "epochs": self.epochs,
            "iterations": self.iterations,
            "device": self.device,
            "quick": self.quick,
            "stopped_by_budget": self.stopped_by_budget,
        }


# ----------------------------------------------------------------------------- data


def _as_tensors(data, name: str) -> tuple[torch.Tensor, ...]:
    """An array, a tensor, or a tuple of them (same first dimension) -> tuple of tensors."""
    parts = data if isinstance(data, (tuple, list)) else (data,)
    tensors = []
    for part in parts:
        if isinstance(part, np.ndarray):
            if part.dtype == np.float64:
                part = part.astype(np.float32)
            tensors.append(torch.from_numpy(np.ascontiguousarray(part)))
        elif isinstance(part, torch.Tensor):
            tensors.append(part.detach().cpu())
        else:
            raise TypeError(f"{name} must be a numpy array, a torch tensor or a tuple of them; got {type(part)}")
    n = {len(t) for t in tensors}
    if len(n) != 1:
        raise ValueError(f"{name}: the parts have different lengths {sorted(n)}")
    if n.pop() == 0:
        raise ValueError(f"{name} is empty")
    return tuple(tensors)


def _batch(tensors, idx, device):
    parts = tuple(t[idx].to(device) for t in tensors)
    return parts if len(parts) > 1 else parts[0]


def evaluate(model, data, batch_size: int = 256, device=None) -> float:
    """Mean ``model.loss`` over ``data`` (nats/dim), in batches, without gradients.

    The same evaluation ``fit`` reports as test loss; ``device`` defaults to the model's.
    """
    if device is None:
        device = model_device(model)
    return _evaluate(model, _as_tensors(data, "data"), batch_size, device)


def _evaluate(model, tensors, batch_size, device) -> float:
    model.eval()
    total, count = 0.0, 0
    n = len(tensors[0])
    with torch.no_grad():
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n))
            loss = model.loss(_batch(tensors, idx, device))
            total += _scalar(loss) * len(idx)
            count += len(idx)
    model.train()
    return total / count


# ----------------------------------------------------------------------------- optimizer


def _make_optimizer(optimizer, model, lr, weight_decay):
    if callable(optimizer):
        return optimizer(model, lr)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if optimizer is None:
        return None
    raise ValueError(f"unknown optimizer {optimizer!r}; use 'adam', 'adamw', 'sgd', None or a callable(model, lr)")


def _scalar(v) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def _default_step(model, batch, optimizer, iteration, grad_clip):
    optimizer.zero_grad(set_to_none=True)
    loss = model.loss(batch)
    value = float(loss.detach())
    if not math.isfinite(value):
        return value  # the guard in fit raises before any update
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return value


# ----------------------------------------------------------------------------- checkpoints


def _save_checkpoint(path: Path, model, optimizer, state: dict) -> None:
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if hasattr(optimizer, "state_dict") else None,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        **state,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves half a checkpoint


def _load_checkpoint(path: Path, model, optimizer) -> dict:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(payload["model"])
    if payload.get("optimizer") is not None and hasattr(optimizer, "load_state_dict"):
        optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"]["torch"])
    np.random.set_state(payload["rng"]["numpy"])
    random.setstate(payload["rng"]["python"])
    return payload


# ----------------------------------------------------------------------------- fit


def _show_progress(progress, quick) -> bool:
    if progress is not None:
        return bool(progress)
    in_kernel = "ipykernel" in sys.modules
    return (sys.stderr.isatty() or in_kernel) and not quick


def fit(
    model: torch.nn.Module,
    train_data,
    test_data=None,
    *,
    epochs: int | None = None,
    budget_s: float | None = None,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    device="auto",
    grad_clip: float | None = None,
    checkpoint: str | os.PathLike | None = None,
    quick: bool | None = None,
    progress: bool | None = None,
    optimizer="adam",
    weight_decay: float = 0.0,
    step: Callable | None = None,
    eval_batch_size: int | None = None,
    lr_schedule: str | None = None,
) -> History:
    """Train ``model`` on ``train_data``; evaluate on ``test_data`` before training and after each epoch.

    Give ``epochs``, ``budget_s`` (seconds of training), or both (whichever ends first).
    Quick mode (``config.is_quick(quick)``) caps epochs, iterations per epoch and test size.
    ``checkpoint``: a file path; saved after every epoch, and resumed from when it exists.
    ``lr_schedule="cosine"``: the learning rate decays from ``lr`` to 0 along a half cosine over
    the run, measured by whichever of ``budget_s`` (elapsed seconds) and ``epochs`` (iterations)
    is further along; ``None`` keeps ``lr`` constant.
    Returns a :class:`History`; raises :class:`TrainingDiverged` on a NaN/inf loss.

    Same seed, same data, same device -> bit-identical history, provided the model was also
    built after seeding (``config.seed_everything(seed)`` before constructing it): the seed
    given here fixes the shuffles and every random draw during training, not the model's
    initial weights.
    """
    if epochs is None and budget_s is None:
        raise ValueError("fit needs epochs=N, budget_s=SECONDS, or both")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0):
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"budget_s must be positive seconds, got {budget_s!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if lr_schedule not in (None, "cosine"):
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; use None or 'cosine'")
    if not hasattr(model, "loss") and step is None:
        raise TypeError(f"{type(model).__name__} has no loss(batch) method; fit trains models that define one")

    quick = config.is_quick(quick)
    dev = config.resolve_device(device)
    config.seed_everything(seed)
    max_epochs = epochs if epochs is not None else sys.maxsize
    iters_cap = None
    if quick:
        max_epochs = min(max_epochs, config.QUICK_MAX_EPOCHS)
        iters_cap = config.QUICK_MAX_ITERS_PER_EPOCH

    train = _as_tensors(train_data, "train_data")
    test = None
    if test_data is not None:
        test = _as_tensors(test_data, "test_data")
        if quick:
            test = tuple(t[: config.QUICK_MAX_TEST_EXAMPLES] for t in test)
    eval_bs = eval_batch_size or max(batch_size, 256)

    model.to(dev)
    model.train()
    opt = _make_optimizer(optimizer, model, lr, weight_decay)

    train_losses: list[float] = []
    test_losses: list[float] = []
    extra: dict[str, list[float]] = {}
    start_epoch, elapsed_before = 0, 0.0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        state = _load_checkpoint(ckpt, model, opt)
        if state.get("seed") != seed:
            raise ValueError(f"checkpoint {ckpt} was written with seed={state.get('seed')}, not seed={seed}; "
                             "pass the same seed or another checkpoint path")
        start_epoch = state["epoch"]
        train_losses, test_losses = list(state["train_losses"]), list(state["test_losses"])
        extra = {k: list(v) for k, v in state.get("train_extra", {}).items()}
        elapsed_before = state["elapsed_s"]
    elif test is not None:
        test_losses.append(_evaluate(model, test, eval_bs, dev))

    n = len(train[0])
    per_epoch = math.ceil(n / batch_size)
    if iters_cap is not None:
        per_epoch = min(per_epoch, iters_cap)
    t0 = time.perf_counter() - elapsed_before
    last_finite = (None, None)  # (iteration, loss)
    stopped_by_budget = False
    epoch = start_epoch
    show = _show_progress(progress, quick)
    while epoch < max_epochs and not stopped_by_budget:
        # The shuffle depends only on (seed, epoch): resuming from a checkpoint replays it exactly.
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=gen)
        bar = tqdm(range(per_epoch), desc=f"epoch {epoch + 1}", disable=not show, leave=False, mininterval=0.5)
        for b in bar:
            it = len(train_losses)
            if lr_schedule == "cosine" and hasattr(opt, "param_groups"):
                frac = (time.perf_counter() - t0) / budget_s if budget_s is not None else 0.0
                if epochs is not None:
                    frac = max(frac, it / max(max_epochs * per_epoch, 1))
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
            batch = _batch(train, perm[b * batch_size : (b + 1) * batch_size], dev)
            out = step(model, batch, opt, it) if step is not None else _default_step(model, batch, opt, it, grad_clip)
            if isinstance(out, dict):
                for k, v in out.items():
                    if k != "loss":
                        extra.setdefault(k, []).append(_scalar(v))
                out = out["loss"]
            value = _scalar(out)
            if not math.isfinite(value):
                where = (f"last finite loss was {last_finite[1]:.6g} at iteration {last_finite[0]}"
                         if last_finite[0] is not None else "no finite loss was seen")
                raise TrainingDiverged(
                    f"loss became {value} at iteration {it} (epoch {epoch + 1}); {where}. "
                    "Try a lower learning rate (lr=...), gradient clipping (grad_clip=1.0), "
                    "or look for log(0) / division by zero in the model's loss."
                )
            last_finite = (it, value)
            train_losses.append(value)
            if show and b % 10 == 0:
                bar.set_postfix(loss=f"{value:.4f}")
            if budget_s is not None and time.perf_counter() - t0 >= budget_s:
                stopped_by_budget = True
                break
        bar.close()
        epoch += 1
        if test is not None:
            test_losses.append(_evaluate(model, test, eval_bs, dev))
        if ckpt is not None:
            _save_checkpoint(ckpt, model, opt, {
                "epoch": epoch, "seed": seed, "train_losses": train_losses, "test_losses": test_losses,
                "train_extra": extra, "elapsed_s": time.perf_counter() - t0,
            })

    return History(
        train_losses=np.asarray(train_losses, dtype=np.float64),
        test_losses=np.asarray(test_losses, dtype=np.float64),
        wall_time_s=time.perf_counter() - t0,
        epochs=epoch,
        iterations=len(train_losses),
        device=str(dev),
        quick=quick,
        stopped_by_budget=stopped_by_budget,
        train_extra={k: np.asarray(v) for k, v in extra.items()},
    )
