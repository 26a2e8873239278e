"""One training loop for every family: ``fit``.

Any ``torch.nn.Module`` with ``loss(batch) -> scalar tensor`` trains with ``fit``. Models
that update themselves differently (a GAN's generator and critic) pass ``step=``: the same
loop then calls ``step(model, batch, optimizer, iteration)`` instead of the default
backward-and-update, and records what it returns.

The history contract (what homework and tests rely on):
    train_losses  one value per iteration (nats/dim)
    test_losses   one value before training, then one after each epoch: epochs + 1 values
    val_losses    the same on the validation split carved from the training data (empty without one)
    best_epoch    the epoch whose parameters the model holds at the end (validation: the lowest
                  validation loss; None without a validation split)
    wall_time_s   seconds spent in fit; cpu_time_s the CPU seconds of this process meanwhile
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
    val_losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    best_epoch: int | None = None
    cpu_time_s: float = 0.0

    def as_dict(self) -> dict:
        return {
            "train_losses": self.train_losses.tolist(),
            "test_losses": self.test_losses.tolist(),
            "val_losses": self.val_losses.tolist(),
            "best_epoch": self.best_epoch,
            "wall_time_s": self.wall_time_s,
            "cpu_time_s": self.cpu_time_s,
            "epochs": self.epochs,
            "iterations": self.iterations,
            "device": self.device,
            "quick": self.quick,
            "stopped_by_budget": self.stopped_by_budget,
            "train_extra": {k: np.asarray(v).tolist() for k, v in self.train_extra.items()},
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


def split_validation(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices) of ``n`` training examples: a seeded random
    ``val_fraction`` of them (at least one) is held out; the split depends only on (n, fraction, seed)."""
    n_val = max(1, round(val_fraction * n))
    if n_val >= n:
        raise ValueError(f"val_fraction={val_fraction} of {n} training examples leaves none to train on")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + 999_983))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def _prepare_data(train_data, test_data, val_fraction, seed, quick):
    """-> (train, val or None, test or None) as tuples of tensors; quick mode caps val and test."""
    train = _as_tensors(train_data, "train_data")
    val = None
    if val_fraction:
        keep, held = split_validation(len(train[0]), val_fraction, seed)
        train, val = tuple(t[keep] for t in train), tuple(t[held] for t in train)
    test = _as_tensors(test_data, "test_data") if test_data is not None else None
    cap = config.QUICK_MAX_TEST_EXAMPLES if quick else None
    return train, *(None if s is None else tuple(t[:cap] for t in s) for s in (val, test))


def _batch(tensors, idx, device):
    parts = tuple(t[idx].to(device) for t in tensors)
    return parts if len(parts) > 1 else parts[0]


def _batches(n: int, per_epoch: int, batch_size: int, seed: int, epoch: int):
    """Index tensors of one epoch's batches. The shuffle depends only on (seed, epoch): resuming
    from a checkpoint replays it exactly."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return [perm[b * batch_size : (b + 1) * batch_size] for b in range(per_epoch)]


def evaluate(model, data, batch_size: int = 256, device=None) -> float:
    """Mean ``model.loss`` over ``data`` (nats/dim), in batches, without gradients.

    The same evaluation ``fit`` reports as test loss; ``device`` defaults to the model's.
    """
    return _evaluate(model, _as_tensors(data, "data"), batch_size, device or model_device(model))


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


# ----------------------------------------------------------------------------- arguments, optimizer, schedule


def _check_arguments(model, epochs, budget_s, budget_clock, batch_size, lr_schedule, val_fraction, step) -> None:
    if epochs is None and budget_s is None:
        raise ValueError("fit needs epochs=N, budget_s=SECONDS, or both")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0):
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"budget_s must be positive seconds, got {budget_s!r}")
    if budget_clock not in ("wall", "cpu"):
        raise ValueError(f"unknown budget_clock {budget_clock!r}; use 'wall' (elapsed) or 'cpu' (this process's CPU)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if lr_schedule not in (None, "cosine"):
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; use None or 'cosine'")
    if isinstance(val_fraction, bool) or not (isinstance(val_fraction, (int, float)) and 0 <= val_fraction < 1):
        raise ValueError(f"val_fraction must be a number in [0, 1) (0: no validation split), got {val_fraction!r}")
    if not hasattr(model, "loss") and step is None:
        raise TypeError(f"{type(model).__name__} has no loss(batch) method; fit trains models that define one")


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


def _set_lr(opt, lr_schedule, frac: float) -> None:
    """Cosine: each parameter group's learning rate falls from its own starting value (``initial_lr``,
    kept in the group and so in a checkpoint) to 0 along a half cosine as ``frac`` goes 0 -> 1; groups
    that start at different rates (a GAN's generator and discriminator) keep their ratio."""
    if lr_schedule == "cosine" and hasattr(opt, "param_groups"):
        for group in opt.param_groups:
            start = group.setdefault("initial_lr", group["lr"])
            group["lr"] = start * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))


