"""Runners for homework 1 (autoregressive models), built on ``homework.kit``.

Each ``run_qk`` loads the data, calls the student's function through the kit (timed, its return
contract checked), plots the training curves and samples under ``out/hw1/``, prints the final
test loss next to the expected one, and records the numbers (``notebook.record``).

``EXPECTED`` holds the reference solution's final test losses in full mode (``quick=False,
seed=0``), the tolerance a correct solution should meet and the full-mode seconds of each run,
measured on a shared (busy) 2-core CPU.
"""

from __future__ import annotations

import numpy as np

from deepul_helpers import config, data, notebook, plot
from deepul_helpers.homework import kit
from deepul_helpers.timing import best_of

ASSIGNMENT = "hw1_autoregressive"
E = kit.Expected
EXPECTED = kit.table(
    E("q1", "1d_a", 2.6271, 0.02, 5, "histogram"),
    E("q1", "1d_a", 2.6213, 0.02, 1, "logistic"),
    E("q1", "1d_b", 4.3934, 0.02, 1, "histogram"),
    E("q1", "1d_b", 4.3952, 0.02, 1, "logistic"),
    E("q2", "image_density_25", 2.9857, 0.03, 17, "made"),
    E("q2", "shapes", 0.1291, 0.02, 54, "made"),
    E("q3", "shapes", 0.0586, 0.02, 144, "pixelcnn"),
    E("q3", "digits", 1.3378, 0.1, 31, "pixelcnn"),
    E("q3", "shapes_colored", 0.2026, 0.05, 218, "pixelcnn"),
    E("q4", "digits", 1.3473, 0.1, 83, "transformer"),
    E("q5", "text_grammar", 0.3445, 0.03, 120, "transformer"),
)
FIT = ("train_losses", "test_losses")
QUICK_CROP = 10  # quick mode cuts 20x20 images to their central 10x10: a check run takes seconds


def load_images(name: str, seed: int, quick) -> tuple[np.ndarray, np.ndarray]:
    """Train and test NHWC images; in quick mode images larger than ``QUICK_CROP`` are centre-cropped."""
    train_x, test_x = data.load(name, "train", seed=seed), data.load(name, "test", seed=seed)
    h, w = train_x.shape[1:3]
    if config.is_quick(quick) and h > QUICK_CROP:
        top, left = (h - QUICK_CROP) // 2, (w - QUICK_CROP) // 2
        train_x, test_x = (x[:, top:top + QUICK_CROP, left:left + QUICK_CROP] for x in (train_x, test_x))
    return np.ascontiguousarray(train_x), np.ascontiguousarray(test_x)


def _hist2d(points: np.ndarray, levels: int) -> np.ndarray:
    table = np.zeros((levels, levels))
    np.add.at(table, (points[:, 0], points[:, 1]), 1.0)
    return table / max(len(points), 1)


def _density_panel(true, samples, levels):
    def draw(ax):
        hist = _hist2d(samples, levels)
        both = np.concatenate([true / true.max(), np.ones((true.shape[0], 1)), hist / max(hist.max(), 1e-12)], 1)
        ax.imshow(both, cmap="gray")
        ax.set_title("true density | histogram of MADE samples")
        ax.axis("off")

    return draw


# ----------------------------------------------------------------------------- questions


