"""``deepul bench implicit``: mode dropping, sample quality and an exact EBM likelihood, in the one row schema.

- 2D mode dropping (``gaussians_8_narrow``, ``gaussians_25_narrow``): a plain GAN (non-saturating loss),
  WGAN-GP, hinge loss with spectral normalisation and a packed GAN (PacGAN, m = 2), each trained with the same
  settings (``MODE_NET``, ``MODE_FIT``: the same networks, iterations, learning rate and batch for every variant;
  WGAN-GP's generator steps once per 5 critic steps inside them; the two Lipschitz critics work in network space
  ``LIPSCHITZ_SCALE`` x data space, the comment above it says why) from ``SEEDS`` seeds, the runs spread over
  ``config.workers()`` processes (``bench.workers``; sampling is timed afterwards, alone); the row holds the mean
  over seeds of the modes covered, the share of high-quality samples and the reverse KL of the mode histogram
  (2,500 samples, ``mode_coverage``), with the spread (max - min) over the seeds. PacGAN's tables (10 runs,
  ~400,000 iterations) are the anchors: a plain GAN covers 6.3/8 (98.2% high quality) on the ring and 17.3/25
  (94.8%) on the grid, a packed one 7.8-7.9 and 23.8-24.8. The settings come from a measured sweep
  (the comment above ``MODE_NET``).
- ``digits``: DCGAN with the non-saturating and the hinge+SN losses; Frechet distance, KID (with its
  standard error) and Inception-style score of 1,000 samples against the test digits, beside the same
  figures of the training digits (``fid_data``: what a perfect sampler scores).
- ``moons``: the grid-normalised energy-based model trained by contrastive divergence and by denoising
  score matching: its exact test NLL and its cross-entropy against the true density, beside the entropy.

Quality figures come from fixed epochs (no time budget), so they are the same on any machine; the
seconds depend on the machine and its load.
"""

from __future__ import annotations

import numpy as np
import torch

from deepul_helpers import config, data, train
from deepul_helpers.bench import schema, workers
from deepul_helpers.metrics import sample_quality as sq

FAMILY = "implicit"
SEEDS = (0, 1, 2)
N_EVAL = 2500
EBM_BOX = (-4.5, 4.5, -3.5, 3.5)  # holds all but ~1e-10 of the moons' mass: every test point has a finite NLL
# The 2D runs' settings, from a measured sweep (one process at a time, under load; modes / high-quality share).
# At 3x256, lr 1e-3, seed 0: 1,640 -> 6,560 iterations took the ring's PacGAN from 65% to 92% high quality and the
# grid's GAN from 27% (3 seeds) to 91%, but such a run costs 50-70 CPU s. At 3x128, lr 2e-3, 6,560 iterations
# (20-27 CPU s a run), seeds 0-2: ring PacGAN 8.0/8 at 91.0%, GAN 7.67 at 95.7%; grid GAN 17.0/25 at 93.2% (the
# paper's plain GAN: 17.3, 94.8%), PacGAN 24.7/25 at 63.3%. Twice the iterations (13,120) take the grid's PacGAN
# to 24.0/25 at 87.8% for twice the cost, past the 15-minute budget with four variants x 3 seeds. Worse on the
# grid's PacGAN (seed 0): at 3x256 and 3,280 iterations, lr 1e-3 10% (lr 2e-3: 28%), batch norm in G 3%, betas
# (0, 0.9) 6%, noise dimension 8 3%; batch 128 at 6,560 iterations 32% (batch 256: 62%); at 3x128, lr 3e-3 20/25, 53%.
# The Lipschitz critics (WGAN-GP's penalty, hinge's spectral norm) are 1-Lipschitz in network space, so they can
# tell apart only points about 1 / scale apart: at data scale (scale 1) they lost the narrow modes at every seed
# (idle run, seeds 0-2: ring WGAN-GP 2.67/8 at 0.2% high quality, hinge+SN 0.33/8 at 0.1%; grid 16.7/25 at 1.3% and
# 2/25 at 13%). Network space = 10 x data space (the full run, seeds 0-2: ring hinge+SN 8/8 at 93.7%, WGAN-GP 8/8 at
# 66.7%; grid hinge+SN 18.0/25 at 18.8% (spread 15 modes), WGAN-GP 23.7/25 at 9.8%); the same scale hurts the
# unconstrained discriminators (grid, seed 0: GAN 8/25 at 84%, PacGAN 21/25 at 13%), which keep scale 1. Other
# scales on the grid (seed 0): 2 and 5 worse for both; 20: hinge+SN 22/25 at 26%, WGAN-GP 19/25 at 2%.
LIPSCHITZ_SCALE = 10.0
MODE_NET = {"hidden": 128, "layers": 3}
MODE_FIT = {"epochs": 164, "lr": 2e-3, "batch_size": 256, "betas": (0.5, 0.9)}  # 6,560 iterations, cosine to 0
# label -> (loss, pack, network-space scale: mlp_gan's ``scale``)
GANS_2D = {"GAN": ("nonsaturating", 1, 1.0), "WGAN-GP": ("wgan-gp", 1, LIPSCHITZ_SCALE),
           "hinge+SN": ("hinge", 1, LIPSCHITZ_SCALE), "PacGAN m=2": ("nonsaturating", 2, 1.0)}


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _fit_gan(model, x, epochs, lr, batch_size, seed, quick, device, betas=(0.5, 0.999)):
    from deepul_helpers.models import implicit

    return train.fit(model, x, epochs=epochs, step=implicit.gan_step, optimizer=implicit.gan_optimizer(betas=betas),
                     lr=lr, batch_size=batch_size, lr_schedule="cosine", seed=seed, quick=quick, device=device)


