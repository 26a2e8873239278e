"""``deepul data``: list the course data sets, draw samples of one, check or record checksums.

    deepul data list                          # table: shape, levels, sizes, true entropy
    deepul data show moons --out out/moons.png [--split test --seed 1 --n 500]
    deepul data verify                        # regenerate every set, compare with recorded.json
    deepul data record [NAME ...] [--entropy] # rewrite recorded.json after a deliberate change
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", title="actions")
    sub.add_parser("list", help="print every data set with its shape, levels, sizes and true entropy")
    show = sub.add_parser("show", help="draw samples of one data set into a PNG file")
    show.add_argument("name", help="data set name (see 'deepul data list')")
    show.add_argument("--out", required=True, help="PNG file to write")
    show.add_argument("--split", default="train", choices=("train", "test"))
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--n", type=int, default=None, help="number of samples to draw (default per kind)")
    verify = sub.add_parser("verify", help="regenerate data sets (seed 0) and compare with the recorded sha256")
    verify.add_argument("names", nargs="*", help="data sets (default: all)")
    rec = sub.add_parser("record", help="rewrite recorded.json (checksums; --entropy: Monte Carlo entropies)")
    rec.add_argument("names", nargs="*", help="data sets (default: all)")
    rec.add_argument("--entropy", action="store_true", help="also re-estimate the Monte Carlo entropies")


def _fmt_entropy(inf) -> tuple[str, str]:
    if inf.entropy is None:
        return "-", "-"
    from deepul_helpers.metrics import bits_per_dim

    nats = f"{inf.entropy:.4f}" + (f" ± {inf.entropy_se:.4f}" if inf.entropy_se is not None else "")
    return nats, f"{bits_per_dim(inf.entropy):.4f}"


def table_rows() -> list[dict]:
    """One row per data set: what ``deepul data list`` prints."""
    from deepul_helpers import data

    rows = []
    for name in data.names():
        inf = data.info(name)
        nats, bits = _fmt_entropy(inf)
        rows.append({
            "name": name, "kind": inf.kind, "shape": "x".join(map(str, inf.shape)) or "scalar",
            "levels": "-" if inf.levels is None else str(inf.levels),
            "train/test": f"{inf.n_train}/{inf.n_test}", "entropy nats/dim": nats, "bits/dim": bits,
        })
    return rows


def print_table(rows: list[dict], file=None) -> None:
    cols = list(rows[0])
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols), file=file)
    print("  ".join("-" * width[c] for c in cols), file=file)
    for r in rows:
        print("  ".join(r[c].ljust(width[c]) for c in cols), file=file)


def show(name: str, out: str, split: str = "train", seed: int = 0, n: int | None = None):
    """Draw samples of ``name`` into ``out`` (PNG); returns the figure."""
    import matplotlib.pyplot as plt

    from deepul_helpers import data, plot

    inf = data.info(name)
    x = data.load(name, split=split, seed=seed)
    title = f"{name} ({split}, seed {seed})"
    if inf.kind == "image":
        return plot.samples_grid(x[: n or 64], levels=inf.levels, title=title, save_to=out)
    if inf.kind == "1d":
        return plot.hist_1d(x[:n] if n else x, inf.levels, true_probs=data.true_distribution(name).probs,
                            title=title, save_to=out)
    if inf.kind == "text":
        return plot.text_lines(data.decode(name, x[: n or 16]), title=title, save_to=out)
    if inf.kind == "signal":
        return plot.waveforms(x, n=n or 4, title=title, save_to=out)
    dist = data.true_distribution(name)
    if inf.kind == "1d_continuous":  # a histogram of the samples under the true density
        fig, ax = plt.subplots(figsize=(6, 3.5))
        pts = np.asarray(x[:n] if n else x).reshape(-1)
        grid = np.linspace(*dist.extent, 400)
        ax.hist(pts, bins=60, range=dist.extent, density=True, color="0.75", label=f"{len(pts)} samples")
        ax.plot(grid, np.exp(dist.log_prob(grid[:, None])), "k-", label="true density")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        ax.legend()
        ax.set_title(title)
        return plot._finish(fig, out)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.5))
    pts = x[: n or 2000]
    if inf.kind == "pairs":  # (N, 2, d): every coordinate pair (x_i, y_i) is a standard normal pair, correlation rho
        rho, lim = dist.rho, 4.0
        extent = (-lim, lim, -lim, lim)

        def pair_log_prob(p):  # (M, 2) -> (M,): one coordinate pair's log-density
            a, b = p[:, 0].astype(np.float64), p[:, 1].astype(np.float64)
            return (-np.log(2 * np.pi) - 0.5 * np.log1p(-rho**2)
                    - (a * a - 2 * rho * a * b + b * b) / (2 * (1 - rho**2)))

        plot.density_2d(pair_log_prob, extent=extent, log=True, ax=left, resolution=150,
                        title=f"true density of one pair (x_i, y_i), rho = {rho:g}")
        pooled = np.asarray(pts).transpose(0, 2, 1).reshape(-1, 2)  # (N*d, 2): every coordinate's (x_i, y_i)
        plot.scatter_2d(pooled, ax=right, lim=extent,
                        title=f"{len(pts)} pairs, all {dist.dim} coordinates; I(x; y) = "
                              f"{dist.mutual_information:.2f} nats")
        right.set_xlabel("x_i")
        right.set_ylabel("y_i")
        right.set_aspect("equal")
    elif inf.kind == "2d_discrete":
        plot.density_2d(dist.probs, ax=left, title="probability table")
        jitter = np.random.default_rng(0).uniform(-0.4, 0.4, size=pts.shape)  # spread points within a cell
        right.scatter(pts[:, 1] + jitter[:, 1], pts[:, 0] + jitter[:, 0], s=2, alpha=0.4)
        right.set_xlim(-0.5, inf.levels - 0.5)
        right.set_ylim(inf.levels - 0.5, -0.5)  # row 0 at the top, as in the table
        right.set_aspect("equal")
        right.set_title(f"{len(pts)} samples (jittered within their cell)")
    else:
        plot.density_2d(dist.log_prob, extent=dist.extent, log=True, ax=left, title="true density", resolution=150)
        plot.scatter_2d(pts, ax=right, title=f"{len(pts)} samples", lim=dist.extent)
        right.set_aspect("equal")
    fig.suptitle(title)
    return plot._finish(fig, out)


def verify(names=None) -> list[str]:
    """Names whose regenerated checksum differs from the recorded one (seed 0)."""
    from deepul_helpers import data

    bad = []
    for name in names or data.names():
        recorded = data.info(name).sha256
        if recorded is not None and data.checksums(name) != recorded:
            bad.append(name)
    return bad


def main(args) -> int:
    from deepul_helpers import data

    action = getattr(args, "action", None)
    if action in (None, "list"):
        print_table(table_rows())
        return 0
    try:
        if action == "show":
            show(args.name, args.out, split=args.split, seed=args.seed, n=args.n)
            print(f"wrote {args.out}")
        elif action == "verify":
            bad = verify(args.names)
            if bad:
                print(f"checksum differs from recorded.json: {', '.join(bad)}", file=sys.stderr)
                return 1
            print("all recorded checksums match")
        elif action == "record":
            rec = data.record(args.names or None, entropy=args.entropy)
            print(f"wrote {data.RECORDED_PATH} ({len(rec['datasets'])} data sets)")
    except (ValueError, TypeError) as e:
        print(f"deepul data {action}: {e}", file=sys.stderr)
        return 2
    return 0


__all__ = ["add_arguments", "main", "show", "table_rows", "verify"]
