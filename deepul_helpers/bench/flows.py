"""``deepul bench flows``: the flow models on the 2D toys and on digits, against the true entropy.

Rows: data set, model, test NLL (nats/dim and bits/dim; for digits the bound on the discrete
NLL, one noise sample per image averaged over several draws, and the importance-weighted
bound, k in ``iw_k``), true entropy and gap where known, training seconds and iterations, and
per-example times for density evaluation and sampling (the MAF/IAF trade-off). Every model is
trained by ``train.fit`` for a fixed number of epochs with a wall-clock cap, cosine learning-rate decay;
``train_cpu_s`` says how much CPU time the run actually got (less than ``train_s`` on a busy machine).
"""

from __future__ import annotations

import statistics
import time

import torch

from deepul_helpers import config, data, metrics
from deepul_helpers.models import flows as fl
from deepul_helpers.train import fit


def _median_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _row(name, label, model, train, test, epochs, budget_s, lr, batch_size, quick, device, n_sample, eval_draws,
         iw_k):
    test = test[: config.pick(len(test), 64, quick=quick)]
    cpu0 = time.process_time()
    # lr decays along a cosine over the run: whichever of budget_s seconds or the epochs comes first
    hist = fit(model, train, test, epochs=epochs, budget_s=budget_s, lr=lr, batch_size=batch_size,
               seed=0, device=device, quick=quick, progress=False, lr_schedule="cosine", grad_clip=100.0)
    train_cpu_s = time.process_time() - cpu0  # CPU seconds this process got (the machine may be shared)
    model.eval()
    x = torch.as_tensor(test).to(model.device)
    info = data.info(name)
    with torch.no_grad():
        nll = float(torch.stack([torch.cat([model.loss(b)[None] * len(b) for b in x.split(500)]).sum() / len(x)
                                 for _ in range(eval_draws)]).mean())
        iw = None
        if model.levels is not None:
            iw = float(-torch.cat([model.log_prob_iw(b, k=iw_k) for b in x.split(100)]).mean() / model.dim)
        n_dens, repeats = min(len(x), 256), config.pick(3, 1, quick=quick)
        dens_s = _median_time(lambda: model.log_prob(x[:n_dens]), repeats) / n_dens
        samp_s = _median_time(lambda: model.sample(n_sample), repeats) / n_sample
    entropy = info.entropy
    return {
        "dataset": name, "model": label,
        "test_nats_per_dim": nll, "test_bits_per_dim": metrics.bits_per_dim(nll),
        "test_bits_per_dim_iw": None if iw is None else metrics.bits_per_dim(iw),
        "iw_k": None if iw is None else iw_k,
        "entropy_nats_per_dim": entropy,
        "gap_percent": None if entropy is None else metrics.gap_percent(nll, entropy),
        "train_s": hist.wall_time_s, "train_cpu_s": train_cpu_s, "iterations": hist.iterations,
        "density_s_per_example": dens_s, "sample_s_per_sample": samp_s,
        "params": sum(p.numel() for p in model.parameters()),
    }


def run(quick: bool = False, device: str = "auto") -> list[dict]:
    quick = config.is_quick(quick)
    pick = lambda full, q: config.pick(full, q, quick=quick)
    torch.manual_seed(0)
    rows = []

    # (data set, label, model, epochs, wall-clock cap in seconds, lr, batch size). Epochs are sized to
    # fit well under 60 s (about 30 s for the RealNVP baselines) on an idle 2-core CPU; the cap stops
    # a run on a busy machine; train_s and train_cpu_s report what each run took.
    toys = [
        ("gaussians_8", "CDFFlow2d (16 Gaussians, autoregressive)", lambda: fl.CDFFlow2d(16, "gaussian", 128),
         40, 150, 3e-3, 512),
        ("gaussians_8", "RealNVP (8 affine couplings)", lambda: fl.RealNVP(2, 8, 64), 50, 75, 1e-3, 128),
        ("checkerboard", "SplineFlow (2 RQ-spline couplings, 32 bins)", lambda: fl.SplineFlow(2, 2, 32, 128),
         150, 150, 5e-3, 512),
        ("checkerboard", "RealNVP (8 affine couplings)", lambda: fl.RealNVP(2, 8, 64), 50, 75, 1e-3, 128),
    ]
    for name, label, build, epochs, cap, lr, bs in toys:
        train, test = data.load(name, "train"), data.load(name, "test")
        rows.append(_row(name, label, build(), train, test, epochs, pick(cap, 5), lr, bs, quick, device,
                         n_sample=pick(1000, 50), eval_draws=1, iw_k=None))

    train, test = data.load("digits", "train"), data.load("digits", "test")
    shape, levels = train.shape[1:], data.info("digits").levels
    images = [  # MAF and IAF: same epochs and cap; IAF's 64-pass density makes it stop at the cap first
        ("RealNVP multiscale, uniform dequantization",
         lambda: fl.RealNVPImage(shape, levels, channels=32, n_blocks=1), 15, 300),
        ("RealNVP multiscale, variational dequantization",
         lambda: fl.RealNVPImage(shape, levels, channels=32, n_blocks=1, dequantization="variational",
                                 deq_couplings=2, deq_channels=16), 15, 300),
        ("MAF (5 layers; density 1 pass, sampling 64 passes)", lambda: fl.MAF(shape, 5, 128, levels=levels),
         15, 60),
        ("IAF (5 layers; sampling 1 pass, density 64 passes)", lambda: fl.IAF(shape, 5, 128, levels=levels),
         15, 60),
    ]
    for i, (label, build, epochs, cap) in enumerate(images):
        draws, k = (10, 64) if i < 2 else (2, 8)  # IAF's density costs 64 passes: fewer evaluations
        rows.append(_row("digits", label, build(), train, test, epochs, pick(cap, 5), 2e-3, 64, quick, device,
                         n_sample=pick(100, 8), eval_draws=pick(draws, 1), iw_k=pick(k, 2)))
    return rows
