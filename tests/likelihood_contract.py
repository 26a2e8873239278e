"""The likelihood-model contract (CONTRIBUTING "Likelihood models"), checked the same way for every family.

A family's model test calls ``check_likelihood_model`` once per model:

    from likelihood_contract import check_likelihood_model
    check_likelihood_model(model, batch, levels=K, support=every_example)            # exact likelihood
    check_likelihood_model(flow, batch, levels=K, bound=True, tighter=iw_log_prob)    # a bound on the NLL

What it checks:

1. ``loss(x)`` is a finite 0-dim float tensor that backpropagates to finite gradients, and it equals
   ``-log_prob(x).mean() / D`` (D = dimensions of one example in data space): the NLL in nats per
   dimension averaged over the batch, not summed, not per example. ``log_prob`` is the caller's
   independent computation, else the model's own ``log_prob``, else the loss of one-example batches
   times D (which checks the batch averaging only). Random draws inside the model (dequantization
   noise) are replayed by seeding torch before each of the two calls.
2. ``bound=True`` (dequantized flows, VAEs): the loss averaged over ``draws`` seeded draws is at or
   above ``-tighter(x).mean() / D``, where ``tighter`` is the exact or a tighter log-likelihood (an
   importance-weighted bound, say), up to ``bound_tol`` for Monte Carlo error.
3. ``sample(n)`` is a CPU tensor with the batch's dtype and example shape, in the data's range:
   integers in ``0..levels-1`` for discrete data, finite values for continuous data; its loss is finite.
4. ``support`` (every possible example of a tiny data set, as a batch): the probabilities the model
   reports sum to 1 over it (exact models, to ``norm_tol``) or to at most 1 (bound models: each
   probability is exp(-D * loss averaged over ``draws``), up to ``bound_tol``).

Returns a dict of what it measured (the support's total probability, the loss gap of a bound), so
that a family's test can assert more where it knows more.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def dims_per_example(x: torch.Tensor) -> int:
    """Dimensions of one example in data space: 1 for a batch of scalars (N,), else prod(shape[1:])."""
    return math.prod(x.shape[1:]) if x.dim() > 1 else 1


def _seeded(fn, x, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        return fn(x)


def _per_example_log_prob(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """log p per example from the model's own ``log_prob``, else from one-example ``loss`` calls."""
    if hasattr(model, "log_prob"):
        return model.log_prob
    return lambda x: torch.stack([-model.loss(x[i:i + 1]) * dims_per_example(x) for i in range(len(x))])


def _mean_loss(model, x, draws, seed) -> float:
    return sum(float(_seeded(model.loss, x, seed + d)) for d in range(draws)) / draws


def check_likelihood_model(model: torch.nn.Module, x: torch.Tensor, *, levels: int | None = None,
                           log_prob: Callable | None = None, bound: bool = False, tighter: Callable | None = None,
                           support: torch.Tensor | None = None, draws: int = 1, n_samples: int = 16,
                           seed: int = 0, tol: float = 1e-5, norm_tol: float = 1e-4,
                           bound_tol: float = 0.02) -> dict:
    """Check ``model`` against the likelihood contract on the batch ``x`` (see the module docstring)."""
    name = type(model).__name__
    model.eval()
    d = dims_per_example(x)
    log_prob = log_prob or _per_example_log_prob(model)
    found: dict = {}

    # 1. the loss: a trainable scalar, the batch mean of the per-example NLL, per dimension
    torch.manual_seed(seed)
    loss = model.loss(x)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and loss.is_floating_point(), \
        f"{name}.loss must return a 0-dim float tensor, got {loss!r}"
    assert torch.isfinite(loss.detach()), f"{name}.loss is not finite: {float(loss.detach())}"
    trainable = [p for p in model.parameters() if p.requires_grad]
    if trainable:
        model.zero_grad(set_to_none=True)
        loss.backward()
        assert any(p.grad is not None for p in trainable), f"{name}.loss does not reach the parameters"
        assert all(torch.isfinite(p.grad).all() for p in trainable if p.grad is not None), \
            f"{name}.loss has non-finite gradients"
        model.zero_grad(set_to_none=True)
    lp = _seeded(log_prob, x, seed)
    assert lp.shape == (len(x),), f"log_prob must give one value per example, got shape {tuple(lp.shape)}"
    expected = float(-lp.double().mean() / d)
    value = float(loss.detach())
    assert abs(value - expected) <= tol * max(1.0, abs(expected)), \
        f"{name}.loss = {value:.6g}, but -log_prob.mean()/D = {expected:.6g} (D = {d})"

    # 2. a bound lies at or above the exact (or a tighter) NLL
    if bound and tighter is not None:
        reported = _mean_loss(model, x, draws, seed)
        tight = float(-_seeded(tighter, x, seed).double().mean() / d)
        found["bound_gap"] = reported - tight
        assert reported >= tight - bound_tol, \
            f"{name}.loss {reported:.6g} is below the tighter NLL {tight:.6g}: not an upper bound"

    # 3. samples in data format
    torch.manual_seed(seed)
    s = model.sample(n_samples)
    assert isinstance(s, torch.Tensor) and s.device.type == "cpu", f"{name}.sample must return a CPU tensor"
    assert tuple(s.shape) == (n_samples, *x.shape[1:]), \
        f"{name}.sample({n_samples}) has shape {tuple(s.shape)}, data examples are {tuple(x.shape[1:])}"
    assert s.dtype == x.dtype, f"{name}.sample gives {s.dtype}, the data set stores {x.dtype}"
    if levels is not None:
        assert int(s.min()) >= 0 and int(s.max()) < levels, \
            f"{name}.sample values {int(s.min())}..{int(s.max())} outside 0..{levels - 1}"
    else:
        assert torch.isfinite(s).all(), f"{name}.sample gave non-finite values"
    assert math.isfinite(float(_seeded(model.loss, s, seed))), f"{name}.loss of its own samples is not finite"

    # 4. normalisation over every possible example of a tiny data set
    if support is not None:
        if bound:
            nll = torch.stack([torch.tensor(_mean_loss(model, support[i:i + 1], draws, seed))
                               for i in range(len(support))])
            total = float(torch.exp(-nll.double() * d).sum())
            assert total <= 1 + bound_tol, f"{name}: bound probabilities sum to {total:.6g} > 1 over the support"
        else:
            total = float(_seeded(log_prob, support, seed).double().exp().sum())
            assert abs(total - 1) <= norm_tol, f"{name}: probabilities sum to {total:.6g} over the support, not 1"
        found["support_total"] = total
    return found
