"""The plots every notebook needs. Each function returns the matplotlib Figure and saves it
to ``save_to`` when given (parent folders are created); nothing is written otherwise.

Works without a display (the Agg backend is chosen when none is configured).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import matplotlib

if os.environ.get("MPLBACKEND") is None and "ipykernel" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _finish(fig, save_to):
    fig.tight_layout()
    if save_to is not None:
        path = Path(save_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def _to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def images_to_float(images, levels: int | None = None) -> np.ndarray:
    """NHWC images (integer levels, or floats in [0, 1]) -> float array in [0, 1]."""
    x = _to_numpy(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"images must be NHWC (or NHW), got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.bool_):
        top = (levels - 1) if levels else max(int(x.max()), 1)
        x = x.astype(np.float32) / top
    return np.clip(x.astype(np.float32), 0.0, 1.0)


def image_grid(images, nrow: int | None = None, levels: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile NHWC images into one (H', W', C) float image in [0, 1]."""
    x = images_to_float(images, levels)
    n, h, w, c = x.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    ncol = int(math.ceil(n / nrow))
    grid = np.ones((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = x[i]
    return grid


def samples_grid(images, nrow=None, title=None, levels=None, save_to=None, ax=None):
    """A grid of NHWC images (uint8 levels or floats in [0, 1])."""
    grid = image_grid(images, nrow=nrow, levels=levels)
    fig, ax = _fig_ax(ax, figsize=(5, 5))
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return _finish(fig, save_to)


def _fig_ax(ax, figsize=(5, 4)):
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def scatter_2d(points, title=None, ax=None, save_to=None, s=2, alpha=0.5, color=None, lim=None):
    """Scatter of (N, 2) points."""
    p = _to_numpy(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {p.shape}")
    fig, ax = _fig_ax(ax, figsize=(4.5, 4.5))
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=alpha, color=color)
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(lim[0], lim[1])
        ax.set_ylim(lim[2], lim[3])
    if title:
        ax.set_title(title)
    return _finish(fig, save_to)


def extent_of(points, margin: float = 0.25) -> tuple[float, float, float, float]:
    """``(xmin, xmax, ymin, ymax)`` of (N, 2) points, widened by ``margin`` times the range on
    each side (the ``extent`` that ``density_2d``, ``scatter_2d(lim=)`` and ``metrics.grid_mass`` take)."""
    p = _to_numpy(points)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) == 0:
        raise ValueError(f"points must have shape (N, 2) with N >= 1, got {p.shape}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    lo, hi = p.min(0).astype(np.float64), p.max(0).astype(np.float64)
    pad = (hi - lo) * margin
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def histogram_2d(points, levels, normalize: bool = True) -> np.ndarray:
    """Table of (N, 2) integer points (row, column) on a ``levels`` grid (an int for a square grid,
    or (rows, cols)): counts, or frequencies summing to 1 with ``normalize``. Row = first coordinate,
    as ``density_2d`` draws a table and as the 2D discrete data sets store points."""
    p = _to_numpy(points)
    rows, cols = (int(levels), int(levels)) if np.ndim(levels) == 0 else (int(levels[0]), int(levels[1]))
    if p.ndim != 2 or p.shape[1] != 2 or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"points must be (N, 2) integers (row, column), got shape {p.shape}, dtype {p.dtype}")
    if len(p) and (p.min() < 0 or p[:, 0].max() >= rows or p[:, 1].max() >= cols):
        raise ValueError(f"points must lie in 0..{rows - 1} x 0..{cols - 1}, got rows {p[:, 0].min()}..{p[:, 0].max()}"
                         f", columns {p[:, 1].min()}..{p[:, 1].max()}")
    table = np.zeros((rows, cols))
    np.add.at(table, (p[:, 0], p[:, 1]), 1.0)
    return table / max(len(p), 1) if normalize else table


def density_2d(table_or_fn, extent=None, title=None, ax=None, save_to=None, resolution=200, log=False):
    """A 2D density as a heat map.

    ``table_or_fn`` is either a (H, W) table (e.g. a discrete 2D distribution; row = first
    coordinate) or a function mapping (M, 2) points to densities (or log-densities with
    ``log=True``), evaluated on a ``resolution``^2 grid over ``extent = (xmin, xmax, ymin, ymax)``.
    """
    fig, ax = _fig_ax(ax, figsize=(4.5, 4.5))
    if callable(table_or_fn):
        if extent is None:
            raise ValueError("density_2d with a function needs extent=(xmin, xmax, ymin, ymax)")
        xs = np.linspace(extent[0], extent[1], resolution)
        ys = np.linspace(extent[2], extent[3], resolution)
        gx, gy = np.meshgrid(xs, ys)
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
        vals = _to_numpy(table_or_fn(pts)).reshape(resolution, resolution)
        if log:
            vals = np.exp(vals)
        ax.imshow(vals, origin="lower", extent=extent, cmap="viridis", aspect="auto")
    else:
        table = _to_numpy(table_or_fn)
        if table.ndim != 2:
            raise ValueError(f"a density table must be 2D, got shape {table.shape}")
        ax.imshow(table, cmap="viridis", interpolation="nearest")
    if title:
        ax.set_title(title)
    return _finish(fig, save_to)


def receptive_field(field, at, title=None, ax=None, save_to=None):
    """An (H, W) boolean receptive field (e.g. ``metrics.receptive_field.receptive_field``) drawn for the
    output at pixel ``at = (i, j)``: pixels it sees, earlier pixels (raster order) it does not see (a
    blind spot), later pixels, and the pixel itself, with a legend under the image."""
    from matplotlib.patches import Patch

    f = _to_numpy(field).astype(bool)
    if f.ndim != 2:
        raise ValueError(f"a receptive field must be an (H, W) boolean map, got shape {f.shape}")
    h, w = f.shape
    i, j = (int(a) for a in at)
    earlier = np.arange(h * w).reshape(h, w) < i * w + j  # pixels before (i, j) in raster order
    img = np.where(f, 1.0, np.where(earlier, 0.45, 0.0))
    img[i, j] = 0.75
    fig, ax = _fig_ax(ax, figsize=(4, 4.4))
    ax.imshow(img, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    cmap = plt.get_cmap("magma")
    kinds = [(1.0, "seen"), (0.45, "earlier, not seen"), (0.0, "later"), (0.75, f"the pixel {(i, j)}")]
    ax.legend(handles=[Patch(facecolor=cmap(v), edgecolor="0.5", label=lab) for v, lab in kinds], loc="upper center",
              bbox_to_anchor=(0.5, -0.01), ncol=2, fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return _finish(fig, save_to)


def hist_1d(data, levels: int, model_probs=None, true_probs=None, title=None, ax=None, save_to=None):
    """Empirical histogram of 1D discrete data, with model and true probabilities overlaid."""
    x = _to_numpy(data).reshape(-1)
    fig, ax = _fig_ax(ax, figsize=(6, 3.5))
    freq = np.bincount(x.astype(np.int64), minlength=levels)[:levels] / max(len(x), 1)
    values = np.arange(levels)
    ax.bar(values, freq, color="0.75", label="data")
    if true_probs is not None:
        ax.step(values, _to_numpy(true_probs), where="mid", color="k", label="true")
    if model_probs is not None:
        ax.plot(values, _to_numpy(model_probs), "o-", ms=3, color="C3", label="model")
    ax.set_xlabel("value")
    ax.set_ylabel("probability")
    ax.legend()
    if title:
        ax.set_title(title)
    return _finish(fig, save_to)


def training_curves(history_or_train_losses, test_losses=None, title=None, ylabel="nats/dim", ax=None,
                    save_to=None, reference: float | None = None, reference_label="true entropy"):
    """Train loss per iteration and test loss per epoch (epoch 0 = before training) on one axis."""
    if hasattr(history_or_train_losses, "train_losses"):
        train = history_or_train_losses.train_losses
        test = history_or_train_losses.test_losses if test_losses is None else test_losses
    else:
        train, test = history_or_train_losses, test_losses
    train = _to_numpy(train).reshape(-1)
    fig, ax = _fig_ax(ax, figsize=(6, 3.5))
    ax.plot(np.arange(len(train)), train, lw=1, label="train (per iteration)")
    if test is not None and len(test):
        test = _to_numpy(test).reshape(-1)
        epochs = len(test) - 1
        its = np.linspace(0, len(train), epochs + 1) if epochs else np.array([0.0])
        ax.plot(its, test, "o-", label="test (per epoch)")
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=1, label=reference_label)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.legend()
    if title:
        ax.set_title(title)
    return _finish(fig, save_to)


def table(rows: list[dict], title=None, save_to=None, columns: list[str] | None = None, fontsize: int = 9,
          wrap: int = 60):
    """Rows of dicts drawn as a table figure that fits its text (comparison tables in notebooks and
    benchmarks). Floats show 4 significant digits, None a dash; a cell longer than ``wrap``
    characters is wrapped onto several lines. Every column is as wide as its widest text."""
    import textwrap

    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]

    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.4g}"
        return "\n".join(textwrap.wrap(str(v), wrap)) or str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows] or [["" for _ in columns]]
    header = ["\n".join(textwrap.wrap(str(c), wrap)) or str(c) for c in columns]
    fig = plt.figure(figsize=(8, 4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    tab = ax.table(cellText=body, colLabels=header, loc="center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(fontsize)
    cells = tab.get_celld()  # (row, col) -> Cell; row 0 is the header
    for c in range(len(columns)):
        cells[0, c].get_text().set_fontweight("bold")
    renderer = fig.canvas.get_renderer()
    pad_px, dpi = 1.6 * fontsize * fig.dpi / 72, fig.dpi
    col_px = [max(cells[r, c].get_text().get_window_extent(renderer).width for r in range(len(body) + 1)) + pad_px
              for c in range(len(columns))]
    lines = [max(cells[r, c].get_text().get_text().count("\n") + 1 for c in range(len(columns)))
             for r in range(len(body) + 1)]
    line_in = 1.45 * fontsize / 72  # one line of text with its padding, in inches
    width_in = sum(col_px) / dpi + 0.2
    table_h_in = sum(n * line_in + 0.08 for n in lines)
    title_in = 0.45 if title else 0.0
    height_in = table_h_in + title_in + 0.15
    fig.set_size_inches(width_in, height_in)
    ax.set_position((0.1 / width_in, 0.075 / height_in, 1 - 0.2 / width_in, table_h_in / height_in))
    axes_w_px, axes_h_in = (width_in - 0.2) * dpi, table_h_in
    for (r, c), cl in cells.items():
        cl.set_width(col_px[c] / axes_w_px)
        cl.set_height((lines[r] * line_in + 0.08) / axes_h_in)
    if title:
        fig.suptitle(title, y=1 - 0.1 / height_in, va="top", fontsize=fontsize + 2)
    if save_to is not None:
        path = Path(save_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def text_lines(lines, title=None, save_to=None, max_chars: int = 100):
    """Text samples as a figure (one line each, cut at ``max_chars``)."""
    lines = [str(s).replace("\n", "\\n")[:max_chars] for s in lines]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(lines) + 0.6))
    ax.axis("off")
    for i, s in enumerate(lines):
        ax.text(0.0, 1.0 - (i + 0.5) / max(len(lines), 1), s, family="monospace", fontsize=9, va="center")
    if title:
        ax.set_title(title, loc="left")
    return _finish(fig, save_to)


def waveforms(signals, title=None, save_to=None, n: int = 4):
    """The first ``n`` 1D signals, one row each."""
    x = _to_numpy(signals)
    n = min(n, len(x))
    fig, axes = plt.subplots(n, 1, figsize=(7, 1.2 * n + 0.4), sharex=True, squeeze=False)
    for i in range(n):
        axes[i, 0].plot(x[i], lw=0.8)
    if title:
        axes[0, 0].set_title(title)
    return _finish(fig, save_to)


def timing(xs, series: dict[str, list[float]], xlabel: str, ylabel="seconds", title=None, save_to=None,
           logy=False, ax=None, note: str | None = None):
    """Lines of measured times against one x (e.g. sampling time vs sequence length).

    ``note`` says under the axes how the times were measured (e.g. "best of 5 repeats, 1 thread";
    see ``deepul_helpers.timing``): a timing figure without it cannot be read honestly."""
    fig, ax = _fig_ax(ax, figsize=(5, 3.5))
    for label, ys in series.items():
        ax.plot(xs, ys, "o-", label=label)
    if note:
        import textwrap

        ax.annotate("\n".join(textwrap.wrap(note, 75)), xy=(0.5, 0), xycoords="axes fraction", xytext=(0, -34),
                    textcoords="offset points", ha="center", va="top", fontsize=8, color="0.3")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    if title:
        ax.set_title(title)
    return _finish(fig, save_to)


# Benchmark rows (what `deepul bench FAMILY` writes: one dict per model and data set, the fields of
# deepul_helpers.bench.schema) as figures; the website, the lectures and the round-up draw them with these.


def _bench_bars(rows, values, xlabel, title, save_to, ref=None, ref_label=None):
    labels = [f"{r.get('model', '?')}  ({r.get('dataset', '?')})" + (" [bound]" * (r.get("nll_kind") == "bound"))
              for r in rows]
    sets = list(dict.fromkeys(r.get("dataset") for r in rows))
    colors = [plt.cm.tab10(sets.index(r.get("dataset")) % 10) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(rows) + 1.4))
    ax.barh(range(len(rows)), values, color=colors)
    for i, v in enumerate(values):
        ax.annotate(f"{v:.3g}", (v, i), xytext=(3 if v >= 0 else -3, 0), textcoords="offset points",
                    ha="left" if v >= 0 else "right", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="0.3", lw=0.8)
    if ref is not None:
        ax.axvline(ref, color="k", ls="--", lw=1, label=ref_label)
        ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.15)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _finish(fig, save_to)


