"""Runners for homework 1 (autoregressive models).

Each ``run_qk`` loads the data, calls the student's function with the documented
contract, checks what came back (with an error that says what is wrong), plots the
training curves and samples, saves the plots under ``out/hw1/``, prints the final test
loss next to the expected one, and hands the numbers to ``notebook.record``.

The expected test losses are those of the reference solution in full mode
(``quick=False, seed=0``); ``EXPECTED`` keeps them with the tolerance a correct solution
should meet and the full-mode time of each run, measured on a shared (busy) 2-core CPU.
"""

from __future__ import annotations

import math
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

from deepul_helpers import config, data, notebook, plot
from deepul_helpers.homework.kit import output_dir as _output_dir

# (question, data set, variant) -> (test loss in nats/dim, tolerance, full-mode seconds on a 2-core CPU)
EXPECTED: dict[tuple[str, str, str], tuple[float, float, float]] = {
    ("q1", "1d_a", "histogram"): (2.6271, 0.02, 5),
    ("q1", "1d_a", "logistic"): (2.6213, 0.02, 1),
    ("q1", "1d_b", "histogram"): (4.3934, 0.02, 1),
    ("q1", "1d_b", "logistic"): (4.3952, 0.02, 1),
    ("q2", "image_density_25", "made"): (2.9857, 0.03, 17),
    ("q2", "shapes", "made"): (0.1291, 0.02, 54),
    ("q3", "shapes", "pixelcnn"): (0.0586, 0.02, 144),
    ("q3", "digits", "pixelcnn"): (1.3378, 0.1, 31),
    ("q3", "shapes_colored", "pixelcnn"): (0.2026, 0.05, 218),
    ("q4", "digits", "transformer"): (1.3473, 0.1, 83),
    ("q5", "text_grammar", "transformer"): (0.3445, 0.03, 120),
}

Q1_DATA = ("1d_a", "1d_b")
Q1_MODELS = ("histogram", "logistic")
Q2_DATA = ("image_density_25", "shapes")
Q3_DATA = ("shapes", "digits", "shapes_colored")
Q4_DATA = "digits"
Q5_DATA = "text_grammar"
QUICK_CROP = 10  # quick mode cuts 20x20 images to their central 10x10: a check run takes seconds


# ----------------------------------------------------------------------------- plumbing


def output_dir(out=None) -> Path:
    """Where homework 1's plots go (see ``deepul_helpers.homework.output_dir``)."""
    return _output_dir("hw1", out)