def run_q1(q1_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 1: ``q1_fit(train, test, levels, model, quick=, seed=, device=)`` on ``1d_a``, ``1d_b``
    with ``model`` in ("histogram", "logistic"); returns ``(train_losses, test_losses, probs)``."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    results = {}
    for exp in kit.rows(EXPECTED, "q1"):
        info = data.info(exp.data)
        train_x, test_x = run.splits(exp.data)
        res = run.call(q1_fit, train_x, test_x, info.levels, exp.variant, returns=(*FIT, "probs"),
                       label=f"q1_fit({exp.data}, {exp.variant})")
        probs = kit.to_numpy(res["probs"], "probs").astype(np.float64)
        if probs.shape != (info.levels,) or not np.isclose(probs.sum(), 1.0, atol=1e-3):
            raise ValueError(f"{res.label}: probs must be ({info.levels},) summing to 1, "
                             f"got shape {probs.shape}, sum {probs.sum():.4g}")
        res.values["probs"] = probs

        def panel(ax, train_x=train_x, info=info, probs=probs, exp=exp):
            plot.hist_1d(train_x, info.levels, model_probs=probs, true_probs=data.true_distribution(exp.data).probs,
                         title=f"{exp.data}: {exp.variant} vs data", ax=ax)

        run.save(kit.curves(res, exp, panel), f"q1_{exp.data}_{exp.variant}.png")
        run.finish(exp, res, probs=probs)
        results[(exp.data, exp.variant)] = res.values
    return results


def run_q2(q2_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 2: ``q2_fit(train, test, levels, n_samples, quick=, seed=, device=)`` on
    ``image_density_25`` ((N, 2) int64) and ``shapes`` (flattened to (N, 400) int64; (N, 100) in quick
    mode, see ``load_images``); returns ``(train_losses, test_losses, samples)`` with samples
    ``(n_samples, D)`` int64."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    results = {}
    for exp in kit.rows(EXPECTED, "q2"):
        info = data.info(exp.data)
        train_x, test_x = load_images(exp.data, seed, run.quick) if info.kind == "image" else run.splits(exp.data)
        shape = tuple(train_x.shape[1:])
        d = int(np.prod(shape))
        train_x, test_x = (x.reshape(len(x), d).astype(np.int64) for x in (train_x, test_x))
        n = config.pick(10_000, 500, run.quick) if info.kind == "2d_discrete" else config.pick(36, 4, run.quick)
        res = run.call(q2_fit, train_x, test_x, info.levels, n, returns=(*FIT, "samples"), label=f"q2_fit({exp.data})")
        samples = res.values["samples"] = kit.check_levels(res["samples"], (n, d), info.levels, f"{res.label} samples")
        if info.kind == "2d_discrete":
            panel = _density_panel(data.true_distribution(exp.data).probs, samples, info.levels)
        else:
            panel = kit.image_panel(samples.reshape(-1, *shape), info.levels, "MADE samples")
        run.save(kit.curves(res, exp, panel), f"q2_{exp.data}.png")
        run.finish(exp, res)
        results[exp.data] = res.values
    return results


def run_q3(q3_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 3: ``q3_fit(train, test, levels, n_samples, quick=, seed=, device=)`` on ``shapes``,
    ``digits`` and ``shapes_colored`` (NHWC uint8, cropped in quick mode, see ``load_images``);
    returns ``(train_losses, test_losses, samples)`` with samples ``(n_samples, H, W, C)`` uint8."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    results = {}
    for exp in kit.rows(EXPECTED, "q3"):
        info = data.info(exp.data)
        train_x, test_x = load_images(exp.data, seed, run.quick)
        n = config.pick(16, 4, run.quick)
        res = run.call(q3_fit, train_x, test_x, info.levels, n, returns=(*FIT, "samples"), label=f"q3_fit({exp.data})")
        samples = res.values["samples"] = kit.check_levels(res["samples"], (n, *train_x.shape[1:]), info.levels,
                                                           f"{res.label} samples")
        run.save(kit.curves(res, exp, kit.image_panel(samples, info.levels, f"PixelCNN samples ({exp.data})")),
                 f"q3_{exp.data}.png")
        run.finish(exp, res)
        results[exp.data] = res.values
    return results


def time_generate(generate, lengths, n: int, repeats: int = 3) -> dict[str, list[float]]:
    """Best-of-``repeats`` seconds of ``generate(n, length, use_cache)`` for each length, with and
    without the cache, interleaved in one loop (``timing.best_of``)."""
    series = {"with KV cache": [], "naive (recompute)": []}
    for length in lengths:
        for label, cache in (("with KV cache", True), ("naive (recompute)", False)):
            series[label].append(best_of(generate, n, int(length), cache, repeats=repeats, warmup=0).best_s)
    return series


def run_q4(q4_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 4: ``q4_fit(train, test, levels, quick=, seed=, device=)`` on ``digits`` (NHWC uint8);
    returns ``(train_losses, test_losses, generate)`` where ``generate(n, length, use_cache)`` returns
    ``(n, length)`` int64 pixels in raster order. Plots samples and sampling time vs length."""
    import torch

    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    (exp,) = kit.rows(EXPECTED, "q4")
    info = data.info(exp.data)
    h, w, c = info.shape
    train_x, test_x = run.splits(exp.data)
    res = run.call(q4_fit, train_x, test_x, info.levels, returns=(*FIT, "generate"), label="q4_fit")
    generate = res["generate"]
    if not callable(generate):
        raise TypeError("q4_fit must return a tuple (train_losses, test_losses, generate) with generate callable")
    n = config.pick(36, 4, run.quick)
    torch.manual_seed(seed)
    tokens = kit.check_levels(generate(n, h * w * c, True), (n, h * w * c), info.levels, "generate(n, L, True)")
    samples = tokens.reshape(n, h, w, c).astype(np.uint8)
    lengths = config.pick([8, 16, 32, 64], [4, 8], run.quick)
    repeats = config.pick(3, 1, run.quick)
    series = time_generate(generate, lengths, n=config.pick(16, 2, run.quick), repeats=repeats)
    run.save(kit.curves(res, exp, kit.image_panel(samples, info.levels, "Transformer samples (KV cache)")),
             "q4_digits.png")
    run.save(plot.timing(lengths, series, xlabel="tokens generated", ylabel="seconds (best of repeats)",
                         title="sampling time vs length", note=f"best of {repeats} repeats, no warm-up"),
             "q4_timing.png")
    run.finish(exp, res)
    for label, ys in series.items():
        print(f"   {label:<18} " + "  ".join(f"L={L}: {t * 1000:.1f} ms" for L, t in zip(lengths, ys)))
    notebook.record("q4/timing", {"lengths": lengths, **series})
    return {**res.values, "samples": samples, "timing": series, "lengths": lengths}


def run_q5(q5_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
    """Question 5: ``q5_fit(train, test, vocab_size, n_samples, quick=, seed=, device=)`` on
    ``text_grammar`` ((N, T) int64 character ids); returns ``(train_losses, test_losses, samples)``
    with samples ``(n_samples, T)`` int64. Prints the decoded samples."""
    run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
    (exp,) = kit.rows(EXPECTED, "q5")
    vocab = len(data.info(exp.data).vocab)
    train_x, test_x = run.splits(exp.data)
    n = config.pick(8, 2, run.quick)
    res = run.call(q5_fit, train_x, test_x, vocab, n, returns=(*FIT, "samples"), label="q5_fit")
    samples = res.values["samples"] = kit.check_levels(res["samples"], (n, train_x.shape[1]), vocab, "q5_fit samples")
    text = res.values["text"] = data.decode(exp.data, samples)
    run.save(kit.curves(res, exp, title=f"{exp.data}: char Transformer"), "q5_curves.png")
    run.save(plot.text_lines(text, title="samples"), "q5_samples.png")
    run.finish(exp, res)
    for s in text:
        print("   " + s)
    return res.values
