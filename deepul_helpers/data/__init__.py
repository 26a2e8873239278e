"""Every course data set, offline and deterministic, with the true entropy where it is known.

    from deepul_helpers import data
    data.names()                            # every registered set
    x = data.load("shapes", split="train", seed=0)          # (10000, 20, 20, 1) uint8
    x, y = data.load("digits", split="test", labels=True)    # images and int64 labels
    data.info("moons").entropy              # nats per dimension (None where unknown)
    data.true_distribution("1d_a").probs    # the generating distribution, where known

Nothing is downloaded: every set is generated from its seed, or built from files that
installed packages ship (scikit-learn's digits and sample photographs, the docstrings of
Python's standard library). Arrays follow the course contract: images NHWC uint8 with
values ``0..levels-1``; 1D sets ``(N,)`` int64; 2D discrete ``(N, 2)`` int64 (row, col);
2D continuous ``(N, 2)`` float32; text and signals ``(N, T)`` int64.

``seed`` picks the sample of a generated set (train and test come from the same seed and
never overlap); for a fixed set (``info(name).seeded`` is False: digits, patches,
text_corpus) the seed is validated and otherwise unused. The recorded sha256 of every
split (seed 0) lives in ``recorded.json`` beside this file; after changing a data set on
purpose, rewrite it with ``deepul data record`` (``--entropy`` also re-estimates the
Monte Carlo entropies).
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from ._common import Spec, array_sha256, to_numpy

RECORDED_PATH = Path(__file__).with_name("recorded.json")
_MODULES = ("discrete", "toy2d", "images", "text", "signals", "latent", "pairs", "mixtures")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about one data set.

    ``shape`` is the shape of one example; ``levels`` the number of values per dimension
    (None for continuous data); ``sha256`` maps each split to its recorded checksum for
    seed 0 (None where it was not recorded for this Python version); ``entropy`` is the
    exact entropy of the generating distribution in nats per dimension (None where unknown),
    ``entropy_se`` its standard error where it is a Monte Carlo estimate (else None);
    ``labels`` the class names of a labelled set (else None); ``vocab`` the characters of a
    text set (id -> character).
    """

    name: str
    description: str
    kind: str
    shape: tuple
    levels: int | None
    n_train: int
    n_test: int
    sha256: dict | None
    entropy: float | None
    entropy_se: float | None
    labels: tuple | None
    vocab: tuple | None
    seeded: bool

    @property
    def dims(self) -> int:
        """Number of dimensions of one example (what "per dimension" divides by)."""
        return int(np.prod(self.shape)) if self.shape else 1


@cache
def _registry() -> dict[str, Spec]:
    specs: dict[str, Spec] = {}
    for mod in _MODULES:
        for spec in importlib.import_module(f"{__name__}.{mod}").SPECS:
            specs[spec.name] = spec
    return specs


def names() -> list[str]:
    """The names of every data set, in the course's order."""
    return list(_registry())


def _spec(name) -> Spec:
    reg = _registry()
    if not isinstance(name, str) or name not in reg:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(reg)}")
    return reg[name]


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be a non-negative integer below 2**32, got {seed}")
    return int(seed)


def _check_split(split) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def _generated(name: str, seed: int) -> dict:
    """The arrays of ``name`` for ``seed`` (read-only, cached; a fixed set ignores the seed)."""
    return _generated_cached(name, seed if _spec(name).seeded else 0)


@lru_cache(maxsize=16)
def _generated_cached(name: str, seed: int) -> dict:
    arrays = _spec(name).generate(seed)
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


def load(name: str, split: str = "train", seed: int = 0, labels: bool = False):
    """The ``split`` of data set ``name`` for ``seed``: a fresh numpy array.

    With ``labels=True`` (labelled sets only) returns ``(x, y)``, ``y`` int64 class ids.
    """
    spec = _spec(name)
    _check_split(split)
    seed = _check_seed(seed)
    if not isinstance(labels, (bool, np.bool_)):
        raise TypeError(f"labels must be True or False, got {labels!r}")
    if labels and spec.labels is None:
        labelled = ", ".join(n for n, s in _registry().items() if s.labels is not None)
        raise ValueError(f"data set {name!r} has no labels; labelled sets: {labelled}")
    arrays = _generated(name, seed)
    x = np.array(arrays[split])
    return (x, np.array(arrays[f"{split}_labels"])) if labels else x