class _Clock:
    """Seconds since the start of training (wall and CPU), carried over a resume, and the budget."""

    def __init__(self, budget_s, budget_clock, wall_before=0.0, cpu_before=0.0):
        self.budget_s, self.budget_clock = budget_s, budget_clock
        self.wall0, self.cpu0 = time.perf_counter() - wall_before, time.process_time() - cpu_before

    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    def cpu(self) -> float:
        return time.process_time() - self.cpu0

    def budget_fraction(self) -> float:
        if self.budget_s is None:
            return 0.0
        return (self.cpu() if self.budget_clock == "cpu" else self.wall()) / self.budget_s

    def out_of_budget(self) -> bool:
        return self.budget_fraction() >= 1.0


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


# ----------------------------------------------------------------------------- what a run records


class _Record:
    """Losses per step and per epoch, extra values a ``step`` returns, and the best parameters so far."""

    def __init__(self):
        self.epoch = 0
        self.train_losses: list[float] = []
        self.test_losses: list[float] = []
        self.val_losses: list[float] = []
        self.extra: dict[str, list[float]] = {}
        self.best_epoch: int | None = None
        self.best_state: dict | None = None

    def step(self, out, it: int, epoch: int) -> float:
        """Record what one update returned (a loss, or a dict with "loss"); raise on a NaN/inf loss."""
        if isinstance(out, dict):
            for k, v in out.items():
                if k != "loss":
                    self.extra.setdefault(k, []).append(_scalar(v))
            out = out["loss"]
        value = _scalar(out)
        if not math.isfinite(value):
            where = (f"last finite loss was {self.train_losses[-1]:.6g} at iteration {it - 1}"
                     if self.train_losses else "no finite loss was seen")
            raise TrainingDiverged(
                f"loss became {value} at iteration {it} (epoch {epoch + 1}); {where}. "
                "Try a lower learning rate (lr=...), gradient clipping (grad_clip=1.0), "
                "or look for log(0) / division by zero in the model's loss."
            )
        self.train_losses.append(value)
        return value

    def end_epoch(self, model, epoch: int, test, val, eval_bs: int, dev) -> None:
        """Evaluate on the test and validation splits; keep the parameters with the lowest validation loss."""
        self.epoch = epoch
        if test is not None:
            self.test_losses.append(_evaluate(model, test, eval_bs, dev))
        if val is not None:
            self.val_losses.append(_evaluate(model, val, eval_bs, dev))
            if self.best_epoch is None or self.val_losses[-1] < self.val_losses[self.best_epoch]:
                self.best_epoch = epoch
                self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def state(self) -> dict:
        return {k: getattr(self, k) for k in ("epoch", "train_losses", "test_losses", "val_losses", "extra",
                                              "best_epoch", "best_state")}


# ----------------------------------------------------------------------------- checkpoints


