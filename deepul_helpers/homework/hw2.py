"""Runners for homework 2 (normalizing flows), built on ``homework.kit``.

Each ``run_qk`` loads the data, calls the student's function through the kit (timed, its return
contract checked), draws the plots (shown in the notebook and saved under ``out/hw2/``), prints
the final test loss next to the expected one, and records the numbers (``notebook.record``).

``make_conditioner`` builds the autoregressive conditioner question 4 times MAF and IAF with.

This module imports no reference flow: the grader notices a homework importing the reference
implementation of what a question asks for.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deepul_helpers import config, data, metrics, notebook, plot
from deepul_helpers.homework import kit
from deepul_helpers.timing import torch_threads

ASSIGNMENT = "hw2_flows"
# Final test losses (nats/dim) of the reference solution (`solutions/hw2_flows/hw2.ipynb`) in full mode,
# seed 0, with the tolerance a correct solution meets; seconds: CPU time of each training function run
# alone on one thread (timing.timed's cpu_s) of the shared 2-core CPU, measured under load (load ~14).
EXPECTED = kit.table(
    kit.Expected("q1", "gaussians_8", 1.7595, 0.05, 3),
    kit.Expected("q2", "moons", 1.3485, 0.05, 8),
    kit.Expected("q2", "checkerboard", 1.8624, 0.08, 7),  # its last epochs move by a few hundredths
    kit.Expected("q3", "digits", 1.4598, 0.10, 51),
)
FIT = ("train_losses", "test_losses", "model")


def _density_panels(run: kit.Run, name: str, model, train_x: np.ndarray, tag: str) -> None:
    import matplotlib.pyplot as plt

    extent = plot.extent_of(train_x, margin=0.15)
    res = config.pick(150, 40, quick=run.quick)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    plot.density_2d(data.true_distribution(name).log_prob, extent=extent, log=True, title=f"{name}: true density",
                    ax=axes[0], resolution=res)
    plot.density_2d(metrics.log_prob_numpy(model), extent=extent, log=True, title=f"{name}: your model",
                    ax=axes[1], resolution=res)
    run.save(fig, f"{tag}_{name}_density.png")


def _fit_2d(run: kit.Run, fn, exp: kit.Expected, samples: bool) -> dict:
    """Questions 1 and 2: train on a 2D data set, plot curves, densities (and samples), report."""
    train_x, test_x = run.splits(exp.data)
    res = run.call(fn, train_x, test_x, returns=FIT, label=f"{fn.__name__}({exp.data})")
    run.save(kit.curves(res, exp), f"{exp.question}_{exp.data}_curves.png")
    model = res["model"].eval()
    _density_panels(run, exp.data, model, train_x, exp.question)
    if samples:
        with torch.no_grad():
            s = kit.to_numpy(model.sample(config.pick(2000, 200, quick=run.quick)), "model.sample(n)")
        run.save(plot.scatter_2d(s, title=f"{exp.data}: samples of your model",
                                 lim=plot.extent_of(train_x, margin=0.15)), f"q2_{exp.data}_samples.png")
    run.finish(exp, res)
    return res.values


def run_q1(q1_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 1: ``q1_fit(train, test, quick=, seed=, device=)`` on ``gaussians_8`` ((N, 2) float32);
    returns ``(train_losses, test_losses, model)``: the 2D autoregressive CDF flow."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    return _fit_2d(run, q1_fit, EXPECTED["q1/gaussians_8"], samples=False)


def run_q2(q2_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 2: RealNVP, ``q2_fit(train, test, quick=, seed=, device=)`` on ``moons`` and
    ``checkerboard``; returns ``{name: {"train_losses", "test_losses", "model"}}``."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    return {exp.data: _fit_2d(run, q2_fit, exp, samples=True) for exp in kit.rows(EXPECTED, "q2")}


def run_q3(q3_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 3: RealNVP with dequantization, ``q3_fit(train, test, levels, quick=, seed=, device=)`` on
    ``digits`` (NHWC uint8); prints nats/dim and bits/dim."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    exp = EXPECTED["q3/digits"]
    info = data.info(exp.data)
    train_x, test_x = run.splits(exp.data)
    res = run.call(q3_fit, train_x, test_x, info.levels, returns=FIT, label="q3_fit")
    run.save(kit.curves(res, exp, title=f"Q3: dequantized RealNVP on {exp.data}"), "q3_curves.png")
    model = res["model"].eval()
    with torch.no_grad():
        samples = model.sample(64)
    run.save(plot.samples_grid(samples, nrow=8, levels=info.levels, title="samples of your model"), "q3_samples.png")
    run.save(plot.samples_grid(test_x[:64], nrow=8, levels=info.levels, title=f"{exp.data}: test images"),
             "q3_data.png")
    run.finish(exp, res, bits_per_dim=float(metrics.bits_per_dim(res.test[-1])))
    return res.values


# ----------------------------------------------------------------------------- question 4


class AutoregressiveConditioner(nn.Module):
    """A fixed random autoregressive map (B, D) -> (mu, log_scale), output i depending on v_<i only:

        mu = tanh(v) @ A.T + a,      log_scale = 0.5 * tanh(v @ B.T + b),

    with A, B masked by MADE's output mask in the natural order (strictly lower triangular). Cheap on
    purpose: question 4 counts and times calls of it.
    """

    def __init__(self, dim: int, seed: int = 0):
        from deepul_helpers.models.autoregressive.made import made_degrees, made_masks

        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        gen = torch.Generator().manual_seed(int(seed))
        (lower,) = made_masks(made_degrees(np.arange(dim), []))  # (D, D): output i sees inputs j < i
        scale = 1.0 / math.sqrt(max(dim - 1, 1))
        self.register_buffer("A", torch.randn(dim, dim, generator=gen) * scale * lower)
        self.register_buffer("B", torch.randn(dim, dim, generator=gen) * scale * lower)
        self.register_buffer("a", torch.randn(dim, generator=gen) * 0.5)
        self.register_buffer("b", torch.randn(dim, generator=gen) * 0.5)

    def forward(self, v):  # v (B, D)
        mu = torch.tanh(v) @ self.A.T + self.a  # (B, D)
        log_scale = 0.5 * torch.tanh(v @ self.B.T + self.b)  # (B, D), in (-0.5, 0.5)
        return mu, log_scale


def make_conditioner(dim: int, seed: int = 0) -> AutoregressiveConditioner:
    """An autoregressive conditioner for question 4 (see ``AutoregressiveConditioner``)."""
    return AutoregressiveConditioner(dim, seed)


Q4_KEYS = ("maf_log_prob_s", "maf_sample_s", "iaf_log_prob_s", "iaf_sample_s", "sampling_speedup",
           "density_speedup")


def run_q4(q4_timings, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 4: ``q4_timings(conditioner, dim, n=, repeats=)`` for growing D (on the CPU, one thread);
    returns ``{D: timings}``."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    dims = config.pick([2, 4, 8, 16, 32], [2, 8], quick=run.quick)
    n, repeats = config.pick(256, 32, quick=run.quick), config.pick(5, 2, quick=run.quick)
    results = {}
    with torch_threads(1):
        for d in dims:
            t = run.call(q4_timings, make_conditioner(d, seed=seed), d, n=n, repeats=repeats, returns=("timings",),
                         settings=False, label=f"q4_timings(D={d})")["timings"]
            missing = [k for k in Q4_KEYS if k not in t]
            if missing:
                raise KeyError(f"q4_timings must return the keys {list(Q4_KEYS)}; missing {missing}")
            results[d] = {k: float(t[k]) for k in Q4_KEYS}
    series = {k[:-2]: [results[d][k] * 1e3 for d in dims] for k in Q4_KEYS[:4]}
    run.save(plot.timing(dims, series, xlabel="dimension D", ylabel="milliseconds per batch", logy=True,
                         title=f"MAF vs IAF, batch of {n}", note=f"your q4_timings: best of {repeats}, 1 thread"),
             "q4_timing.png")
    last = results[dims[-1]]
    print(f"Q4 (D = {dims[-1]}): IAF samples {last['sampling_speedup']:.1f}x faster than MAF; "
          f"MAF evaluates densities {last['density_speedup']:.1f}x faster than IAF")
    notebook.record("q4/speedups", {"dim": dims[-1], "sampling": last["sampling_speedup"],
                                    "density": last["density_speedup"]})
    return results
