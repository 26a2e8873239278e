"""2D continuous toy distributions with exact log-density, float32 samples ``(N, 2)``.

Scales are chosen so that every differential entropy is well above zero (1.2 to 2 nats
per dimension), which keeps a "gap in %" against it meaningful:

- ``moons``: two half circles of radius 2 (the shape of scikit-learn's two moons scaled by 2
  and centred), arc position uniform, plus isotropic Gaussian noise of sd 0.25.
- ``gaussians_8``: 8 equal Gaussians (sd 0.5) centred on a circle of radius 4.
- ``gaussians_25``: 25 equal Gaussians (sd 0.3) on the grid {-4, -2, 0, 2, 4}^2.
- ``checkerboard``: uniform on the 8 dark squares (side 2) of a 4x4 board over [-4, 4]^2;
  exact entropy log(32) / 2 per dimension.
- ``swiss_roll``: the spiral 0.5 (t cos t, t sin t), t uniform on [1.5 pi, 4.5 pi], plus
  Gaussian noise of sd 0.3.
- ``rings``: 4 concentric circles of radius 1, 2, 3, 4, chosen with probability ∝ radius
  (so the arc-length density is the same on every ring), angle uniform, radial Gaussian
  noise: x = circle point + N(0, 0.2^2 I).

Log-densities. Gaussian mixtures: closed form. Rings: closed form, as the angle integral of
a Gaussian around a full circle is a Bessel function: p(x) = sum_k w_k exp(-(rho - r_k)^2 /
2 s^2) I0e(rho r_k / s^2) / (2 pi s^2), rho = |x|. Moons and swiss roll: the integral over the
curve parameter t of N(x; c(t), s^2 I) p(t) dt, by composite Gauss-Legendre quadrature (16
nodes per panel, panels narrower than the noise's width along the curve), evaluated in log
space; against 8 times as many panels the log-density changes by < 1e-12 (moons) and
< 3e-7 (swiss roll) inside the plotted extent; a test checks it against twice as many panels
and, on a full circle, against the Bessel closed form.

Entropy. Checkerboard: closed form. The others: a Monte Carlo estimate -mean(log p(X)) over
400,000 samples (seed 20261124) recorded in ``recorded.json`` with its standard error
(``deepul data record --entropy`` recomputes it); a test checks it against a grid
integral of -p log p.
"""

from __future__ import annotations

import numpy as np
from scipy.special import i0e, logsumexp

from ._common import Spec, as_rng, rng_for, to_numpy

MC_SAMPLES = 400_000
MC_SEED = 20261124
_LOG_2PI = np.log(2 * np.pi)


class Continuous2D:
    """Base of the 2D toys: ``log_prob(x)`` (nats), ``sample(n, rng)``, ``entropy`` per dimension."""

    name: str
    extent: tuple  # (xmin, xmax, ymin, ymax) for plots

    def log_prob(self, x) -> np.ndarray:
        raise NotImplementedError

    def sample(self, n: int, rng) -> np.ndarray:
        """n float64 samples (n, 2); ``rng`` is a numpy Generator or an integer seed."""
        return self._sample(n, as_rng(rng))

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def exact_entropy(self) -> float | None:
        return None

    @property
    def entropy(self) -> float | None:
        """Nats per dimension: exact where known, else the recorded Monte Carlo estimate."""
        exact = self.exact_entropy()
        if exact is not None:
            return exact
        from . import read_recorded

        rec = read_recorded()["entropy_mc"].get(self.name)
        return None if rec is None else rec["value"]

    @property
    def entropy_se(self) -> float | None:
        from . import read_recorded

        rec = read_recorded()["entropy_mc"].get(self.name)
        return None if rec is None or self.exact_entropy() is not None else rec["se"]

    def monte_carlo_entropy(self, n: int = MC_SAMPLES, seed: int = MC_SEED) -> dict:
        """-mean log p(X) / 2 over ``n`` samples, with its standard error (nats per dimension)."""
        lp = self.log_prob(self.sample(n, np.random.default_rng(seed)))
        return {"value": float(-lp.mean() / 2), "se": float(lp.std(ddof=1) / np.sqrt(n) / 2),
                "n": n, "seed": seed}


