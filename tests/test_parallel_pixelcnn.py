"""The parallel multiscale PixelCNN: the factorisation it claims (by gradients), normalisation by
enumeration, samples from its own likelihood, and O(log n) network passes per sample (counted)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from likelihood_contract import check_likelihood_model

from deepul_helpers.models.autoregressive import ParallelPixelCNN, multiscale_steps


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def every_image(h, w, levels):
    grid = torch.tensor(list(itertools.product(range(levels), repeat=h * w)), dtype=torch.uint8)
    return grid.reshape(-1, h, w, 1)


def test_steps_are_the_multiscale_groups():
    steps = multiscale_steps(8, 8)
    assert steps[0, 0] == 0 and (steps == 0).sum() == 1
    assert sorted(torch.unique(steps).tolist()) == list(range(10))  # 1 + 3 * log2(8) steps
    for level, stride in enumerate((4, 2, 1)):  # before each level exactly the grid of twice its stride is known
        first = 1 + 3 * level
        known = steps < first
        grid = torch.zeros(8, 8, dtype=torch.bool)
        grid[:: 2 * stride, :: 2 * stride] = True
        assert torch.equal(known, grid)
        new = (steps >= first) & (steps < first + 3)
        finer = torch.zeros(8, 8, dtype=torch.bool)
        finer[::stride, ::stride] = True
        assert torch.equal(new, finer & ~grid)
        assert steps[stride, stride] == first  # the (odd, odd) group comes first
    assert multiscale_steps(1, 1).tolist() == [[0]]


@pytest.mark.parametrize("shape", [(8, 8, 1), (5, 7, 2)])
def test_each_output_depends_exactly_on_earlier_steps(shape):
    """Gradient of pixel i's logits w.r.t. the input: zero at every pixel of step >= step(i),
    non-zero at every pixel of an earlier step (the whole coarser context is seen)."""
    model = ParallelPixelCNN(shape, levels=4, n_filters=16, n_layers=6).double()
    h, w, _ = shape
    z = (torch.rand(1, *shape, dtype=torch.double) * 2 - 1).requires_grad_(True)
    logits = model(z)
    for i, j in itertools.product(range(h), range(w)):
        (g,) = torch.autograd.grad(logits[0, i, j].sum(), z, retain_graph=True)
        reach = g[0].abs().sum(-1) > 0  # (H, W) input pixels the output at (i, j) depends on
        assert torch.equal(reach, model.steps < model.steps[i, j]), f"pixel {(i, j)} sees the wrong inputs"


@pytest.mark.parametrize("h,w,levels", [(2, 2, 3), (2, 3, 2), (3, 3, 2)])
def test_normalised_over_every_image_and_contract(h, w, levels):
    model = ParallelPixelCNN((h, w, 1), levels, n_filters=8, n_layers=2)
    support = every_image(h, w, levels)
    found = check_likelihood_model(model, support[torch.randperm(len(support))[:16]], levels=levels,
                                   support=support)
    assert abs(found["support_total"] - 1) < 1e-4


def test_samples_follow_the_models_likelihood():
    model = ParallelPixelCNN((2, 2, 1), 2, n_filters=8, n_layers=2)
    support = every_image(2, 2, 2)
    with torch.no_grad():
        p = model.log_prob(support).exp()
    n = 20_000
    s = model.sample(n, generator=torch.Generator().manual_seed(1)).reshape(n, -1).long()
    counts = torch.bincount((s * torch.tensor([8, 4, 2, 1])).sum(1), minlength=16).double() / n
    code = (support.reshape(16, -1).long() * torch.tensor([8, 4, 2, 1])).sum(1)
    tv = 0.5 * (counts[code] - p.double()).abs().sum()
    assert tv < 0.03, f"samples differ from exp(log_prob) by TV {tv:.3f}"


@pytest.mark.parametrize("side", [8, 20])
def test_sampling_passes_are_logarithmic(side):
    """Count the network's passes during sample(n): 1 + 3 ceil(log2 side), not side^2."""
    model = ParallelPixelCNN((side, side, 1), 4, n_filters=8, n_layers=2)
    calls = []
    hook = model.first.register_forward_hook(lambda *_: calls.append(1))
    model.sample(3)
    hook.remove()
    expected = 1 + 3 * math.ceil(math.log2(side))
    assert len(calls) == model.passes == model.passes_per_sample == expected
    assert len(calls) <= 1 + 1.5 * math.log2(side * side) + 3  # O(log n); n = side^2 pixels
    assert len(calls) < side * side / 4  # far below a PixelCNN's n passes


def test_wrong_input_says_what_to_do():
    model = ParallelPixelCNN((4, 4, 1), 3, n_filters=4, n_layers=1)
    with pytest.raises(ValueError, match="0..2"):
        model.loss(torch.full((2, 4, 4, 1), 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        model.loss(torch.zeros(2, 5, 4, 1, dtype=torch.uint8))
