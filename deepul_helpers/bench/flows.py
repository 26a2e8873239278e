"""``deepul bench flows``: the flow models on the 2D toys and on digits, against the true entropy.

One row per model (the schema of ``bench/schema.py``): test NLL (exact on the continuous toys; on
digits the dequantization bound on the discrete NLL, averaged over several seeded noise draws,
beside the tighter importance-weighted bound with ``iw_k`` samples), the Monte Carlo cross-entropy
against the toys' true densities, the true entropy and gaps, epochs, the epoch kept by
validation, training seconds (wall and CPU), seconds per 1,000 samples and per density
evaluation (the MAF/IAF trade-off: one pass for MAF's density, 64 for IAF's), parameters.

Every model trains with ``train.fit`` for a fixed number of epochs (cosine learning-rate decay)
on 90% of the training split and keeps the epoch with the lowest loss on the other 10%; MAF and
IAF get the same 15 epochs. Quality figures do not depend on machine speed; seconds do.
"""

from __future__ import annotations

import torch

from deepul_helpers import config, data, metrics
from deepul_helpers.bench.schema import likelihood_row
from deepul_helpers.models import flows as fl
from deepul_helpers.timing import best_of


def _density_and_iw(iw_k: int | None, quick: bool):
    """measure(model, test): seconds per example of ``log_prob``, and the importance-weighted bound."""

    def measure(model, test) -> dict:
        x = torch.as_tensor(test).to(model.device)
        n = min(len(x), 256)
        dens = best_of(model.log_prob, x[:n], repeats=config.pick(3, 1, quick=quick), warmup=1).best_s / n
        out = {"density_s_per_example": dens}
        if model.levels is not None:
            config.seed_everything(0)
            with torch.no_grad():
                iw = float(-torch.cat([model.log_prob_iw(b, k=iw_k) for b in x.split(100)]).mean() / model.dim)
            out.update(test_bits_per_dim_iw=float(metrics.bits_per_dim(iw)), iw_k=iw_k)
        return out

    return measure


def run(quick: bool = False, device: str = "auto") -> list[dict]:
    quick = config.is_quick(quick)
    shape, levels = tuple(data.info("digits").shape), data.info("digits").levels
    toys = [  # (data set, label, model, epochs, lr, batch size)
        ("gaussians_8", "CDFFlow2d (16 Gaussians, autoregressive)", lambda: fl.CDFFlow2d(16, "gaussian", 128),
         40, 3e-3, 512),
        ("gaussians_8", "RealNVP (8 affine couplings)", lambda: fl.RealNVP(2, 8, 64), 50, 1e-3, 128),
        ("checkerboard", "SplineFlow (2 RQ-spline couplings, 32 bins)", lambda: fl.SplineFlow(2, 2, 32, 128),
         150, 5e-3, 512),
        ("checkerboard", "RealNVP (8 affine couplings)", lambda: fl.RealNVP(2, 8, 64), 50, 1e-3, 128),
    ]
    images = [  # (label, model, noise draws for the test bound, iw_k); 15 epochs each, lr 2e-3, batch 64
        ("RealNVP multiscale, uniform dequantization",
         lambda: fl.RealNVPImage(shape, levels, channels=32, n_blocks=1), 10, 64),
        ("RealNVP multiscale, variational dequantization",
         lambda: fl.RealNVPImage(shape, levels, channels=32, n_blocks=1, dequantization="variational",
                                 deq_couplings=2, deq_channels=16), 10, 64),
        ("MAF (5 layers; density 1 pass, sampling 64 passes)", lambda: fl.MAF(shape, 5, 128, levels=levels), 2, 8),
        ("IAF (5 layers; sampling 1 pass, density 64 passes)", lambda: fl.IAF(shape, 5, 128, levels=levels), 2, 8),
    ]
    rows = []

    def add(row: dict) -> None:
        print(f"  {row['dataset']:14s} {row['model'][:40]:40s} {row['test_bits_per_dim']:.4f} bits/dim  "
              f"(epoch {row['best_epoch']} of {row['epochs']}, {row['train_cpu_s']:.0f} CPU s)", flush=True)
        rows.append(row)

    for name, label, build, epochs, lr, bs in toys:
        add(likelihood_row("flows", label, name, build, epochs=epochs, lr=lr, batch_size=bs, quick=quick,
                                   device=device, n_samples=1000, measure=_density_and_iw(None, quick),
                                   lr_schedule="cosine", grad_clip=100.0))
    for label, build, draws, k in images:
        add(likelihood_row("flows", label, "digits", build, epochs=15, lr=2e-3, batch_size=64,
                                   nll_kind="bound", quick=quick, device=device, n_samples=100,
                                   test_draws=config.pick(draws, 1, quick=quick),
                                   measure=_density_and_iw(config.pick(k, 2, quick=quick), quick),
                                   lr_schedule="cosine", grad_clip=100.0))
    return rows