def bench_gap(rows: list[dict], title="gap to the true entropy", save_to=None):
    """Each model's test NLL above the data's true entropy, in % of the entropy (rows where it is known)."""
    rows = [r for r in rows if r.get("gap_percent") is not None]
    return _bench_bars(rows, [float(r["gap_percent"]) for r in rows], "test NLL above the entropy (% of it; 0 = "
                       "perfect)", title, save_to)


def bench_bits_per_dim(rows: list[dict], dataset: str, title=None, save_to=None):
    """Test bits/dim of every model on one data set, with the true entropy as a line where it is known."""
    rows = [r for r in rows if r.get("dataset") == dataset and r.get("test_bits_per_dim") is not None]
    entropy = next((r["entropy_nats_per_dim"] for r in rows if r.get("entropy_nats_per_dim") is not None), None)
    ref = None if entropy is None else entropy / math.log(2)
    return _bench_bars(rows, [float(r["test_bits_per_dim"]) for r in rows], "test bits/dim (lower is better)",
                       title or f"bits/dim on {dataset}", save_to, ref=ref, ref_label="true entropy")


def bench_sampling_time(rows: list[dict], title="sampling time against dimension", save_to=None):
    """Seconds to draw 1,000 samples against the number of dimensions of the data set, one point per row."""
    from deepul_helpers import data

    pts = [(data.info(r["dataset"]).dims, float(r["s_per_1000_samples"]), r.get("model", "?"))
           for r in rows if r.get("s_per_1000_samples") is not None and r.get("dataset") in data.names()]
    fig, ax = _fig_ax(None, figsize=(6, 4))
    for i, model in enumerate(dict.fromkeys(m for _, _, m in pts)):
        xs, ys = zip(*[(d, s) for d, s, m in pts if m == model])
        ax.plot(xs, ys, "o" if len(xs) == 1 else "o-", color=plt.cm.tab10(i % 10), label=model)
    ax.set_xscale("log")
    ax.set_yscale("log")
    dims = sorted({d for d, _, _ in pts})
    ax.set_xticks(dims, [str(d) for d in dims])  # the data sets' dimensions, not log-axis minor ticks
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("dimensions of one example")
    ax.set_ylabel("seconds per 1,000 samples")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    ax.set_title(title)
    return _finish(fig, save_to)


