"""Runners of homework 3 (latent-variable models): one ``run_qk`` per question, all built on the kit.

q1: a 2D VAE on ``gaussian_aligned`` and ``gaussian_rotated`` (posterior collapse from your own KL numbers);
q2: a VAE on ``digits`` with the ELBO and the IWAE bound; q3: a VQ-VAE with an autoregressive prior on
``digits``; q4: a Helmholtz machine trained by wake-sleep on ``bars`` (exact NLL by enumeration).
Every loss is a bound on the negative log-likelihood in nats per dimension (q4: the exact NLL).
"""

from __future__ import annotations

import numpy as np

from deepul_helpers import data, metrics, plot
from deepul_helpers.homework import kit

ASSIGNMENT = "hw3_latent_variable"
# Reference solution (solutions/hw3_latent_variable/hw3.ipynb), full mode, seed 0. Seconds: the CPU seconds of
# each run alone (one thread), measured on the shared 2-core machine while it was loaded about 7-fold, where
# the wall-clock times were 5-20x longer (q3: 11 CPU s, 247 wall s).
EXPECTED = kit.table(
    kit.Expected("q1", "gaussian_aligned", loss=2.2358, tol=0.02, seconds=2, variant="2D VAE"),
    kit.Expected("q1", "gaussian_rotated", loss=2.2626, tol=0.03, seconds=2, variant="2D VAE"),
    kit.Expected("q2", "digits", loss=1.4528, tol=0.04, seconds=7, variant="VAE, -ELBO"),
    kit.Expected("q3", "digits", loss=1.5826, tol=0.08, seconds=11, variant="VQ-VAE + PixelCNN prior, bound"),
    kit.Expected("q4", "bars", loss=0.4861, tol=0.03, seconds=4, variant="Helmholtz machine, exact NLL"),
)


def run_q1(q1_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 1: ``q1_fit(train, test, quick=, seed=, device=)`` on each 2D Gaussian ((N, 2) float32);
    returns ``(train_losses, test_losses, kl_per_dim)``: -ELBO in nats/dim, and the test set's mean KL of
    each of the 2 latent dimensions (nats)."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    results = {}
    for exp in kit.rows(EXPECTED, "q1"):
        train_x, test_x = run.splits(exp.data)
        res = run.call(q1_fit, train_x, test_x, returns=("train_losses", "test_losses", "kl_per_dim"))
        kl = kit.to_numpy(res["kl_per_dim"], "kl_per_dim").astype(np.float64).reshape(-1)
        if kl.shape != (2,) or not np.all(np.isfinite(kl)) or np.any(kl < -1e-6):
            raise ValueError(f"q1_fit: kl_per_dim must be 2 non-negative numbers (one per latent dimension), got {kl}")
        res.values["kl_per_dim"] = kl
        run.save(kit.curves(res, exp), f"q1_{exp.data}.png")
        print(f"{exp.data}: KL per latent dimension {np.round(kl, 4).tolist()} nats (total {kl.sum():.4f})")
        run.finish(exp, res, kl_per_dim=kl)
        results[exp.data] = res.values
    return results


def run_q2(q2_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 2: ``q2_fit(train, test, levels, quick=, seed=, device=)`` on ``digits`` ((N, 8, 8, 1) uint8,
    17 levels); returns ``(train_losses, test_losses, iwae, samples)``: -ELBO in nats/dim, the test set's
    IWAE bound in nats/dim (a float), and 64 samples (64, 8, 8, 1) uint8 in 0..16."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    exp = EXPECTED["q2/digits/VAE, -ELBO"]
    train_x, test_x = run.splits(exp.data)
    levels = data.info(exp.data).levels
    res = run.call(q2_fit, train_x, test_x, levels, returns=("train_losses", "test_losses", "iwae", "samples"))
    iwae = float(res["iwae"])
    samples = kit.check_levels(res["samples"], (None, 8, 8, 1), levels, "q2_fit samples")
    res.values.update(iwae=iwae, samples=samples)
    run.save(kit.curves(res, exp, kit.image_panel(samples, levels, "samples")), "q2.png")
    print(f"test -ELBO {metrics.bits_per_dim(res.test[-1]):.3f} bits/dim, IWAE {metrics.bits_per_dim(iwae):.3f} "
          "bits/dim")
    run.finish(exp, res, iwae=iwae)
    return res.values


def run_q3(q3_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 3: ``q3_fit(train, test, levels, quick=, seed=, device=)`` on ``digits``; returns
    ``(train_losses, test_losses, bound, codes_used, samples)``: the VQ-VAE's training loss per iteration,
    the prior's test NLL per epoch (nats per code), the test bound -log p(x|z_q) - log p(z_q) in nats/dim,
    the fraction of codebook entries used on the test set, and 64 samples (64, 8, 8, 1) uint8."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    exp = EXPECTED["q3/digits/VQ-VAE + PixelCNN prior, bound"]
    train_x, test_x = run.splits(exp.data)
    levels = data.info(exp.data).levels
    res = run.call(q3_fit, train_x, test_x, levels,
                   returns=("train_losses", "test_losses", "bound", "codes_used", "samples"))
    bound, used = float(res["bound"]), float(res["codes_used"])
    if not (np.isfinite(bound) and bound > 0 and 0 < used <= 1):
        raise ValueError(f"q3_fit: bound must be a positive number (nats/dim) and codes_used in (0, 1], "
                         f"got {bound}, {used}")
    samples = kit.check_levels(res["samples"], (None, 8, 8, 1), levels, "q3_fit samples")
    res.values.update(bound=bound, codes_used=used, samples=samples)
    run.save(kit.curves(res, None, kit.image_panel(samples, levels, "prior samples"), title="VQ-VAE"), "q3.png")
    print(f"codes used {used:.0%}")
    run.report(exp, bound)
    run.record(exp.key, train_losses=res.train, test_losses=res.test, seconds=res.seconds, bound=bound,
               codes_used=used)
    return res.values


def run_q4(q4_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 4: ``q4_fit(train, test, quick=, seed=, device=)`` on ``bars`` ((N, 4, 4, 1) uint8, 0/1);
    returns ``(train_losses, test_losses, samples)``: the exact NLL (nats/dim) per iteration and per epoch,
    and 64 samples (64, 4, 4, 1) uint8."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    exp = EXPECTED["q4/bars/Helmholtz machine, exact NLL"]
    train_x, test_x = run.splits(exp.data)
    res = run.call(q4_fit, train_x, test_x, returns=("train_losses", "test_losses", "samples"))
    samples = kit.check_levels(res["samples"], (None, 4, 4, 1), 2, "q4_fit samples")
    res.values["samples"] = samples

    def panel(ax):
        plot.samples_grid(samples, levels=2, ax=ax, title="samples")

    run.save(kit.curves(res, exp, panel), "q4.png")
    run.finish(exp, res)
    return res.values
