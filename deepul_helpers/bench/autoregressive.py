"""``deepul bench autoregressive``: the autoregressive reference models on the course data.

Rows: data set, model, test NLL after training (nats/dim and bits/dim; the whole test split in
the full run, its first 256 examples in quick mode), the data set's true entropy where known and
the gap in %, training seconds (training only, no evaluation) and epochs, seconds per sample, and
for the Transformer rows the seconds per sample with and without the KV cache.

Every model is trained by ``train.fit`` under a time budget with a cosine learning-rate decay
over that budget. Timings depend on the machine and on what else runs on it; with several
processes sharing few cores, ``OMP_NUM_THREADS=1`` avoids thread oversubscription.
"""

from __future__ import annotations

import time

import torch

from deepul_helpers import config, data, metrics
from deepul_helpers.models import autoregressive as ar
from deepul_helpers.train import evaluate, fit


def _sample_seconds(model, n: int, **kwargs) -> float:
    """Seconds per sample for one call of ``model.sample(n, ...)``."""
    t0 = time.perf_counter()
    model.sample(n, **kwargs)
    return (time.perf_counter() - t0) / n


def _run_one(name, label, make, *, quick, device, budget_s, lr, batch_size=128, epochs=100_000, n_sample=16,
             cache_timing=False, seed=0):
    """Train one model on one data set and measure it; returns a row dict."""
    info = data.info(name)
    train, test = data.load(name, "train"), data.load(name, "test")
    config.seed_everything(seed)
    model = make()
    budget = config.pick(budget_s, 5.0, quick=quick)
    # test_data=None: no evaluation inside fit, so wall_time_s is training time only
    hist = fit(model, train, None, epochs=epochs, budget_s=budget, lr=lr, batch_size=batch_size, seed=seed,
               device=device, quick=quick, progress=False, lr_schedule="cosine", grad_clip=1.0)
    model.eval()
    nll = evaluate(model, test[: config.pick(len(test), config.QUICK_MAX_TEST_EXAMPLES, quick=quick)], batch_size)
    row = {
        "dataset": name,
        "model": label,
        "params": sum(p.numel() for p in model.parameters()),
        "test_nats_per_dim": nll,
        "test_bits_per_dim": float(metrics.bits_per_dim(nll)),
        "entropy_nats_per_dim": info.entropy,
        "gap_percent": metrics.gap_percent(nll, info.entropy),
        "train_s": hist.wall_time_s,
        "epochs": hist.epochs,
    }
    n = config.pick(n_sample, 2, quick=quick)
    with torch.no_grad():
        if cache_timing:
            # quick mode fixes most of the sequence by a prompt, so that only a few tokens are timed
            prompt_len = config.pick(0, model.seq_len - 16, quick=quick)
            prompt = torch.as_tensor(test[:1]).reshape(1, -1)[0, :prompt_len] if prompt_len else None
            row["tokens_sampled"] = model.seq_len - prompt_len
            row["sample_n"] = n
            row["s_per_sample_naive"] = _sample_seconds(model, n, use_cache=False, prompt=prompt)
            row["s_per_sample_cached"] = _sample_seconds(model, n, use_cache=True, prompt=prompt)
            row["cache_speedup"] = row["s_per_sample_naive"] / row["s_per_sample_cached"]
        else:
            row["s_per_sample"] = _sample_seconds(model, n)
    return row


def _digits_shape():
    return tuple(data.info("digits").shape)


def run(quick: bool = False, device: str = "auto") -> list[dict]:
    quick = config.is_quick(quick)
    lv = {name: data.info(name).levels for name in data.names()}
    dig = _digits_shape()
    shapes_shape = tuple(data.info("shapes").shape)
    jobs = [
        ("1d_a", "Histogram", lambda: ar.Histogram(lv["1d_a"]), dict(budget_s=10, lr=0.05, epochs=300)),
        ("1d_a", "LogisticMix(4)", lambda: ar.DiscretizedLogisticMixture(lv["1d_a"], 4),
         dict(budget_s=15, lr=0.05, epochs=300)),
        ("1d_b", "Histogram", lambda: ar.Histogram(lv["1d_b"]), dict(budget_s=15, lr=0.05, epochs=100)),
        ("1d_b", "LogisticMix(4)", lambda: ar.DiscretizedLogisticMixture(lv["1d_b"], 4),
         dict(budget_s=15, lr=0.05, epochs=100)),
        ("image_density_25", "MADE 2x256", lambda: ar.MADE(2, lv["image_density_25"], hidden=(256, 256)),
         dict(budget_s=30, lr=2e-3, epochs=40)),
        ("image_density_100", "MADE 2x512", lambda: ar.MADE(2, lv["image_density_100"], hidden=(512, 512)),
         dict(budget_s=75, lr=2e-3, batch_size=256, epochs=20)),
        ("digits", "MADE 2x500", lambda: ar.MADE(dig, lv["digits"], hidden=(500, 500)),
         dict(budget_s=60, lr=1e-3, batch_size=64)),
        ("digits", "PixelCNN 32x5", lambda: ar.PixelCNN(dig, lv["digits"], n_filters=32, n_layers=5, kernel_size=5),
         dict(budget_s=100, lr=2e-3, batch_size=64)),
        ("digits", "GatedPixCNN 32x4",
         lambda: ar.GatedPixelCNN(dig, lv["digits"], n_filters=32, n_layers=4, kernel_size=3),
         dict(budget_s=100, lr=2e-3, batch_size=64)),
        ("shapes", "ImageTF d64 L2",
         lambda: ar.ImageTransformer(shapes_shape, lv["shapes"], d_model=64, n_heads=4, n_layers=2),
         dict(budget_s=75, lr=1e-3, batch_size=32, n_sample=4, cache_timing=True)),
        ("text_grammar", "CharTF d64 L2",
         lambda: ar.CharTransformer(lv["text_grammar"], data.info("text_grammar").shape[0], d_model=64, n_heads=4),
         dict(budget_s=90, lr=3e-3, batch_size=32, n_sample=8, cache_timing=True)),
        ("signals", "WaveNet 32ch",
         lambda: ar.WaveNet(data.info("signals").shape[0], lv["signals"], n_layers=8, n_channels=32),
         dict(budget_s=60, lr=2e-3, batch_size=32, n_sample=4)),
    ]
    rows = []
    for name, label, make, kwargs in jobs:
        row = _run_one(name, label, make, quick=quick, device=device, **kwargs)
        print(f"  {name:18s} {label:32s} {row['test_bits_per_dim']:.4f} bits/dim  ({row['train_s']:.0f} s)",
              flush=True)
        rows.append(row)
    return rows