def bench_figures(rows: list[dict], title_prefix: str = "") -> list[tuple[str, object]]:
    """The figures of one benchmark's rows, as (name, Figure): the gap to the true entropy, bits/dim per model
    on each data set without a known entropy that several models share, sampling time against dimension."""
    pre = f"{title_prefix}: " if title_prefix else ""
    figs = []
    if any(r.get("gap_percent") is not None for r in rows):
        figs.append(("gap", bench_gap(rows, title=pre + "gap to the true entropy")))
    for name in dict.fromkeys(r.get("dataset") for r in rows):
        same = [r for r in rows if r.get("dataset") == name and r.get("test_bits_per_dim") is not None]
        if len(same) > 1 and all(r.get("entropy_nats_per_dim") is None for r in same):
            figs.append((f"bits_{name}", bench_bits_per_dim(rows, name, title=pre + f"bits/dim on {name}")))
    if any(r.get("s_per_1000_samples") is not None for r in rows):
        figs.append(("sampling_time", bench_sampling_time(rows, title=pre + "sampling time against dimension")))
    return figs


def close(fig=None) -> None:
    """Free a figure (or all) when a script makes many."""
    plt.close(fig if fig is not None else "all")


__all__ = [
    "samples_grid", "image_grid", "images_to_float", "scatter_2d", "extent_of", "histogram_2d", "density_2d",
    "receptive_field", "hist_1d",
    "training_curves", "table", "text_lines", "waveforms", "timing", "close",
    "bench_gap", "bench_bits_per_dim", "bench_sampling_time", "bench_figures",
    "curves", "grouped_bars", "image_panels", "labelled_scatter",
]