def load_images(name: str, seed: int, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train and test NHWC images; in quick mode images larger than ``QUICK_CROP`` are centre-cropped."""
    train_x, test_x = data.load(name, "train", seed=seed), data.load(name, "test", seed=seed)
    h, w = train_x.shape[1:3]
    if config.is_quick(quick) and h > QUICK_CROP:
        top, left = (h - QUICK_CROP) // 2, (w - QUICK_CROP) // 2
        train_x, test_x = (x[:, top:top + QUICK_CROP, left:left + QUICK_CROP] for x in (train_x, test_x))
    return np.ascontiguousarray(train_x), np.ascontiguousarray(test_x)


def _to_numpy(x, what: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # noqa: BLE001 - any failure is the same contract error
        raise TypeError(f"{what}: expected an array, got {type(x).__name__}") from e


def check_losses(train_losses, test_losses, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Train losses per iteration and test losses per epoch (with the one before training)."""
    train = _to_numpy(train_losses, f"{what} train_losses").astype(np.float64).reshape(-1)
    test = _to_numpy(test_losses, f"{what} test_losses").astype(np.float64).reshape(-1)
    if len(train) < 1:
        raise ValueError(f"{what}: train_losses is empty; return one loss per training iteration")
    if len(test) < 2:
        raise ValueError(f"{what}: test_losses has {len(test)} values; return the test loss before "
                         "training and after every epoch (epochs + 1 values)")
    if not (np.all(np.isfinite(train)) and np.all(np.isfinite(test))):
        raise ValueError(f"{what}: the losses contain NaN or inf")
    return train, test


def timed_fit(fn, call: str, third: str, *args, **kwargs):
    """Run a student's ``qk_fit(*args, **kwargs)`` and check it returned ``(train_losses,
    test_losses, <third>)``. Returns (train, test, the third value, seconds)."""
    t0 = time.perf_counter()
    res = fn(*args, **kwargs)
    seconds = time.perf_counter() - t0
    if not (isinstance(res, tuple) and len(res) == 3):
        raise TypeError(f"{call.split('(')[0]} must return a tuple (train_losses, test_losses, {third})")
    train, test = check_losses(res[0], res[1], call)
    return train, test, res[2], seconds


def check_levels_array(x, shape: tuple, levels: int, what: str) -> np.ndarray:
    """``x`` as an integer array of the given shape (None = any size) with values in 0..levels-1."""
    x = _to_numpy(x, what)
    if not (np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{what}: expected integer levels, got dtype {x.dtype}")
    if x.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, x.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{what}: expected shape {want}, got {x.shape}")
    if x.size and (x.min() < 0 or x.max() >= levels):
        raise ValueError(f"{what}: values must lie in 0..{levels - 1}, got {x.min()}..{x.max()}")
    return x


def _report(key: tuple[str, str, str], test_losses: np.ndarray, quick: bool) -> str:
    expected, tol, seconds = EXPECTED[key]
    entropy = data.info(key[1]).entropy
    line = (f"{key[0]} {key[1]:<16} {key[2]:<11} final test loss {test_losses[-1]:.4f} nats/dim "
            f"({test_losses[-1] / math.log(2):.4f} bits/dim); expected {expected:.3f} ± {tol:.3f} "
            f"(reference, full mode, ~{seconds:.0f} s on a 2-core CPU)")
    if entropy is not None:
        line += f"; true entropy {entropy:.4f}"
    if quick:
        line += "  [quick mode: training was cut short, compare only after a full run]"
    elif abs(test_losses[-1] - expected) > tol:
        line += "  <-- outside the tolerance"
    print(line)
    return line


def _save(fig, out: Path, name: str) -> Path:
    """Save the figure under ``out``, show it when running in a notebook, then free it."""
    path = out / name
    fig.savefig(path, dpi=100, bbox_inches="tight")
    if "ipykernel" in sys.modules:
        from IPython.display import display

        display(fig)
    plot.close(fig)
    return path


def _record(key: tuple[str, str, str], train: np.ndarray, test: np.ndarray, seconds: float) -> None:
    prefix = "/".join(key)
    notebook.record(f"{prefix}/train_losses", train)
    notebook.record(f"{prefix}/test_losses", test)
    notebook.record(f"{prefix}/seconds", seconds)


def _curves_and(extra_plot, train, test, key, reference=None):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    plot.training_curves(train, test, title=f"{key[1]}: {key[2]}", ax=axes[0], reference=reference)
    extra_plot(axes[1])
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- question 1


def run_q1(q1_fit, *, quick: bool = False, seed: int = 0, device="auto", out=None) -> dict:
    """Question 1: ``q1_fit(train, test, levels, model, quick=, seed=, device=)`` on ``1d_a``, ``1d_b``
    with ``model`` in ("histogram", "logistic"); returns ``(train_losses, test_losses, probs)``."""
    out = output_dir(out)
    results = {}
    for name in Q1_DATA:
        info = data.info(name)
        train_x, test_x = data.load(name, "train", seed=seed), data.load(name, "test", seed=seed)
        true = data.true_distribution(name).probs
        for model in Q1_MODELS:
            key = ("q1", name, model)
            train, test, probs, seconds = timed_fit(q1_fit, f"q1_fit({name}, {model})", "probs", train_x, test_x,
                                                    info.levels, model, quick=quick, seed=seed, device=device)
            probs = _to_numpy(probs, "probs").astype(np.float64)
            if probs.shape != (info.levels,) or not np.isclose(probs.sum(), 1.0, atol=1e-3):
                raise ValueError(f"q1_fit({name}, {model}): probs must be ({info.levels},) summing to 1, "
                                 f"got shape {probs.shape}, sum {probs.sum():.4g}")
            right = partial(_hist_panel, train_x, info.levels, probs, true, f"{name}: {model} vs data")
            fig = _curves_and(right, train, test, key, reference=info.entropy)
            _save(fig, out, f"q1_{name}_{model}.png")
            _report(key, test, quick)
            _record(key, train, test, seconds)
            notebook.record("/".join(key) + "/probs", probs)
            results[(name, model)] = {"train_losses": train, "test_losses": test, "probs": probs}
    return results


# ----------------------------------------------------------------------------- question 2


def _hist2d(points: np.ndarray, levels: int) -> np.ndarray:
    table = np.zeros((levels, levels))
    np.add.at(table, (points[:, 0], points[:, 1]), 1.0)
    return table / max(len(points), 1)


def run_q2(q2_fit, *, quick: bool = False, seed: int = 0, device="auto", out=None) -> dict:
    """Question 2: ``q2_fit(train, test, levels, n_samples, quick=, seed=, device=)`` on
    ``image_density_25`` ((N, 2) int64) and ``shapes`` (flattened to (N, 400) int64; (N, 100) in quick
    mode, see ``load_images``); returns ``(train_losses, test_losses, samples)`` with samples
    ``(n_samples, D)`` int64."""
    out = output_dir(out)
    results = {}
    for name in Q2_DATA:
        info = data.info(name)
        if info.kind == "image":
            train_x, test_x = load_images(name, seed, quick)
        else:
            train_x, test_x = data.load(name, "train", seed=seed), data.load(name, "test", seed=seed)
        shape = tuple(train_x.shape[1:])
        d = int(np.prod(shape))
        train_x, test_x = (x.reshape(len(x), d).astype(np.int64) for x in (train_x, test_x))
        n = config.pick(10_000, 500, quick) if info.kind == "2d_discrete" else config.pick(36, 4, quick)
        key = ("q2", name, "made")
        train, test, samples, seconds = timed_fit(q2_fit, f"q2_fit({name})", "samples", train_x, test_x,
                                                  info.levels, n, quick=quick, seed=seed, device=device)
        samples = check_levels_array(samples, (n, d), info.levels, f"q2_fit({name}) samples")
        if info.kind == "2d_discrete":
            right = partial(_density_panel, data.true_distribution(name).probs, samples, info.levels)
        else:
            right = partial(_image_panel, samples.reshape(-1, *shape), info.levels, "MADE samples")
        _save(_curves_and(right, train, test, key, reference=info.entropy), out, f"q2_{name}.png")
        _report(key, test, quick)
        _record(key, train, test, seconds)
        results[name] = {"train_losses": train, "test_losses": test, "samples": samples}
    return results


# ----------------------------------------------------------------------------- question 3


def _image_panel(samples, levels, title, ax):
    grid = plot.image_grid(np.asarray(samples).astype(np.uint8), levels=levels)
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray")
    ax.set_title(title)
    ax.axis("off")


def _hist_panel(train_x, levels, probs, true, title, ax):
    plot.hist_1d(train_x, levels, model_probs=probs, true_probs=true, title=title, ax=ax)


def _density_panel(true, samples, levels, ax):
    hist = _hist2d(samples, levels)
    both = np.concatenate([true / true.max(), np.ones((true.shape[0], 1)), hist / max(hist.max(), 1e-12)], axis=1)
    ax.imshow(both, cmap="gray")
    ax.set_title("true density | histogram of MADE samples")
    ax.axis("off")


def run_q3(q3_fit, *, quick: bool = False, seed: int = 0, device="auto", out=None) -> dict:
    """Question 3: ``q3_fit(train, test, levels, n_samples, quick=, seed=, device=)`` on ``shapes``,
    ``digits`` and ``shapes_colored`` (NHWC uint8, cropped in quick mode, see ``load_images``);
    returns ``(train_losses, test_losses, samples)`` with samples ``(n_samples, H, W, C)`` uint8."""
    out = output_dir(out)
    results = {}
    for name in Q3_DATA:
        info = data.info(name)
        train_x, test_x = load_images(name, seed, quick)
        n = config.pick(16, 4, quick)
        key = ("q3", name, "pixelcnn")
        train, test, samples, seconds = timed_fit(q3_fit, f"q3_fit({name})", "samples", train_x, test_x,
                                                  info.levels, n, quick=quick, seed=seed, device=device)
        samples = check_levels_array(samples, (n, *train_x.shape[1:]), info.levels, f"q3_fit({name}) samples")
        right = partial(_image_panel, samples, info.levels, f"PixelCNN samples ({name})")
        _save(_curves_and(right, train, test, key), out, f"q3_{name}.png")
        _report(key, test, quick)
        _record(key, train, test, seconds)
        results[name] = {"train_losses": train, "test_losses": test, "samples": samples}
    return results


# ----------------------------------------------------------------------------- question 4


def time_generate(generate, lengths, n: int, repeats: int = 3) -> dict[str, list[float]]:
    """Median seconds of ``generate(n, length, use_cache)`` for each length, with and without cache."""
    series = {"with KV cache": [], "naive (recompute)": []}
    for length in lengths:
        for label, cache in (("with KV cache", True), ("naive (recompute)", False)):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                generate(n, int(length), cache)
                times.append(time.perf_counter() - t0)
            series[label].append(float(np.median(times)))
    return series


def run_q4(q4_fit, *, quick: bool = False, seed: int = 0, device="auto", out=None) -> dict:
    """Question 4: ``q4_fit(train, test, levels, quick=, seed=, device=)`` on ``digits`` (NHWC uint8);
    returns ``(train_losses, test_losses, generate)`` where ``generate(n, length, use_cache)`` returns
    ``(n, length)`` int64 pixels in raster order. Plots samples and sampling time vs length."""
    import torch

    out = output_dir(out)
    name = Q4_DATA
    info = data.info(name)
    h, w, c = info.shape
    train_x, test_x = data.load(name, "train", seed=seed), data.load(name, "test", seed=seed)
    key = ("q4", name, "transformer")
    train, test, generate, seconds = timed_fit(q4_fit, "q4_fit", "generate", train_x, test_x, info.levels,
                                               quick=quick, seed=seed, device=device)
    if not callable(generate):
        raise TypeError("q4_fit must return a tuple (train_losses, test_losses, generate) with generate callable")
    n = config.pick(36, 4, quick)
    torch.manual_seed(seed)
    tokens = check_levels_array(generate(n, h * w * c, True), (n, h * w * c), info.levels, "generate(n, L, True)")
    samples = tokens.reshape(n, h, w, c).astype(np.uint8)
    lengths = [8, 16, 32, 64] if not quick else [4, 8]
    series = time_generate(generate, lengths, n=config.pick(16, 2, quick), repeats=config.pick(3, 1, quick))
    right = partial(_image_panel, samples, info.levels, "Transformer samples (KV cache)")
    _save(_curves_and(right, train, test, key), out, "q4_digits.png")
    fig = plot.timing(lengths, series, xlabel="tokens generated", ylabel="seconds (median)",
                      title="sampling time vs length")
    _save(fig, out, "q4_timing.png")
    _report(key, test, quick)
    for label, ys in series.items():
        print(f"   {label:<18} " + "  ".join(f"L={L}: {t * 1000:.1f} ms" for L, t in zip(lengths, ys)))
    _record(key, train, test, seconds)
    notebook.record("q4/timing", {"lengths": lengths, **series})
    return {"train_losses": train, "test_losses": test, "samples": samples, "timing": series,
            "lengths": lengths}


# ----------------------------------------------------------------------------- question 5


def run_q5(q5_fit, *, quick: bool = False, seed: int = 0, device="auto", out=None) -> dict:
    """Question 5: ``q5_fit(train, test, vocab_size, n_samples, quick=, seed=, device=)`` on
    ``text_grammar`` ((N, T) int64 character ids); returns ``(train_losses, test_losses, samples)``
    with samples ``(n_samples, T)`` int64. Prints the decoded samples."""
    out = output_dir(out)
    name = Q5_DATA
    info = data.info(name)
    vocab = len(info.vocab)
    train_x, test_x = data.load(name, "train", seed=seed), data.load(name, "test", seed=seed)
    n = config.pick(8, 2, quick)
    key = ("q5", name, "transformer")
    train, test, samples, seconds = timed_fit(q5_fit, "q5_fit", "samples", train_x, test_x, vocab, n,
                                              quick=quick, seed=seed, device=device)
    samples = check_levels_array(samples, (n, train_x.shape[1]), vocab, "q5_fit samples")
    text = data.decode(name, samples)
    fig = plot.training_curves(train, test, title=f"{name}: char Transformer", reference=info.entropy)
    _save(fig, out, "q5_curves.png")
    _save(plot.text_lines(text, title="samples"), out, "q5_samples.png")
    _report(key, test, quick)
    for s in text:
        print("   " + s)
    _record(key, train, test, seconds)
    return {"train_losses": train, "test_losses": test, "samples": samples, "text": text}
