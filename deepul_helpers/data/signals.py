"""``signals``: 1D audio-like waveforms, mu-law quantized to 256 levels, ``(N, T)`` int64.

Each waveform has T = 256 samples: the sum of 1 to 3 sines (number uniform), each with a
period of 8 to 64 samples (log-uniform), a uniform random phase and a random share of a total
amplitude drawn log-uniformly from [0.05, 0.9], plus Gaussian noise of sd 0.005; then clipped to
[-1, 1] and mu-law encoded (mu = 255) to the levels 0..255 (``mu_law_encode``;
``mu_law_decode`` maps levels back to [-1, 1]). 8,000 train / 2,000 test from the seed. The
true entropy is not known in closed form (None).

Labels (for probes only, never for self-supervised training): the **frequency band** of the
dominant sine (the one with the largest amplitude), its period cut at the log-spaced edges
8, 13.5, 22.6, 38.1, 64 into four bands (``BANDS``), so about a quarter of the waveforms fall in
each. ``load("signals", labels=True)``. The waveforms are drawn exactly as before the labels
were added (the labels are computed from the same draws).
"""

from __future__ import annotations

import numpy as np

from ._common import Spec, rng_for

T = 256
MU = 255
BAND_EDGES = np.exp(np.linspace(np.log(8), np.log(64), 5))  # 8, 13.5, 22.6, 38.1, 64 samples
BANDS = ("period 8-13", "period 13-23", "period 23-38", "period 38-64")


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
    return waveforms_and_periods(n, rng, length)[0]


def waveforms_and_periods(n: int, rng: np.random.Generator, length: int = T) -> tuple[np.ndarray, np.ndarray]:
    """n float waveforms (n, length) and the period (n,) of each one's dominant sine."""
    k = rng.integers(1, 4, size=n)  # number of sines
    period = np.exp(rng.uniform(np.log(8), np.log(64), size=(n, 3)))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 3))
    share = rng.random((n, 3)) * (np.arange(3)[None] < k[:, None])  # unused sines get no amplitude
    amp = share / share.sum(1, keepdims=True) * np.exp(rng.uniform(np.log(0.05), np.log(0.9), size=(n, 1)))  # (n, 3)
    t = np.arange(length)[None, None, :]  # (1, 1, T)
    x = (amp[..., None] * np.sin(2 * np.pi * t / period[..., None] + phase[..., None])).sum(1)  # (n, T)
    dominant = period[np.arange(n), amp.argmax(1)]  # (n,)
    return x + 0.005 * rng.standard_normal((n, length)), dominant


def band(period) -> np.ndarray:
    """Band index 0..3 (``BANDS``) of periods in [8, 64]."""
    return np.clip(np.searchsorted(BAND_EDGES, np.asarray(period), side="right") - 1, 0, len(BANDS) - 1)


def _generate(seed):
    w, dominant = waveforms_and_periods(10_000, rng_for("signals", seed))
    x, y = mu_law_encode(w), band(dominant).astype(np.int64)
    return {"train": x[:8000], "test": x[8000:], "train_labels": y[:8000], "test_labels": y[8000:]}


SPECS = [
    Spec(name="signals", description=f"1-3 sines (period 8-64) + noise, T={T}, mu-law quantized to 256 levels",
         kind="signal", shape=(T,), levels=256, n_train=8000, n_test=2000, generate=_generate,
         labels=BANDS),
]
