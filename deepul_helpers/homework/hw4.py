"""Runners for homework 4 (implicit models), built on ``homework.kit``.

Each ``run_qk`` loads the data, calls the student's function through the kit (timed, its return contract
checked), draws the plots (shown in the notebook and saved under ``out/hw4/``), prints the measured figures
next to the expected ones, and records them (``notebook.record``).

A GAN has no test loss: questions 1-3 are judged on sample-quality figures measured by the course's metrics
(``metrics.sample_quality``): the Wasserstein-1 distance to the test data (1D), modes covered and the share
of high-quality samples (2D grid), the Frechet distance in the course feature space (digits). Their
expected values live in ``QUALITY``, the losses (question 4's exact NLL) in ``EXPECTED``; the notebook
states each row's ``markdown()`` verbatim.

This module imports no reference implicit model: the grader notices a homework importing the reference
implementation of what a question asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepul_helpers import config, data
from deepul_helpers.homework import kit
from deepul_helpers.metrics import sample_quality as sq

ASSIGNMENT = "hw4_implicit"
EBM_BOX = (-4.5, 4.5, -3.5, 3.5)  # question 4's box: it holds all but ~1e-10 of the moons' mass
# Reference solution (solutions/hw4_implicit/hw4.ipynb), full mode, seed 0, measured with its runners
# (2026-12-01); seconds: wall time of each question (the runner's timing of the student's functions) on the
# idle 2-core CPU (2026-12-08; under heavy load, load average ~12, they were 36, 52, 192 and 71 s). The whole
# notebook: 69 s in full mode, 10 s in quick mode.
EXPECTED = kit.table(
    kit.Expected("q4", "moons", loss=1.390, tol=0.08, seconds=10, variant="EBM, exact grid NLL"),
)


@dataclass(frozen=True)
class Quality:
    """An expected sample-quality figure of the reference solution (full mode, seed 0).

    ``value`` with the tolerance ``tol`` a correct solution meets; ``better``: "lower" or "higher"
    (a figure beyond the tolerance on the good side is fine)."""

    question: str
    data: str
    figure: str
    value: float
    tol: float
    seconds: float
    better: str = "lower"
    variant: str = ""

    @property
    def key(self) -> str:
        return "/".join(p for p in (self.question, self.data, self.variant, self.figure) if p)

    @property
    def limit(self) -> float:
        """The worst value a correct solution reaches."""
        return self.value + self.tol if self.better == "lower" else self.value - self.tol

    @property
    def bound(self) -> str:
        return f"{'at most' if self.better == 'lower' else 'at least'} {self.limit:.3g}"

    def ok(self, measured: float) -> bool:
        return measured <= self.limit if self.better == "lower" else measured >= self.limit

    def markdown(self) -> str:
        """The line the notebook's markdown states for this row (a test checks it is there)."""
        what = f"`{self.data}`" + (f", {self.variant}" if self.variant else "")
        return f"- {what}: {self.figure} **{self.value:.3g}** ({self.bound} passes), about {self.seconds:.0f} s"


QUALITY = {q.key: q for q in (
    Quality("q1", "mixture_1d", "W1 to the test data", 0.33, 0.20, 7, variant="non-saturating"),
    Quality("q2", "gaussians_25_narrow", "modes covered (of 25)", 18, 5, 9, better="higher"),
    Quality("q2", "gaussians_25_narrow", "high-quality share", 0.017, 0.015, 9, better="higher"),
    Quality("q3", "digits", "Frechet distance to the test digits", 0.54, 0.40, 33),
)}


def markdown(question: str) -> str:
    """The block a notebook states under question ``question`` (paste it verbatim)."""
    rows = [q.markdown() for q in QUALITY.values() if q.question == question]
    return "**Expected figures** (measured by the course's metrics) and time:\n" + "\n".join(rows)


def report_quality(run: kit.Run, q: Quality, measured: float) -> str:
    """Print a measured figure next to the expected one, and record it under ``q.key``."""
    line = (f"{q.key}: {measured:.4g}; expected {q.value:.3g} ({q.bound} passes; reference, full mode, "
            f"{q.seconds:.0f} s)")
    if run.quick:
        line += "  [quick mode: training was cut short, compare only after a full run]"
    elif not q.ok(measured):
        line += "  <-- outside the tolerance"
    print(line)
    run.lines.append(line)
    run.record(q.key, value=float(measured))
    return line


def _w1(samples: np.ndarray, reference: np.ndarray) -> float:
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(samples.reshape(-1), reference.reshape(-1)))


