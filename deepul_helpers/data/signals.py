"""``signals``: 1D audio-like waveforms, mu-law quantized to 256 levels, ``(N, T)`` int64.

Each waveform has T = 256 samples: the sum of 1 to 3 sines (number uniform), each with a
period of 8 to 64 samples (log-uniform), a uniform random phase and a random share of a total
amplitude drawn log-uniformly from [0.05, 0.9], plus Gaussian noise of sd 0.005; then clipped to
[-1, 1] and mu-law encoded (mu = 255) to the levels 0..255 (``mu_law_encode``;
``mu_law_decode`` maps levels back to [-1, 1]). 8,000 train / 2,000 test from the seed. The
true entropy is not known in closed form (None).
"""

from __future__ import annotations

import numpy as np

from ._common import Spec, rng_for

T = 256
MU = 255


def mu_law_encode(x, mu: int = MU) -> np.ndarray:
    """Amplitudes in [-1, 1] -> int64 levels 0..mu."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)  # [-1, 1]
    return np.floor((y + 1) / 2 * mu + 0.5).astype(np.int64)


def mu_law_decode(q, mu: int = MU) -> np.ndarray:
    """Levels 0..mu -> amplitudes in [-1, 1] (the inverse of ``mu_law_encode`` up to rounding)."""
    y = 2 * np.asarray(q, dtype=np.float64) / mu - 1
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def waveforms(n: int, rng: np.random.Generator, length: int = T) -> np.ndarray:
    """n float waveforms (n, length) before quantization (see the module docstring)."""
    k = rng.integers(1, 4, size=n)  # number of sines
    period = np.exp(rng.uniform(np.log(8), np.log(64), size=(n, 3)))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 3))
    share = rng.random((n, 3)) * (np.arange(3)[None] < k[:, None])  # unused sines get no amplitude
    amp = share / share.sum(1, keepdims=True) * np.exp(rng.uniform(np.log(0.05), np.log(0.9), size=(n, 1)))  # (n, 3)
    t = np.arange(length)[None, None, :]  # (1, 1, T)
    x = (amp[..., None] * np.sin(2 * np.pi * t / period[..., None] + phase[..., None])).sum(1)  # (n, T)
    return x + 0.005 * rng.standard_normal((n, length))


def _generate(seed):
    x = mu_law_encode(waveforms(10_000, rng_for("signals", seed)))
    return {"train": x[:8000], "test": x[8000:]}


SPECS = [
    Spec(name="signals", description=f"1-3 sines (period 8-64) + noise, T={T}, mu-law quantized to 256 levels",
         kind="signal", shape=(T,), levels=256, n_train=8000, n_test=2000, generate=_generate),
]
