"""Data sets with a known latent structure, for the latent-variable week (lecture 03, homework 3).

- ``gaussian_rotated``: a 2D Gaussian with standard deviations (5, 1) along axes rotated by 45
  degrees, mean 0; float32 ``(N, 2)``.
- ``gaussian_aligned``: the same Gaussian with axis-aligned covariance diag(25, 1).
  Both have the exact differential entropy (log(2 pi e) + log 5) / 2 = 2.2237 nats per
  dimension (4.4473 per point). A VAE whose decoder is a diagonal Gaussian can model the
  aligned one without its latent (the KL collapses to 0); the rotated one needs the latent
  to express the correlation.
- ``bars``: 4x4 binary images (values 0/1, NHWC uint8). Each of the 8 bars (4 rows, 4 columns)
  is on independently with probability 0.2, a pixel is the OR of the bars through it, then
  every pixel flips with probability 0.05. The latent z is the 8 bar switches; the exact
  p(x) = sum_z p(z) p(x | z) is computed by enumerating the 2^8 configurations for each of
  the 2^16 images, and the exact entropy from that table.

``shapes``' generating factors (kind, size, position) are in :func:`images.shapes_factors`.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ._common import Spec, as_rng, rng_for, split_rows, to_numpy
from .toy2d import Continuous2D, _as_points

_LOG_2PI = np.log(2 * np.pi)

# ----------------------------------------------------------------------------- 2D Gaussians


class Gaussian2D(Continuous2D):
    """N(0, R diag(sd^2) R^T), R the rotation by ``angle`` (radians); exact log-density and entropy."""

    def __init__(self, name: str, sds=(5.0, 1.0), angle: float = 0.0):
        self.name, self.sds, self.angle = name, np.asarray(sds, dtype=np.float64), float(angle)
        c, s = np.cos(self.angle), np.sin(self.angle)
        self.rotation = np.array([[c, -s], [s, c]])  # columns: the principal axes
        self.cov = self.rotation @ np.diag(self.sds**2) @ self.rotation.T  # (2, 2)
        self.extent = (-16.0, 16.0, -16.0, 16.0)

    def log_prob(self, x):
        x = _as_points(x)
        u = x @ self.rotation / self.sds  # (N, 2) whitened coordinates
        return -0.5 * (u**2).sum(1) - _LOG_2PI - np.log(self.sds).sum()

    def _sample(self, n, rng):
        return (rng.standard_normal((n, 2)) * self.sds) @ self.rotation.T

    def exact_entropy(self):
        return float((np.log(2 * np.pi * np.e) * 2 + 2 * np.log(self.sds).sum()) / 4)  # per dimension


GAUSSIANS = {
    "gaussian_rotated": lambda: Gaussian2D("gaussian_rotated", (5.0, 1.0), np.pi / 4),
    "gaussian_aligned": lambda: Gaussian2D("gaussian_aligned", (5.0, 1.0), 0.0),
}


def _gaussian_spec(name: str) -> Spec:
    n_train, n_test = 10_000, 2_000

    def generate(seed):
        x = GAUSSIANS[name]().sample(n_train + n_test, rng_for(name, seed)).astype(np.float32)
        return split_rows(x, n_train)

    how = "principal axes rotated by 45 degrees" if name.endswith("rotated") else "axis-aligned"
    return Spec(name=name, description=f"2D continuous: Gaussian with standard deviations (5, 1), {how}; "
                "entropy exact (closed form)", kind="2d_continuous", shape=(2,), levels=None,
                n_train=n_train, n_test=n_test, generate=generate,
                entropy=lambda: GAUSSIANS[name]().exact_entropy(), distribution=GAUSSIANS[name])


# ----------------------------------------------------------------------------- bars

BARS_SIDE = 4
N_BARS = 2 * BARS_SIDE  # rows 0..3, then columns 0..3
_POPCOUNT = np.array([bin(i).count("1") for i in range(1 << (BARS_SIDE * BARS_SIDE))], dtype=np.int64)


def bar_masks() -> np.ndarray:
    """(8, 4, 4) bool: mask k is row k (k < 4) or column k - 4."""
    m = np.zeros((N_BARS, BARS_SIDE, BARS_SIDE), dtype=bool)
    for k in range(BARS_SIDE):
        m[k, k, :] = True
        m[BARS_SIDE + k, :, k] = True
    return m


def all_binary(n_bits: int) -> np.ndarray:
    """(2^n_bits, n_bits) int64: every binary vector, row i = the bits of i (most significant first)."""
    i = np.arange(1 << n_bits)
    return (i[:, None] >> np.arange(n_bits - 1, -1, -1)) & 1


def _codes(pixels: np.ndarray) -> np.ndarray:
    """(N, 16) 0/1 -> (N,) integer code with pixel 0 as the most significant bit."""
    return pixels.astype(np.int64) @ (1 << np.arange(pixels.shape[1] - 1, -1, -1))


class Bars:
    """The bars distribution: z ~ Bernoulli(p_bar)^8, pixel = OR of its bars, then flips with ``p_flip``.

    ``probs``: (65536,) exact p(x) of every image (index = the image's 16 pixels as bits, row by row);
    ``log_prob(x)`` for x (N, 4, 4, 1) or (N, 16); ``entropy`` in nats per dimension (pixel).
    """

    def __init__(self, p_bar: float = 0.2, p_flip: float = 0.05):
        self.p_bar, self.p_flip = float(p_bar), float(p_flip)
        self.dims = BARS_SIDE * BARS_SIDE
        self.masks = bar_masks().reshape(N_BARS, -1)  # (8, 16)
        self.latents = all_binary(N_BARS)  # (256, 8)
        self.clean = (self.latents @ self.masks > 0).astype(np.int64)  # (256, 16) noise-free image of each z
        k = self.latents.sum(1)
        self.log_prior = k * np.log(self.p_bar) + (N_BARS - k) * np.log1p(-self.p_bar)  # (256,)
        self.probs = self._table()
        self.probs.setflags(write=False)

    def _table(self) -> np.ndarray:
        """p(x) for all 2^16 images, summing p(z) p(x | z) over the 256 z (Hamming distance to the clean image)."""
        x = np.arange(1 << self.dims)
        probs = np.zeros(len(x))
        for lp, code in zip(self.log_prior, _codes(self.clean)):
            d = _POPCOUNT[x ^ code]  # flipped pixels
            probs += np.exp(lp + d * np.log(self.p_flip) + (self.dims - d) * np.log1p(-self.p_flip))
        return probs

    @property
    def entropy(self) -> float:
        p = self.probs[self.probs > 0]
        return float(-(p * np.log(p)).sum() / self.dims)

    def _flat(self, x) -> np.ndarray:
        x = to_numpy(x)
        if x.shape[1:] not in ((BARS_SIDE, BARS_SIDE, 1), (BARS_SIDE, BARS_SIDE), (self.dims,)):
            raise ValueError(f"x must be (N, 4, 4, 1), (N, 4, 4) or (N, 16) binary images, got {x.shape}")
        x = x.reshape(len(x), self.dims)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError("x must hold 0/1 pixel values")
        return x

    def log_prob(self, x) -> np.ndarray:
        """(N,) exact log p(x) in nats."""
        return np.log(self.probs[_codes(self._flat(x))])

    def sample(self, n: int, rng, return_latents: bool = False):
        """(n, 4, 4, 1) uint8 images (and (n, 8) int64 bar switches with ``return_latents``)."""
        rng = as_rng(rng)
        z = (rng.random((n, N_BARS)) < self.p_bar).astype(np.int64)
        clean = (z @ self.masks > 0).astype(np.int64)
        x = clean ^ (rng.random((n, self.dims)) < self.p_flip)
        x = x.reshape(n, BARS_SIDE, BARS_SIDE, 1).astype(np.uint8)
        return (x, z) if return_latents else x


@cache
def bars_distribution() -> Bars:
    """The (cached) distribution of the ``bars`` set."""
    return Bars()


def _bars_generate(seed):
    return split_rows(bars_distribution().sample(6000, rng_for("bars", seed)), 5000)


SPECS = [
    _gaussian_spec("gaussian_rotated"),
    _gaussian_spec("gaussian_aligned"),
    Spec(name="bars", description="4x4 binary bars: each of 8 bars (rows, columns) on with p=0.2, pixel = OR, "
         "flip noise 0.05; exact entropy by enumerating the 2^8 bar configurations", kind="image",
         shape=(BARS_SIDE, BARS_SIDE, 1), levels=2, n_train=5000, n_test=1000, generate=_bars_generate,
         entropy=lambda: bars_distribution().entropy, distribution=bars_distribution),
]