def run_q1(q1_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 1: ``q1_fit(train, loss, quick=, seed=, device=)`` on ``mixture_1d`` ((N, 1) float32), for
    ``loss`` in ("minimax", "nonsaturating"); returns ``(d_losses, g_losses, samples, grad_at_start)``."""
    import matplotlib.pyplot as plt

    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    train_x, test_x = run.splits("mixture_1d")
    results, fig = {}, plt.figure(figsize=(11, 3.6))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, loss in zip(axes, ("minimax", "nonsaturating")):
        res = run.call(q1_fit, train_x, loss, returns=("d_losses", "g_losses", "samples", "grad_at_start"),
                       label=f"q1_fit({loss})")
        samples = kit.to_numpy(res["samples"], "samples").astype(np.float64)
        if samples.ndim != 2 or samples.shape[1] != 1 or not np.all(np.isfinite(samples)):
            raise ValueError(f"q1_fit: samples must be a finite (n, 1) array, got shape {samples.shape}")
        grad = float(res["grad_at_start"])
        w1 = _w1(samples, test_x)
        ax.hist(test_x[:, 0], bins=80, range=(-4.5, 4.5), density=True, alpha=0.5, label="test data")
        ax.hist(samples[:, 0], bins=80, range=(-4.5, 4.5), density=True, alpha=0.5, label="your samples")
        ax.set_title(f"{loss}: W1 {w1:.3f}, gradient at start {grad:.3g}", fontsize=9)
        results[loss] = {"w1": w1, "grad_at_start": grad, "seconds": res.seconds}
        run.record(f"q1/mixture_1d/{loss}", w1=w1, grad_at_start=grad, seconds=res.seconds)
    axes[0].legend(fontsize=8)
    run.save(fig, "q1_mixture_1d.png")
    ratio = results["nonsaturating"]["grad_at_start"] / max(results["minimax"]["grad_at_start"], 1e-12)
    print(f"generator gradient at the start: non-saturating / minimax = {ratio:.2f}")
    report_quality(run, QUALITY["q1/mixture_1d/non-saturating/W1 to the test data"], results["nonsaturating"]["w1"])
    return results


def _d_curve_and(d_losses, panel):
    """The discriminator's loss per iteration beside ``panel(ax)``."""
    import matplotlib.pyplot as plt

    d = kit.to_numpy(d_losses, "d_losses").astype(np.float64).reshape(-1)
    if d.size < 1 or not np.all(np.isfinite(d)):
        raise ValueError("d_losses must hold one finite discriminator loss per iteration")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].plot(d, lw=0.6)
    axes[0].set(xlabel="iteration", title="discriminator loss")
    panel(axes[1])
    fig.tight_layout()
    return fig


def _scatter_panel(samples, name):
    def draw(ax):
        x = data.load(name, "test")
        ax.scatter(x[:, 0], x[:, 1], s=3, c="lightgray")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4)
        ax.set_title(f"{name}: your samples")

    return draw


def run_q2(q2_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 2: ``q2_fit(train, quick=, seed=, device=)`` on ``gaussians_25_narrow`` ((N, 2) float32);
    returns ``(d_losses, samples)`` with ``samples`` (2500, 2)."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    name = "gaussians_25_narrow"
    train_x, _ = run.splits(name)
    res = run.call(q2_fit, train_x, returns=("d_losses", "samples"))
    samples = kit.to_numpy(res["samples"], "samples").astype(np.float64)
    if samples.shape != (2500, 2) or not np.all(np.isfinite(samples)):
        raise ValueError(f"q2_fit: samples must be a finite (2500, 2) array, got shape {samples.shape}")
    cov = sq.mode_coverage(samples, name)
    run.save(_d_curve_and(res["d_losses"], _scatter_panel(samples, name)), "q2_grid.png")
    print(f"{cov['modes_covered']}/25 modes covered, {cov['high_quality']:.1%} high-quality samples, "
          f"reverse KL {cov['reverse_kl']:.3f}")
    report_quality(run, QUALITY[f"q2/{name}/modes covered (of 25)"], cov["modes_covered"])
    report_quality(run, QUALITY[f"q2/{name}/high-quality share"], cov["high_quality"])
    run.record(f"q2/{name}", seconds=res.seconds, reverse_kl=cov["reverse_kl"])
    return {"coverage": cov, "samples": samples, "seconds": res.seconds}


def run_q3(q3_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 3: ``q3_fit(train, quick=, seed=, device=)`` on ``digits`` ((N, 8, 8, 1) uint8, 0..16);
    returns ``(d_losses, samples)`` with ``samples`` (1000, 8, 8, 1) integer levels."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    train_x, test_x = run.splits("digits")
    res = run.call(q3_fit, train_x, returns=("d_losses", "samples"))
    samples = kit.check_levels(res["samples"], (1000, 8, 8, 1), 17, "q3_fit samples")
    fd = sq.frechet_distance(samples, test_x)
    kid, kid_se = sq.kernel_distance(samples, test_x)
    modes = sq.digit_modes(samples)
    run.save(_d_curve_and(res["d_losses"], kit.image_panel(samples[:64], 17, f"your samples: FD {fd:.2f}")),
             "q3_digits.png")
    print(f"FD {fd:.3f}, KID {kid:.4f} ± {kid_se:.4f}, {modes['covered']}/10 digit classes covered "
          f"(training digits against the test digits: FD {sq.frechet_distance(train_x, test_x):.3f})")
    report_quality(run, QUALITY["q3/digits/Frechet distance to the test digits"], fd)
    run.record("q3/digits", kid=kid, covered=modes["covered"], seconds=res.seconds)
    return {"fd": fd, "kid": kid, "modes": modes, "seconds": res.seconds}


def run_q4(q4_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 4: ``q4_fit(train, test, extent, grid, quick=, seed=, device=)`` on ``moons``; returns
    ``(train_losses, test_losses, log_density)``, ``log_density`` (grid, grid) normalised on the grid."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    exp = EXPECTED["q4/moons/EBM, exact grid NLL"]
    train_x, test_x = run.splits(exp.data)
    extent, grid = EBM_BOX, config.pick(200, 60, quick=run.quick)
    res = run.call(q4_fit, train_x, test_x, extent, grid, returns=("train_losses", "test_losses", "log_density"))
    table = kit.to_numpy(res["log_density"], "log_density").astype(np.float64)
    cell = (extent[1] - extent[0]) * (extent[3] - extent[2]) / grid**2
    if table.shape != (grid, grid) or not abs(np.exp(table).sum() * cell - 1) < 1e-3:
        raise ValueError(f"q4_fit: log_density must be ({grid}, {grid}) with sum(exp(log_density)) * cell area = 1")

    def panel(ax):
        ax.imshow(np.exp(table).T, origin="lower", extent=extent, cmap="viridis")
        ax.set_title("your EBM's density")

    run.save(kit.curves(res, exp, panel), "q4_moons.png")
    run.finish(exp, res)
    return res.values
