"""``deepul bench autoregressive``: the autoregressive reference models on the course data.

One row per model (the schema of ``bench/schema.py``): test NLL (exact), the cross-entropy against
the true distribution where it is known (exact over every value for the 1D and 2D tables, Monte
Carlo for the grammar), the true entropy and both gaps, epochs, the epoch kept by validation,
training seconds (wall and CPU), seconds per 1,000 samples, parameters; the Transformer rows add
the sampling time per sample with and without the KV cache, measured interleaved.

Every model trains with ``train.fit`` for a fixed number of epochs (cosine learning-rate decay,
gradient clipping) on 90% of the training split and keeps the epoch with the lowest loss on the
other 10%: the quality figures are the same on a fast or a loaded machine (one thread,
``config.threads()``); the seconds are not.
"""

from __future__ import annotations

from deepul_helpers import config, data
from deepul_helpers.bench.schema import likelihood_row
from deepul_helpers.models import autoregressive as ar
from deepul_helpers.timing import best_of


def _kv_cache_timing(n: int, quick: bool):
    """measure(model, test): seconds per sample with and without the KV cache, interleaved (naive,
    cached, naive, cached, ...), best of the repeats; quick mode samples the last 16 tokens only."""

    def measure(model, test) -> dict:
        import torch

        prompt_len = config.pick(0, model.seq_len - 16, quick=quick)
        prompt = torch.as_tensor(test[:1]).reshape(-1)[:prompt_len] if prompt_len else None
        naive, cached = [], []
        for _ in range(config.pick(3, 1, quick=quick)):
            naive.append(best_of(model.sample, n, use_cache=False, prompt=prompt, repeats=1, warmup=0).best_s / n)
            cached.append(best_of(model.sample, n, use_cache=True, prompt=prompt, repeats=1, warmup=0).best_s / n)
        return {"tokens_sampled": model.seq_len - prompt_len, "s_per_sample_naive": min(naive),
                "s_per_sample_cached": min(cached), "cache_speedup": min(naive) / min(cached)}

    return measure


def run(quick: bool = False, device: str = "auto") -> list[dict]:
    quick = config.is_quick(quick)
    lv = {name: data.info(name).levels for name in data.names()}
    digits, shapes = tuple(data.info("digits").shape), tuple(data.info("shapes").shape)
    text_len, signal_len = data.info("text_grammar").shape[0], data.info("signals").shape[0]
    # (data set, label, model, fit and measurement settings); epochs sized for a few minutes in all
    jobs = [
        ("1d_a", "Histogram", lambda: ar.Histogram(lv["1d_a"]), dict(epochs=300, lr=0.05)),
        ("1d_a", "LogisticMix(4)", lambda: ar.DiscretizedLogisticMixture(lv["1d_a"], 4), dict(epochs=300, lr=0.05)),
        ("1d_b", "Histogram", lambda: ar.Histogram(lv["1d_b"]), dict(epochs=100, lr=0.05)),
        ("1d_b", "LogisticMix(4)", lambda: ar.DiscretizedLogisticMixture(lv["1d_b"], 4), dict(epochs=100, lr=0.05)),
        ("image_density_25", "MADE 2x256", lambda: ar.MADE(2, lv["image_density_25"], hidden=(256, 256)),
         dict(epochs=40, lr=2e-3)),
        ("image_density_100", "MADE 2x512", lambda: ar.MADE(2, lv["image_density_100"], hidden=(512, 512)),
         dict(epochs=10, lr=2e-3, batch_size=256)),
        ("digits", "MADE 2x500", lambda: ar.MADE(digits, lv["digits"], hidden=(500, 500)),
         dict(epochs=100, lr=1e-3, batch_size=64)),
        ("digits", "PixelCNN 32x5",
         lambda: ar.PixelCNN(digits, lv["digits"], n_filters=32, n_layers=5, kernel_size=5),
         dict(epochs=100, lr=2e-3, batch_size=64)),
        ("digits", "GatedPixCNN 32x4",
         lambda: ar.GatedPixelCNN(digits, lv["digits"], n_filters=32, n_layers=4, kernel_size=3),
         dict(epochs=60, lr=2e-3, batch_size=64)),
        ("shapes", "ImageTF d64 L2", lambda: ar.ImageTransformer(shapes, lv["shapes"], d_model=64, n_heads=4),
         dict(epochs=1, lr=1e-3, batch_size=32, n_samples=4, measure=_kv_cache_timing(4, quick))),
        ("text_grammar", "CharTF d64 L2",
         lambda: ar.CharTransformer(lv["text_grammar"], text_len, d_model=64, n_heads=4),
         dict(epochs=6, lr=3e-3, batch_size=32, n_samples=8, measure=_kv_cache_timing(8, quick))),
        ("signals", "WaveNet 32ch", lambda: ar.WaveNet(signal_len, lv["signals"], n_layers=8, n_channels=32),
         dict(epochs=3, lr=2e-3, batch_size=32, n_samples=4)),
    ]
    rows = []
    for name, label, make, kwargs in jobs:
        kwargs = {"batch_size": 128, **kwargs}
        row = likelihood_row("autoregressive", label, name, make, quick=quick, device=device,
                             lr_schedule="cosine", grad_clip=1.0, **kwargs)
        print(f"  {name:18s} {label:18s} {row['test_bits_per_dim']:.4f} bits/dim  (epoch {row['best_epoch']} of "
              f"{row['epochs']}, {row['train_cpu_s']:.0f} CPU s)", flush=True)
        rows.append(row)
    return rows
