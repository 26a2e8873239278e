"""``deepul demo`` (``make demo``): the course's main job in about a minute.

Trains a small PixelCNN on the ``shapes`` data set with the one training loop, compares its
test NLL with the independent-per-pixel baseline, and writes two pictures under ``out/demo/``:
samples next to real images, and the training curves.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from deepul_helpers import config, data, metrics, plot
from deepul_helpers.train import fit


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="out/demo", help="folder for the pictures (default: out/demo)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of PixelCNN training (default: 60)")
    parser.add_argument("--quick", action="store_true", help="a few iterations only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu or cuda")


def run(out="out/demo", budget_s: float = 60.0, quick: bool | None = None, seed: int = 0, device="auto") -> dict:
    from deepul_helpers.models.autoregressive import PixelCNN
    from deepul_helpers.models.baseline import IndependentCategorical

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = data.info("shapes")
    train_x, test_x = data.load("shapes", "train", seed=seed), data.load("shapes", "test", seed=seed)
    print(f"data: shapes, {len(train_x)} train / {len(test_x)} test images of {meta.shape}, {meta.levels} levels")

    config.seed_everything(seed)
    baseline = IndependentCategorical(meta.shape, meta.levels)
    base_hist = fit(baseline, train_x, test_x, epochs=5, lr=0.05, batch_size=256, seed=seed, device=device,
                    quick=quick, progress=False)

    config.seed_everything(seed)
    model = PixelCNN(meta.shape, meta.levels, n_filters=32, n_layers=5, kernel_size=5)
    hist = fit(model, train_x, test_x, epochs=30, budget_s=budget_s, lr=2e-3, batch_size=64, seed=seed,
               device=device, quick=quick)

    n_samples = config.pick(16, 2, quick=quick)
    t0 = time.perf_counter()
    samples = model.sample(n_samples).numpy()
    sample_s = time.perf_counter() - t0
    both = np.concatenate([test_x[:n_samples], samples])
    samples_png, curves_png = out / "samples.png", out / "training_curves.png"
    plot.samples_grid(both, nrow=n_samples // 2 if n_samples >= 8 else n_samples, levels=meta.levels,
                      title="top: real test images, bottom: PixelCNN samples", save_to=samples_png)
    plot.training_curves(hist, title="PixelCNN on shapes", ylabel="nats/dim", save_to=curves_png)
    plot.close()

    result = {
        "pixelcnn_bits_per_dim": float(metrics.bits_per_dim(hist.test_losses[-1])),
        "baseline_bits_per_dim": float(metrics.bits_per_dim(base_hist.test_losses[-1])),
        "train_seconds": hist.wall_time_s,
        "epochs": hist.epochs,
        "sample_seconds": sample_s,
        "samples_png": str(samples_png),
        "curves_png": str(curves_png),
        "total_seconds": time.perf_counter() - t_start,
    }
    return result


def main(args) -> int:
    quick = True if args.quick else None
    r = run(out=args.out, budget_s=args.budget, quick=quick, seed=args.seed, device=args.device)
    mode = " (quick mode)" if config.is_quick(quick) else ""
    print(f"\nPixelCNN test loss: {r['pixelcnn_bits_per_dim']:.4f} bits/dim after {r['epochs']} epochs "
          f"({r['train_seconds']:.0f} s){mode}")
    print(f"independent-pixel baseline: {r['baseline_bits_per_dim']:.4f} bits/dim")
    print(f"samples:         {r['samples_png']}  ({r['sample_seconds']:.1f} s to sample)")
    print(f"training curves: {r['curves_png']}")
    print(f"total: {r['total_seconds']:.0f} s")
    return 0
