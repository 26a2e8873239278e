"""An energy-based model on 2D points, normalised exactly on a grid, trained by contrastive divergence or
denoising score matching.

The model: an energy E(x) (an MLP with smooth SiLU activations) defines p(x) ∝ exp(-E(x)). In 2D the
partition function can be computed instead of avoided: the model's density is *defined* on the
box ``extent`` cut into ``grid`` x ``grid`` cells as constant on each cell,

    q(x) = exp(-E(c(x))) / Z,   Z = sum_cells exp(-E(c)) * cell_area,   q = 0 outside the box,

with c(x) the centre of x's cell. That q integrates to exactly 1, so ``log_prob`` and ``loss`` (the
NLL in nats per dimension) are exact and sit in the same table as the flows' NLLs and the data's
true entropy (the cross-entropy is never below it). ``sample(n)`` draws exactly from q (a cell by
its probability, then uniformly inside it); ``langevin`` runs the sampler that training uses.

Training, two estimators that never compute Z (``fit(step=...)``):
- ``cd_step``: contrastive divergence with persistent Langevin chains (a replay buffer of
  negatives, 5% restarted uniformly in the box each step): the gradient of E(data) - E(negatives),
  plus ``alpha`` (E(data)^2 + E(negatives)^2) to keep energies near 0. Langevin:
  x <- x - (eps / 2) grad E(x) + sqrt(eps) N(0, I).
- ``dsm_step``: denoising score matching (Vincent 2011): the score -grad E(x~) at x~ = x + sigma e
  regresses onto -e / sigma, loss 0.5 E ||sigma (-grad E(x~)) + e||^2.
The plain ``fit`` (no step) trains by the exact grid-normalised NLL: maximum likelihood, a baseline.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepul_helpers.models._common import check_shape, model_device

from .gan import mlp


class GridEBM(nn.Module):
    """E(x) for x (B, 2); the density normalised on the grid of ``extent`` (xmin, xmax, ymin, ymax)."""

    def __init__(self, extent, hidden: int = 128, layers: int = 3, grid: int = 200, buffer_size: int = 8192,
                 langevin_steps: int = 20, step_size: float = 0.01, alpha: float = 0.01):
        super().__init__()
        self.extent = tuple(float(v) for v in extent)
        self.grid, self.langevin_steps, self.step_size, self.alpha = grid, langevin_steps, step_size, alpha
        self.energy_net = mlp(2, 1, hidden, layers, act=nn.SiLU)
        self.register_buffer("chains", self.uniform(buffer_size))  # persistent negatives (buffer_size, 2)

    # ------------------------------------------------------------------ geometry
    def uniform(self, n: int) -> torch.Tensor:
        lo = torch.tensor(self.extent[0::2])
        hi = torch.tensor(self.extent[1::2])
        return lo + (hi - lo) * torch.rand(n, 2)  # (n, 2) on the CPU

    def cell_size(self) -> tuple[float, float]:
        x0, x1, y0, y1 = self.extent
        return (x1 - x0) / self.grid, (y1 - y0) / self.grid

    def cell_centres(self) -> torch.Tensor:
        """(grid * grid, 2), row-major over (x index, y index)."""
        x0, _, y0, _ = self.extent
        hx, hy = self.cell_size()
        cx = x0 + (torch.arange(self.grid) + 0.5) * hx
        cy = y0 + (torch.arange(self.grid) + 0.5) * hy
        return torch.stack(torch.meshgrid(cx, cy, indexing="ij"), -1).reshape(-1, 2).to(model_device(self))

    # ------------------------------------------------------------------ density
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy_net(x.float()).squeeze(-1)  # (B,)

    def log_partition(self) -> torch.Tensor:
        """log Z = log sum_cells exp(-E(c)) * cell_area (differentiable)."""
        hx, hy = self.cell_size()
        return torch.logsumexp(-self.energy(self.cell_centres()), 0) + math.log(hx * hy)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log q(x) in nats for x (B, 2): -E(cell centre) - log Z inside the box, -inf outside."""
        check_shape(x, (2,), "GridEBM.log_prob")
        x = x.float()
        x0, x1, y0, y1 = self.extent
        hx, hy = self.cell_size()
        inside = (x[:, 0] >= x0) & (x[:, 0] < x1) & (x[:, 1] >= y0) & (x[:, 1] < y1)
        i = ((x[:, 0] - x0) / hx).floor().clamp(0, self.grid - 1)
        j = ((x[:, 1] - y0) / hy).floor().clamp(0, self.grid - 1)
        centre = torch.stack([x0 + (i + 0.5) * hx, y0 + (j + 0.5) * hy], 1)  # (B, 2)
        lp = -self.energy(centre) - self.log_partition()
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Exact NLL in nats per dimension, averaged over the batch."""
        return -self.log_prob(x).mean() / 2

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n exact samples of q (float32 (n, 2), CPU): a cell by its probability, uniform inside it."""
        logits = -self.energy(self.cell_centres()).cpu()
        cells = torch.multinomial(torch.softmax(logits, 0), n, replacement=True)
        hx, hy = self.cell_size()
        centres = self.cell_centres().cpu()[cells]
        return centres + (torch.rand(n, 2) - 0.5) * torch.tensor([hx, hy])

    # ------------------------------------------------------------------ Langevin
    def langevin(self, x: torch.Tensor, steps: int | None = None, step_size: float | None = None) -> torch.Tensor:
        """x (B, 2) after ``steps`` Langevin steps on E, kept inside the box (no graph)."""
        eps = step_size or self.step_size
        lo = torch.tensor(self.extent[0::2], device=x.device)
        hi = torch.tensor(self.extent[1::2], device=x.device)
        x = x.detach().clone()
        for _ in range(self.langevin_steps if steps is None else steps):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(x).sum(), x)
            x = (x.detach() - 0.5 * eps * grad + math.sqrt(eps) * torch.randn_like(x))
            x = torch.maximum(torch.minimum(x, hi), lo)
        return x.detach()


def cd_step(model: GridEBM, batch: torch.Tensor, optimizer, iteration: int) -> dict:
    """Persistent contrastive divergence: one update from a data batch and as many Langevin negatives."""
    n = len(batch)
    idx = torch.randint(0, len(model.chains), (n,))
    start = model.chains[idx]
    fresh = torch.rand(n) < 0.05
    start[fresh] = model.uniform(int(fresh.sum())).to(start.device)
    neg = model.langevin(start)
    model.chains[idx] = neg
    e_pos, e_neg = model.energy(batch), model.energy(neg)
    cd = e_pos.mean() - e_neg.mean()
    loss = cd + model.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": float(cd.detach()), "energy_gap": float(cd.detach())}


def dsm_step(model: GridEBM, batch: torch.Tensor, optimizer, iteration: int, sigma: float = 0.1) -> dict:
    """Denoising score matching with noise ``sigma``: 0.5 E ||sigma * score(x~) + e||^2."""
    e = torch.randn_like(batch)
    noisy = (batch + sigma * e).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.energy(noisy).sum(), noisy, create_graph=True)  # grad E = -score
    loss = 0.5 * (e - sigma * grad).pow(2).sum(1).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach())}