def _save_checkpoint(path: Path, model, optimizer, seed, record: _Record, clock: _Clock) -> None:
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if hasattr(optimizer, "state_dict") else None,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "seed": seed, "record": record.state(), "elapsed_s": clock.wall(), "cpu_s": clock.cpu(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves half a checkpoint


def _resume(path: Path, model, optimizer, seed, record: _Record) -> tuple[float, float]:
    """Restore model, optimizer, random states and ``record`` from ``path``; -> (wall, CPU) seconds so far."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if "record" not in payload:
        raise ValueError(f"checkpoint {path} was written by an older version of fit and cannot be resumed; "
                         "delete it (or pass another checkpoint path) to train from the start")
    if payload.get("seed") != seed:
        raise ValueError(f"checkpoint {path} was written with seed={payload.get('seed')}, not seed={seed}; "
                         "pass the same seed or another checkpoint path")
    model.load_state_dict(payload["model"])
    if payload.get("optimizer") is not None and hasattr(optimizer, "load_state_dict"):
        optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"]["torch"])
    np.random.set_state(payload["rng"]["numpy"])
    random.setstate(payload["rng"]["python"])
    record.__dict__.update(payload["record"])
    return payload["elapsed_s"], payload.get("cpu_s", 0.0)


def _show_progress(progress, quick) -> bool:
    if progress is not None:
        return bool(progress)
    in_kernel = "ipykernel" in sys.modules
    return (sys.stderr.isatty() or in_kernel) and not quick


# ----------------------------------------------------------------------------- fit


def fit(
    model: torch.nn.Module,
    train_data,
    test_data=None,
    *,
    epochs: int | None = None,
    budget_s: float | None = None,
    budget_clock: str = "wall",
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
    val_fraction: float = 0.0,
    keep_best: bool = True,
) -> History:
    """Train ``model`` on ``train_data``; evaluate on ``test_data`` before training and after each epoch.

    ``epochs``: passes over the training data; ``budget_s``: seconds of training measured by
    ``budget_clock`` (``"wall"``: elapsed time; ``"cpu"``: this process's CPU time, for a
    same-budget comparison that a loaded machine disturbs less); give either or both (whichever
    ends first). A figure of quality should come from ``epochs`` (the same on any machine).
    ``val_fraction``: hold out this seeded share of ``train_data`` (``split_validation``; the same
    examples for the same seed) as a validation split, evaluated before training and after each
    epoch; with ``keep_best`` (the default) the model ends with the parameters of the epoch with
    the lowest validation loss (``History.best_epoch``), so that a long run cannot overfit the figure.
    Quick mode (``config.is_quick(quick)``) caps epochs, iterations per epoch, validation and test size.
    PyTorch's threads are set by ``config.use_threads()`` (one unless ``DEEPUL_THREADS`` says otherwise).
    ``checkpoint``: a file path; saved after every epoch, and resumed from when it exists.
    ``lr_schedule="cosine"``: the learning rate decays from ``lr`` to 0 along a half cosine over
    the run, measured by whichever of ``budget_s`` and ``epochs`` (iterations) is further along;
    ``None`` keeps ``lr`` constant. ``grad_clip``: clip the gradient norm; ``optimizer``: "adam",
    "adamw", "sgd", None or ``callable(model, lr)``; ``step(model, batch, optimizer, iteration)``:
    a custom update returning the loss or a dict with "loss" (other keys go to ``train_extra``).
    Returns a :class:`History`; raises :class:`TrainingDiverged` on a NaN/inf loss.

    Same seed, same data, same device -> bit-identical history, provided the model was also
    built after seeding (``config.seed_everything(seed)`` before constructing it): the seed
    given here fixes the validation split, the shuffles and every random draw during training,
    not the model's initial weights.
    """
    _check_arguments(model, epochs, budget_s, budget_clock, batch_size, lr_schedule, val_fraction, step)
    quick, dev = config.is_quick(quick), config.resolve_device(device)
    config.seed_everything(seed)
    config.use_threads()
    train, val, test = _prepare_data(train_data, test_data, val_fraction, seed, quick)
    max_epochs = min(sys.maxsize if epochs is None else epochs, config.QUICK_MAX_EPOCHS if quick else sys.maxsize)
    n, eval_bs = len(train[0]), eval_batch_size or max(batch_size, 256)
    per_epoch = min(math.ceil(n / batch_size), config.QUICK_MAX_ITERS_PER_EPOCH if quick else sys.maxsize)
    model.to(dev).train()
    opt = _make_optimizer(optimizer, model, lr, weight_decay)
    record, ckpt = _Record(), Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        clock = _Clock(budget_s, budget_clock, *_resume(ckpt, model, opt, seed, record))
    else:
        record.end_epoch(model, 0, test, val, eval_bs, dev)  # the losses before training
        clock = _Clock(budget_s, budget_clock)
    update = step or (lambda m, b, o, i: _default_step(m, b, o, i, grad_clip))
    show, stopped_by_budget = _show_progress(progress, quick), False
    while record.epoch < max_epochs and not stopped_by_budget:
        bar = tqdm(_batches(n, per_epoch, batch_size, seed, record.epoch), desc=f"epoch {record.epoch + 1}",
                   disable=not show, leave=False, mininterval=0.5)
        for idx in bar:
            it = len(record.train_losses)
            frac = clock.budget_fraction() if epochs is None else max(clock.budget_fraction(),
                                                                      it / max(max_epochs * per_epoch, 1))
            _set_lr(opt, lr_schedule, frac)
            value = record.step(update(model, _batch(train, idx, dev), opt, it), it, record.epoch)
            if show and it % 10 == 0:
                bar.set_postfix(loss=f"{value:.4f}")
            if clock.out_of_budget():
                stopped_by_budget = True
                break
        bar.close()
        record.end_epoch(model, record.epoch + 1, test, val, eval_bs, dev)
        if ckpt is not None:
            _save_checkpoint(ckpt, model, opt, seed, record, clock)
    if keep_best and record.best_state is not None:
        model.load_state_dict(record.best_state)
    return History(
        train_losses=np.asarray(record.train_losses, dtype=np.float64),
        test_losses=np.asarray(record.test_losses, dtype=np.float64),
        wall_time_s=clock.wall(), epochs=record.epoch, iterations=len(record.train_losses), device=str(dev),
        quick=quick, stopped_by_budget=stopped_by_budget,
        train_extra={k: np.asarray(v) for k, v in record.extra.items()},
        val_losses=np.asarray(record.val_losses, dtype=np.float64),
        best_epoch=record.best_epoch if keep_best else None, cpu_time_s=clock.cpu(),
    )
