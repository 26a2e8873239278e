"""What every data-set module shares: the registry entry, seeding, checksums, discrete tables."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spec:
    """One registry entry, as a data-set module declares it.

    ``generate(seed)`` returns ``{"train": x, "test": x}`` (plus ``"train_labels"`` and
    ``"test_labels"`` for labelled sets); the registry caches it and hands out copies.
    ``entropy`` is ``None`` (unknown), ``"mc"`` (a Monte Carlo estimate recorded in
    ``recorded.json``) or a function returning the exact value in nats per dimension.
    """

    name: str
    description: str
    kind: str  # "1d", "2d_discrete", "2d_continuous", "image", "text", "signal"
    shape: tuple  # the shape of one example
    levels: int | None
    n_train: int | None  # None: known only once built (text_corpus)
    n_test: int | None
    generate: Callable[[int], dict]
    seeded: bool = True  # False: a fixed set; the seed is validated and otherwise unused
    labels: tuple | None = None  # class names for labelled sets
    entropy: Callable[[], float] | str | None = None
    distribution: Callable[[], object] | None = None
    vocab: Callable[[], tuple] | None = None


def rng_for(name: str, seed: int, stream: int = 0) -> np.random.Generator:
    """An independent numpy generator per (data set, seed, stream)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode()), stream]))


def as_rng(rng_or_seed) -> np.random.Generator:
    """A numpy Generator from a Generator or a non-negative integer seed."""
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    if isinstance(rng_or_seed, bool) or not isinstance(rng_or_seed, (int, np.integer)) or rng_or_seed < 0:
        raise TypeError(f"rng must be a numpy Generator or a non-negative integer seed, got {rng_or_seed!r}")
    return np.random.default_rng(int(rng_or_seed))


def to_numpy(x) -> np.ndarray:
    """numpy view of an array-like or a torch tensor (on any device)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def array_sha256(*arrays: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes of each array (a change of any of them shows)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def split_rows(x: np.ndarray, n_train: int) -> dict:
    return {"train": x[:n_train], "test": x[n_train:]}


class DiscreteDistribution:
    """A probability table over integer values: 1D ``(levels,)`` or 2D ``(rows, cols)``.

    Samples of a 2D table are ``(row, col)`` pairs. ``entropy`` is in nats per dimension
    (the table's entropy divided by its number of dimensions).
    """

    def __init__(self, probs: np.ndarray):
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim not in (1, 2) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0, atol=1e-12):
            raise ValueError("probs must be a 1D or 2D table of non-negative numbers summing to 1")
        self.probs = probs
        self.probs.setflags(write=False)
        self.ndim = probs.ndim

    @property
    def entropy(self) -> float:
        p = self.probs[self.probs > 0]
        return float(-(p * np.log(p)).sum() / self.ndim)

    def log_prob(self, x) -> np.ndarray:
        """Log-probability (nats) of each value: ``x`` is ``(N,)`` for 1D, ``(N, 2)`` for 2D."""
        x = to_numpy(x)
        if not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"x must hold integer values, got dtype {x.dtype}")
        if self.ndim == 2 and (x.ndim != 2 or x.shape[1] != 2):
            raise ValueError(f"x must have shape (N, 2) (row, col), got {x.shape}")
        cols = x.reshape(-1, self.ndim)  # (N, ndim)
        if cols.size and (cols.min() < 0 or np.any(cols.max(axis=0) >= self.probs.shape)):
            raise ValueError(f"values of x must lie in the table, shape {self.probs.shape}")
        with np.errstate(divide="ignore"):
            return np.log(self.probs[tuple(cols.T)]).reshape(x.shape[: x.ndim - (self.ndim - 1)])

    def sample(self, n: int, rng) -> np.ndarray:
        """n samples; ``rng`` is a numpy Generator or an integer seed."""
        flat = as_rng(rng).choice(self.probs.size, size=n, p=self.probs.ravel())
        if self.ndim == 1:
            return flat.astype(np.int64)
        return np.stack(np.unravel_index(flat, self.probs.shape), axis=1).astype(np.int64)


_PHOTOS: list | None = None


def photographs() -> list[np.ndarray]:
    """scikit-learn's two sample photographs (china, flower), each (427, 640, 3) uint8.

    They ship inside scikit-learn (decoded by Pillow): nothing is downloaded.
    """
    global _PHOTOS
    if _PHOTOS is None:
        from sklearn.datasets import load_sample_images

        _PHOTOS = [np.asarray(img, dtype=np.uint8) for img in load_sample_images().images]
    return [p.copy() for p in _PHOTOS]