def _as_points(x) -> np.ndarray:
    x = to_numpy(x).astype(np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (N, 2), got {x.shape}")
    return x


class GaussianMixture2D(Continuous2D):
    """Equal-weight mixture of isotropic Gaussians N(mu_k, sd^2 I)."""

    def __init__(self, name, means, sd, extent):
        self.name, self.means, self.sd, self.extent = name, np.asarray(means, dtype=np.float64), sd, extent

    def log_prob(self, x):
        x = _as_points(x)
        d2 = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)  # (N, K)
        log_n = -d2 / (2 * self.sd**2) - _LOG_2PI - 2 * np.log(self.sd)
        return logsumexp(log_n, axis=1) - np.log(len(self.means))

    def _sample(self, n, rng):
        k = rng.integers(0, len(self.means), size=n)
        return self.means[k] + self.sd * rng.standard_normal((n, 2))


class Checkerboard(Continuous2D):
    """Uniform on the squares (i, j) of side 2 with i + j even, of the 4x4 board over [-4, 4]^2."""

    name, extent = "checkerboard", (-5.0, 5.0, -5.0, 5.0)

    def log_prob(self, x):
        x = _as_points(x)
        inside = np.all(np.abs(x) <= 4.0, axis=1)
        cell = np.floor((np.clip(x, -4.0, 4.0 - 1e-12) + 4.0) / 2.0).astype(int)  # (N, 2)
        dark = (cell.sum(1) % 2) == 0
        return np.where(inside & dark, -np.log(32.0), -np.inf)

    def _sample(self, n, rng):
        i = rng.integers(0, 4, size=n)
        j = (2 * rng.integers(0, 2, size=n) + (i % 2)) % 4  # same parity as i
        return np.stack([i, j], 1) * 2.0 - 4.0 + 2.0 * rng.random((n, 2))

    def exact_entropy(self):
        return float(np.log(32.0) / 2)  # uniform on area 8 * 2 * 2 = 32


class CurveMixture(Continuous2D):
    """x = c_k(t) + N(0, sd^2 I): curve k with probability w_k, t uniform on [a_k, b_k].

    ``curves`` is a list of (weight, fn, a, b, panels); fn maps t (M,) to points (M, 2).
    """

    ORDER = 16

    def __init__(self, name, curves, sd, extent, panel_scale=1):
        self.name, self.curves, self.sd, self.extent = name, curves, sd, extent
        self.nodes = []  # per curve: points (M, 2) and log weights (M,) including log w_k + log p(t)
        g, gw = np.polynomial.legendre.leggauss(self.ORDER)
        pts, logw = [], []
        for weight, fn, a, b, panels in curves:
            edges = np.linspace(a, b, panels * panel_scale + 1)
            half = (edges[1:] - edges[:-1])[:, None] / 2  # (P, 1)
            t = ((edges[1:] + edges[:-1])[:, None] / 2 + half * g).ravel()  # (P * ORDER,)
            w = (half * gw).ravel() / (b - a)  # quadrature weight times the uniform density of t
            pts.append(fn(t))
            logw.append(np.log(weight) + np.log(w))
        self.points, self.log_weights = np.concatenate(pts), np.concatenate(logw)  # (M, 2), (M,)

    def log_prob(self, x, chunk: int = 1024):
        x = _as_points(x)
        s2 = self.sd**2
        c, c2 = self.points, (self.points**2).sum(1)
        out = np.empty(len(x))
        for i in range(0, len(x), chunk):
            xb = x[i : i + chunk]  # (B, 2)
            e = (xb @ c.T - c2 / 2) / s2 + self.log_weights  # (B, M): all but the -|x|^2 / 2 s^2 term
            m = e.max(axis=1)
            out[i : i + chunk] = m + np.log(np.exp(e - m[:, None]).sum(1)) - (xb**2).sum(1) / (2 * s2)
        return out - _LOG_2PI - np.log(s2)

    def _sample(self, n, rng):
        weights = np.array([c[0] for c in self.curves])
        k = rng.choice(len(self.curves), size=n, p=weights / weights.sum())
        out = np.empty((n, 2))
        for j, (_, fn, a, b, _) in enumerate(self.curves):
            sel = k == j
            out[sel] = fn(rng.uniform(a, b, size=int(sel.sum())))
        return out + self.sd * rng.standard_normal((n, 2))