def read_recorded() -> dict:
    """The recorded checksums and Monte Carlo entropies (``recorded.json``)."""
    if not RECORDED_PATH.exists():
        return {"datasets": {}, "entropy_mc": {}}
    return json.loads(RECORDED_PATH.read_text())


def python_minor() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def checksums(name: str, seed: int = 0) -> dict:
    """sha256 of each split (images and labels together for labelled sets), computed now."""
    arrays = _generated(name, _check_seed(seed))
    out = {}
    for split in SPLITS:
        parts = [arrays[split]] + ([arrays[f"{split}_labels"]] if f"{split}_labels" in arrays else [])
        out[split] = array_sha256(*parts)
    return out


def info(name: str) -> DatasetInfo:
    """Shape, levels, sizes, recorded checksums and true entropy of data set ``name``."""
    spec = _spec(name)
    rec = read_recorded()
    entry = rec["datasets"].get(name)
    if entry is not None and entry.get("python") not in (None, python_minor()):
        entry = None  # recorded on another Python version: its checksum does not apply here
    entropy = entropy_se = None
    if callable(spec.entropy):
        entropy = float(spec.entropy())
    elif spec.entropy == "mc" and name in rec["entropy_mc"]:
        entropy, entropy_se = rec["entropy_mc"][name]["value"], rec["entropy_mc"][name]["se"]
    n_train, n_test = spec.n_train, spec.n_test
    if n_train is None:
        arrays = _generated(name, 0)
        n_train, n_test = len(arrays["train"]), len(arrays["test"])
    return DatasetInfo(
        name=name, description=spec.description, kind=spec.kind, shape=tuple(spec.shape), levels=spec.levels,
        n_train=n_train, n_test=n_test,
        sha256=None if entry is None else {s: entry[s] for s in SPLITS},
        entropy=entropy, entropy_se=entropy_se, labels=spec.labels,
        vocab=None if spec.vocab is None else tuple(spec.vocab()), seeded=spec.seeded,
    )


def true_distribution(name: str):
    """The generating distribution of ``name``: ``.log_prob(x)``, ``.entropy`` (nats/dim),
    ``.probs`` for discrete tables. Real data (digits, patches, text_corpus) and sets without a
    tractable density (shapes, signals) have none: a ValueError says so."""
    spec = _spec(name)
    if spec.distribution is None:
        known = ", ".join(n for n, s in _registry().items() if s.distribution is not None)
        raise ValueError(f"data set {name!r} has no known true distribution; sets that have one: {known}")
    return spec.distribution()


def decode(name: str, ids) -> list[str]:
    """Character ids ``(N, T)`` (or one ``(T,)`` row) of a text set -> list of strings."""
    spec = _spec(name)
    if spec.vocab is None:
        text_sets = ", ".join(n for n, s in _registry().items() if s.vocab is not None)
        raise ValueError(f"decode works on text sets ({text_sets}), not {name!r}")
    vocab = spec.vocab()
    ids = to_numpy(ids)
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.size and (ids.min() < 0 or ids.max() >= len(vocab)):
        raise ValueError(f"ids must be (N, T) or (T,) integers in 0..{len(vocab) - 1}")
    return ["".join(vocab[i] for i in row) for row in ids.tolist()]


def record(names_to_record=None, entropy: bool = False) -> dict:
    """Recompute the checksums (seed 0) of ``names_to_record`` (default: all) and, with
    ``entropy=True``, the Monte Carlo entropies; write ``recorded.json``; return it."""
    rec = read_recorded()
    for name in names_to_record or names():
        spec = _spec(name)
        entry = checksums(name)
        if name == "text_corpus":
            entry["python"] = python_minor()
        rec["datasets"][name] = entry
        if entropy and spec.entropy == "mc":
            rec["entropy_mc"][name] = spec.distribution().monte_carlo_entropy()
    rec["datasets"] = {n: rec["datasets"][n] for n in names() if n in rec["datasets"]}
    rec["entropy_mc"] = {n: rec["entropy_mc"][n] for n in names() if n in rec["entropy_mc"]}
    RECORDED_PATH.write_text(json.dumps(rec, indent=1, sort_keys=False) + "\n")
    return rec


__all__ = ["DatasetInfo", "checksums", "decode", "info", "load", "names", "record", "true_distribution"]