def curves(xs, series: dict[str, list[float]], xlabel: str, ylabel: str, title=None, logx=False, logy=False,
           note: str | None = None, save_to=None):
    """Lines of measured values against one x (a None value leaves a gap); ``note`` says how they were
    measured, under the axes (round-up: sampling time against dimension, probe accuracy against labels)."""
    fig, ax = _fig_ax(None, figsize=(5.5, 3.8))
    styles = ("o-", "s--", "^:")  # past the 10 colours of the cycle, another marker and line: no two alike
    for i, (label, ys) in enumerate(series.items()):
        ax.plot(xs, [np.nan if y is None else y for y in ys], styles[(i // 10) % 3], color=plt.cm.tab10(i % 10),
                label=label)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xticks(xs, [str(x) for x in xs], minor=False)
    ax.set_xticks([], minor=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    if note:
        import textwrap

        ax.annotate("\n".join(textwrap.wrap(note, 80)), xy=(0.5, 0), xycoords="axes fraction", xytext=(0, -36),
                    textcoords="offset points", ha="center", va="top", fontsize=8, color="0.3")
    if title:
        ax.set_title(title)
    return _finish(fig, save_to)


def grouped_bars(groups: dict[str, dict[str, float]], ylabel: str, title=None, save_to=None):
    """One group of bars per key of ``groups`` (e.g. a model), one bar per inner key (e.g. a data set)."""
    names = list(dict.fromkeys(k for g in groups.values() for k in g))
    width = 0.8 / max(len(names), 1)
    fig, ax = _fig_ax(None, figsize=(max(5.0, 0.9 * len(groups) + 1.5), 3.8))
    for i, name in enumerate(names):
        ys = [groups[g].get(name, np.nan) for g in groups]
        ax.bar(np.arange(len(groups)) + (i - (len(names) - 1) / 2) * width, ys, width, label=name)
    ax.set_xticks(np.arange(len(groups)), list(groups), rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title:
        ax.set_title(title)
    return _finish(fig, save_to)


def image_panels(panels: dict, levels: int | None = None, nrow: int | None = None, ncols: int = 4, title=None,
                 save_to=None):
    """Several image grids side by side, one per key of ``panels`` (label -> images NHWC), ``ncols`` a row."""
    n = len(panels)
    rows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(rows, min(n, ncols), figsize=(2.6 * min(n, ncols), 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (label, images) in zip(axes.ravel(), panels.items()):
        grid = image_grid(images, nrow=nrow, levels=levels)
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, save_to)


def labelled_scatter(points: dict[str, tuple[float, float]], xlabel: str, ylabel: str, title=None, save_to=None):
    """Points (x, y) each annotated with its label (e.g. a published figure against our own)."""
    fig, ax = _fig_ax(None, figsize=(5, 4))
    for label, (x, y) in points.items():
        ax.plot(x, y, "o")
        ax.annotate(label, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return _finish(fig, save_to)