class Rings(Continuous2D):
    """Concentric circles (radius r_k, probability ∝ r_k) plus isotropic noise; exact log-density."""

    name, extent = "rings", (-5.5, 5.5, -5.5, 5.5)

    def __init__(self, radii=(1.0, 2.0, 3.0, 4.0), sd=0.2):
        self.radii, self.sd = np.asarray(radii), sd
        self.weights = self.radii / self.radii.sum()

    def log_prob(self, x):
        x = _as_points(x)
        rho = np.linalg.norm(x, axis=1)[:, None]  # (N, 1)
        s2 = self.sd**2
        # (1 / 2 pi) \int_0^{2 pi} exp(rho r cos(phi) / s^2) dphi = I0(rho r / s^2) = I0e(.) exp(.)
        log_k = np.log(self.weights) - (rho - self.radii) ** 2 / (2 * s2) + np.log(i0e(rho * self.radii / s2))
        return logsumexp(log_k, axis=1) - _LOG_2PI - np.log(s2)

    def _sample(self, n, rng):
        r = self.radii[rng.choice(len(self.radii), size=n, p=self.weights)]
        phi = rng.uniform(0, 2 * np.pi, size=n)
        return np.stack([r * np.cos(phi), r * np.sin(phi)], 1) + self.sd * rng.standard_normal((n, 2))


def _moons() -> CurveMixture:
    r = 2.0
    shift = np.array([r / 2, r / 4])  # centre the pair of moons on the origin
    upper = lambda t: np.stack([r * np.cos(t), r * np.sin(t)], 1) - shift
    lower = lambda t: np.stack([r - r * np.cos(t), r / 2 - r * np.sin(t)], 1) - shift
    return CurveMixture("moons", [(0.5, upper, 0.0, np.pi, 16), (0.5, lower, 0.0, np.pi, 16)], sd=0.25,
                        extent=(-4.0, 4.0, -4.0, 4.0))


def _swiss_roll() -> CurveMixture:
    spiral = lambda t: 0.5 * np.stack([t * np.cos(t), t * np.sin(t)], 1)
    return CurveMixture("swiss_roll", [(1.0, spiral, 1.5 * np.pi, 4.5 * np.pi, 96)], sd=0.3,
                        extent=(-8.5, 8.5, -8.5, 8.5))


_GRID5 = np.array([(x, y) for x in (-4.0, -2.0, 0.0, 2.0, 4.0) for y in (-4.0, -2.0, 0.0, 2.0, 4.0)])
_ANGLES8 = np.arange(8) * np.pi / 4
DISTRIBUTIONS = {
    "moons": _moons,
    "gaussians_8": lambda: GaussianMixture2D("gaussians_8", 4.0 * np.stack([np.cos(_ANGLES8), np.sin(_ANGLES8)], 1),
                                             0.5, (-6.5, 6.5, -6.5, 6.5)),
    "gaussians_25": lambda: GaussianMixture2D("gaussians_25", _GRID5, 0.3, (-5.5, 5.5, -5.5, 5.5)),
    "checkerboard": Checkerboard,
    "swiss_roll": _swiss_roll,
    "rings": Rings,
}
DESCRIPTIONS = {
    "moons": "two half circles (radius 2) + Gaussian noise sd 0.25",
    "gaussians_8": "8 Gaussians (sd 0.5) on a circle of radius 4",
    "gaussians_25": "25 Gaussians (sd 0.3) on the grid {-4,-2,0,2,4}^2",
    "checkerboard": "uniform on the 8 dark squares (side 2) of a 4x4 board over [-4,4]^2",
    "swiss_roll": "spiral 0.5 (t cos t, t sin t), t ~ U[1.5pi, 4.5pi], + Gaussian noise sd 0.3",
    "rings": "4 concentric circles (radius 1-4, probability ∝ radius) + Gaussian noise sd 0.2",
}


def _spec(name: str) -> Spec:
    n_train, n_test = 10_000, 2_000

    def generate(seed):
        x = DISTRIBUTIONS[name]().sample(n_train + n_test, rng_for(name, seed)).astype(np.float32)
        return {"train": x[:n_train], "test": x[n_train:]}

    exact = name == "checkerboard"
    return Spec(
        name=name, description=f"2D continuous: {DESCRIPTIONS[name]}; entropy "
        + ("exact (closed form)" if exact else "by Monte Carlo (exact log-density)"),
        kind="2d_continuous", shape=(2,), levels=None, n_train=n_train, n_test=n_test, generate=generate,
        entropy=(lambda: Checkerboard().exact_entropy()) if exact else "mc", distribution=DISTRIBUTIONS[name],
    )


SPECS = [_spec(n) for n in DISTRIBUTIONS]
