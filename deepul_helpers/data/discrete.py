"""Discrete toy distributions with exact entropy: 1D mixtures and 2D densities drawn from a photo.

- ``1d_a`` / ``1d_b``: mixtures of discretized Gaussians over 20 / 100 values. The
  probability of value ``k`` is proportional to ``sum_j w_j N(k; mu_j, sd_j)`` (the mixture
  density at the integer ``k``), normalised over ``0..levels-1``.
- ``image_density_25`` / ``image_density_100``: scikit-learn's ``china.jpg`` in grayscale
  (luminance ``L = (0.299 R + 0.587 G + 0.114 B) / 255``), centre-cropped to the largest
  square whose side is a multiple of the grid size, block-averaged down to a 25x25 /
  100x100 grid; the probability of a cell is proportional to its darkness squared,
  ``(1 - L)^2`` (the pagoda and the trees carry the mass, the sky little), normalised so
  that the grid sums to 1. A sample is a cell ``(row, col)`` of that grid.

Entropy (nats per dimension) is exact: the table's entropy, divided by 2 for the 2D tables.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ._common import DiscreteDistribution, Spec, photographs, rng_for, split_rows

# (levels, weights, means, standard deviations, train, test)
_MIXTURES_1D = {
    "1d_a": (20, (0.6, 0.4), (5.0, 14.0), (1.5, 2.5), 800, 200),
    "1d_b": (100, (0.25, 0.35, 0.15, 0.25), (15.0, 40.0, 62.0, 85.0), (4.0, 8.0, 3.0, 6.0), 8000, 2000),
}

# grid size -> (train, test)
_IMAGE_DENSITIES = {25: (10_000, 2_000), 100: (100_000, 20_000)}


def mixture_1d_probs(levels: int, weights, means, sds) -> np.ndarray:
    """The normalised table ``p(k) ∝ sum_j w_j N(k; mu_j, sd_j)``, ``k = 0..levels-1``."""
    k = np.arange(levels, dtype=np.float64)[:, None]
    w, mu, sd = (np.asarray(v, dtype=np.float64) for v in (weights, means, sds))
    dens = (w * np.exp(-0.5 * ((k - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))).sum(axis=1)
    return dens / dens.sum()


@cache
def image_table(grid: int) -> np.ndarray:
    """The (grid, grid) probability table made from ``china.jpg`` (see the module docstring)."""
    photo = photographs()[0].astype(np.float64)  # (H, W, 3)
    gray = photo @ np.array([0.299, 0.587, 0.114])  # (H, W)
    side = (min(gray.shape) // grid) * grid
    top, left = (gray.shape[0] - side) // 2, (gray.shape[1] - side) // 2
    crop = gray[top : top + side, left : left + side]
    block = side // grid
    lum = crop.reshape(grid, block, grid, block).mean(axis=(1, 3)) / 255.0  # (grid, grid)
    table = (1.0 - lum) ** 2
    table = table / table.sum()
    table.setflags(write=False)
    return table


def _mixture_dist(name):
    levels, w, mu, sd, _, _ = _MIXTURES_1D[name]
    return DiscreteDistribution(mixture_1d_probs(levels, w, mu, sd))


def _mixture_spec(name: str) -> Spec:
    levels, w, mu, sd, n_train, n_test = _MIXTURES_1D[name]

    def generate(seed):
        x = _mixture_dist(name).sample(n_train + n_test, rng_for(name, seed))
        return split_rows(x, n_train)

    desc = (
        f"1D discrete: mixture of {len(w)} discretized Gaussians over {levels} values "
        f"(weights {w}, means {mu}, sds {sd}); exact entropy"
    )
    return Spec(
        name=name, description=desc, kind="1d", shape=(), levels=levels, n_train=n_train, n_test=n_test,
        generate=generate, entropy=lambda: _mixture_dist(name).entropy, distribution=lambda: _mixture_dist(name),
    )


def _image_spec(grid: int) -> Spec:
    name = f"image_density_{grid}"
    n_train, n_test = _IMAGE_DENSITIES[grid]

    def generate(seed):
        x = DiscreteDistribution(image_table(grid)).sample(n_train + n_test, rng_for(name, seed))
        return split_rows(x, n_train)

    desc = (
        f"2D discrete: (row, col) on a {grid}x{grid} grid, probability ∝ darkness² of scikit-learn's "
        "china.jpg (grayscale, centre crop, block average); exact entropy = table entropy / 2"
    )
    return Spec(
        name=name, description=desc, kind="2d_discrete", shape=(2,), levels=grid, n_train=n_train,
        n_test=n_test, generate=generate,
        entropy=lambda: DiscreteDistribution(image_table(grid)).entropy,
        distribution=lambda: DiscreteDistribution(image_table(grid)),
    )


SPECS = [_mixture_spec("1d_a"), _mixture_spec("1d_b"), _image_spec(25), _image_spec(100)]