def _mode_run(job: tuple) -> dict:
    """One 2D GAN run (a worker's job): train, draw ``N_EVAL`` samples, measure their modes."""
    from deepul_helpers.models import implicit

    name, label, seed, quick, device = job
    loss, pack, scale = GANS_2D[label]
    config.seed_everything(seed)
    model = implicit.mlp_gan(2, loss=loss, pack=pack, scale=scale, **MODE_NET)
    hist = _fit_gan(model, data.load(name), seed=seed, quick=quick, device=device,
                    **{**MODE_FIT, "epochs": 1 if quick else MODE_FIT["epochs"]})
    torch.manual_seed(10_000 + seed)
    coverage = sq.mode_coverage(model.sample(N_EVAL).numpy(), name)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    return {"coverage": coverage, "history": hist, "state": state}


def _mode_rows(quick: bool, device: str) -> list[dict]:
    """Every (data set, variant, seed) run through ``workers.map_jobs``; sampling timed here afterwards."""
    from deepul_helpers.models import implicit

    keys = [(name, label) for name in ("gaussians_8_narrow", "gaussians_25_narrow") for label in GANS_2D]
    runs = workers.map_jobs(_mode_run, [(name, label, seed, quick, device) for name, label in keys for seed in SEEDS])
    rows = []
    for i, (name, label) in enumerate(keys):
        done = runs[i * len(SEEDS):(i + 1) * len(SEEDS)]
        covs = [r["coverage"] for r in done]
        loss, pack, scale = GANS_2D[label]
        model = implicit.mlp_gan(2, loss=loss, pack=pack, scale=scale, **MODE_NET)
        model.load_state_dict(done[-1]["state"])
        covered = np.array([c["modes_covered"] for c in covs], dtype=float)
        good = np.array([c["high_quality"] for c in covs])
        kl = np.array([c["reverse_kl"] for c in covs])
        net = f"MLP {MODE_NET['layers']}x{MODE_NET['hidden']}" + (f", x{scale:g}" if scale != 1 else "")
        rows.append(schema.make_row(
            FAMILY, f"{label} ({net})", name, history=done[-1]["history"], params=_params(model),
            s_per_1000_samples=schema.seconds_per_1000_samples(model, N_EVAL),
            modes_covered=float(covered.mean()), high_quality_share=float(good.mean()),
            mode_kl=float(np.nanmean(kl)) if np.isfinite(kl).any() else None, seeds=len(SEEDS),
            modes_covered_spread=float(np.ptp(covered)), high_quality_spread=float(np.ptp(good))))
    return rows


def _digit_rows(quick: bool, device: str) -> list[dict]:
    from deepul_helpers.models import implicit

    x, xt = data.load("digits"), data.load("digits", "test")
    fid_data = sq.frechet_distance(x, xt)
    rows = []
    for label, loss in (("DCGAN", "nonsaturating"), ("DCGAN hinge+SN", "hinge")):
        config.seed_everything(0)
        model = implicit.dcgan("digits", loss=loss)
        hist = _fit_gan(model, x, 1 if quick else 60, 2e-4, 64, 0, quick, device)
        model.eval()
        torch.manual_seed(10_000)
        samples = model.sample(1000).numpy()
        kid, kid_se = sq.kernel_distance(samples, xt)
        rows.append(schema.make_row(
            FAMILY, label, "digits", history=hist, params=_params(model),
            s_per_1000_samples=schema.seconds_per_1000_samples(model, 1000),
            fid=sq.frechet_distance(samples, xt), kid=kid, kid_se=kid_se,
            inception_score=sq.inception_score(samples)[0], fid_data=fid_data,
            modes_covered=float(sq.digit_modes(samples)["covered"])))
    return rows


def _ebm_rows(quick: bool, device: str) -> list[dict]:
    from deepul_helpers.models import implicit

    x, xt = data.load("moons"), data.load("moons", "test")
    extent = EBM_BOX
    rows = []
    for label, step in (("EBM, contrastive divergence", implicit.cd_step),
                        ("EBM, denoising score matching", implicit.dsm_step)):
        config.seed_everything(0)
        model = implicit.GridEBM(extent, hidden=64, layers=3, grid=60 if quick else 200)
        hist = train.fit(model, x, epochs=1 if quick else 30, lr=1e-3, batch_size=256, step=step, seed=0,
                         val_fraction=0.1, keep_best=True, quick=quick, device=device)
        model = model.cpu().eval()
        nll = train.evaluate(model, xt)
        rows.append(schema.make_row(
            FAMILY, f"{label} (grid-normalised)", "moons", test_nats_per_dim=nll, nll_kind="exact",
            cross_entropy=schema.true_cross_entropy(model, "moons", n_monte_carlo=2000 if quick else 20_000),
            history=hist, params=_params(model), s_per_1000_samples=schema.seconds_per_1000_samples(model, 1000)))
    return rows


def run(quick: bool = False, device: str = "auto") -> list[dict]:
    return _mode_rows(quick, device) + _digit_rows(quick, device) + _ebm_rows(quick, device)
