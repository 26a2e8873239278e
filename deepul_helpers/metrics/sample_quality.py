"""Sample quality in a feature space trained here: Frechet distance, KID, Inception-style score, modes.

The Inception network of the literature needs a download and an ImageNet-sized input; the course
has neither. Its stand-in is a small convolutional classifier of ``digits`` (8x8, 17 levels)
trained here, deterministically from a seed, in a few seconds on a CPU, and cached under the
user's cache folder (``$DEEPUL_CACHE_DIR``, else ``$XDG_CACHE_HOME/deepul``, else
``~/.cache/deepul``; never inside the repository). A missing or unreadable cache is rebuilt.

    from deepul_helpers.metrics import sample_quality as sq
    clf = sq.digits_classifier()              # trained or loaded; clf.test_accuracy
    sq.frechet_distance(samples, held_out)    # samples, held_out: digits-like (N, 8, 8, 1), 0..16
    sq.kernel_distance(samples, held_out)     # (KID, standard error)
    sq.inception_score(samples)               # (mean, std over splits)
    sq.digit_modes(samples)                   # classes covered with confidence, balance
    sq.mode_coverage(points, "gaussians_8_narrow")   # 2D mixtures: modes covered, high quality, reverse KL

Features are the classifier's 64 penultimate activations; the Inception-style score uses its
class probabilities. Frechet distance, the polynomial-kernel MMD of KID and the Inception
score are computed by torchmetrics with this network as its custom feature extractor.

KID is the unbiased MMD^2 with the kernel k(a, b) = (a.b / d + 1)^3, averaged over ``blocks``
disjoint pairs of blocks of the two sets; the blocks are independent, so the standard error
is the standard deviation of the block estimates over sqrt(blocks).

2D mode coverage follows the literature on mode dropping (VEEGAN, PacGAN): from the samples,
a mode is covered when at least one sample lies within 3 standard deviations of its mean; a
sample is of high quality when it lies within 3 standard deviations of some mode; the reverse
KL is KL(q || uniform) between the histogram q of high-quality samples over their nearest modes
and the uniform distribution over the modes (0 for a perfectly balanced sampler, log K when
every high-quality sample falls on one mode).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

CACHE_ENV = "DEEPUL_CACHE_DIR"
CLASSIFIER_VERSION = 1  # bump when the architecture or the training recipe changes
DIGIT_LEVELS = 17
FEATURES = 64
_LOADED: dict[int, nn.Module] = {}


def cache_dir() -> Path:
    """Where trained feature networks are cached (see the module docstring); not created here."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deepul"


def digits_to_float(images) -> torch.Tensor:
    """Digits-like images (N, 8, 8, 1) or (N, 8, 8) with values 0..16 (any numeric dtype; noisy
    float images allowed) -> float32 tensor (N, 1, 8, 8) in [0, 1] on the CPU."""
    x = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or tuple(x.shape[1:]) != (8, 8, 1):
        raise ValueError(f"expected digits-like images of shape (N, 8, 8, 1) (NHWC, values 0..16), "
                         f"got {tuple(x.shape)}")
    x = x.to(torch.float32) / (DIGIT_LEVELS - 1)
    if not torch.isfinite(x).all():
        raise ValueError("images hold NaN or infinite values")
    return x.permute(0, 3, 1, 2).contiguous()  # (N, 1, 8, 8)


class DigitsClassifier(nn.Module):
    """A small CNN on 8x8 digits: ``features(x)`` (N, 64) and ``forward(x)`` logits (N, 10).

    ``x`` is a digits-like image batch in data space (see :func:`digits_to_float`). The
    features are the penultimate activations divided by one constant, their root mean square
    over the training split, so that they are of order 1 (KID's kernel depends on the scale).
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),  # (N, 32, 8, 8)
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),  # (N, 64, 4, 4)
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64 * 16, FEATURES), nn.ReLU())  # (N, 64)
        self.head = nn.Linear(FEATURES, 10)
        self.register_buffer("feature_scale", torch.ones(()))
        self.test_accuracy = float("nan")

    def hidden(self, images) -> torch.Tensor:
        return self.fc(self.conv(digits_to_float(images).to(self.head.weight.device)))  # (N, 64)

    def features(self, images) -> torch.Tensor:
        return self.hidden(images) / self.feature_scale

    def forward(self, images) -> torch.Tensor:
        return self.head(self.hidden(images))  # (N, 10)


class _Features(nn.Module):
    """The classifier's features as torchmetrics expects a custom extractor (``num_features``)."""

    def __init__(self, clf, logits: bool = False):
        super().__init__()
        self.clf, self.logits = clf, logits
        self.num_features = 10 if logits else FEATURES

    def forward(self, images):
        with torch.no_grad():
            out = self.clf(images) if self.logits else self.clf.features(images)
        return out.to(torch.float64)


def train_digits_classifier(seed: int = 0, epochs: int = 30) -> DigitsClassifier:
    """Train the feature network from ``seed`` (about 2-5 s on one CPU thread); sets ``test_accuracy``."""
    from deepul_helpers import config, data

    x, y = data.load("digits", "train", labels=True)
    xt, yt = data.load("digits", "test", labels=True)
    gen = config.seed_everything(seed)
    clf = DigitsClassifier()
    opt = torch.optim.Adam(clf.parameters(), lr=2e-3, weight_decay=1e-4)
    xs, ys = digits_to_float(x), torch.from_numpy(y)
    clf.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xs), generator=gen)
        for i in range(0, len(xs), 64):
            idx = perm[i : i + 64]
            loss = nn.functional.cross_entropy(clf.head(clf.fc(clf.conv(xs[idx]))), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    clf.eval()
    with torch.no_grad():
        clf.feature_scale.fill_(float(clf.hidden(x).pow(2).mean().sqrt()))
        clf.test_accuracy = float((clf(xt).argmax(1).numpy() == yt).mean())
    return clf


def digits_classifier(seed: int = 0, rebuild: bool = False) -> DigitsClassifier:
    """The course's digits feature network for ``seed``: from this process, the cache, or trained now.

    ``rebuild=True`` trains it again (and rewrites the cache). Its held-out accuracy on the
    ``digits`` test split is ``.test_accuracy``.
    """
    if not rebuild and seed in _LOADED:
        return _LOADED[seed]
    path = cache_dir() / f"digits_classifier_v{CLASSIFIER_VERSION}_seed{seed}.pt"
    clf = None
    if not rebuild and path.exists():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            clf = DigitsClassifier()
            clf.load_state_dict(payload["state"])
            clf.test_accuracy = float(payload["test_accuracy"])
        except Exception:  # a corrupt or foreign file: rebuild it
            clf = None
    if clf is None:
        clf = train_digits_classifier(seed)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            torch.save({"state": clf.state_dict(), "test_accuracy": clf.test_accuracy}, tmp)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home: keep the network for this process only
    clf.eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    _LOADED[seed] = clf
    return clf


def _features(images, clf=None) -> torch.Tensor:
    return _Features(clf or digits_classifier())(images)


def frechet_distance(samples, reference, clf=None) -> float:
    """Frechet distance between the Gaussians fitted to the features of ``samples`` and ``reference``.

    ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)), computed by torchmetrics in float64.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_Features(clf or digits_classifier()), reset_real_features=True)
    fid.update(torch.as_tensor(np.asarray(reference)), real=True)
    fid.update(torch.as_tensor(np.asarray(samples)), real=False)
    return float(fid.compute())


def kid_from_features(f_a, f_b, blocks: int = 4) -> tuple[float, float]:
    """Unbiased polynomial-kernel MMD^2 (KID) between two feature sets (N, d), (M, d), and its standard error.

    Each set is cut into ``blocks`` disjoint equal blocks (the first min(N, M) // blocks rows
    of each); block i of one set is compared with block i of the other.
    """
    from torchmetrics.image.kid import poly_mmd

    f_a, f_b = (torch.as_tensor(np.asarray(f), dtype=torch.float64) for f in (f_a, f_b))
    size = min(len(f_a), len(f_b)) // blocks
    if blocks < 2 or size < 2:
        raise ValueError(f"KID needs at least 2 blocks of at least 2 examples; got {len(f_a)} and {len(f_b)} "
                         f"examples for {blocks} blocks")
    est = torch.stack([poly_mmd(f_a[i * size : (i + 1) * size], f_b[i * size : (i + 1) * size])
                       for i in range(blocks)])
    return float(est.mean()), float(est.std(unbiased=True) / math.sqrt(blocks))


def kernel_distance(samples, reference, blocks: int = 4, clf=None) -> tuple[float, float]:
    """KID between ``samples`` and ``reference`` in the course feature space: (estimate, standard error)."""
    clf = clf or digits_classifier()
    return kid_from_features(_features(samples, clf), _features(reference, clf), blocks)


def inception_score(samples, splits: int = 10, clf=None, seed: int = 0) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) with the course classifier, averaged over ``splits`` (mean, std).

    Between 1 (every sample gets the same class distribution) and 10 (confident and balanced).
    """
    from torchmetrics.image.inception import InceptionScore

    with warnings.catch_warnings():  # torchmetrics warns that it keeps every feature: a few thousand here
        warnings.simplefilter("ignore", UserWarning)
        score = InceptionScore(feature=_Features(clf or digits_classifier(), logits=True), splits=splits)
    score.update(torch.as_tensor(np.asarray(samples)))
    with torch.random.fork_rng():  # torchmetrics shuffles before splitting
        torch.manual_seed(seed)
        mean, std = score.compute()
    return float(mean), float(std)


def _reverse_kl_uniform(counts) -> float:
    """KL(q || uniform) in nats for the histogram ``counts`` over K bins (0 when it is empty)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() == 0:
        return float("nan")
    q = counts / counts.sum()
    nz = q > 0
    return float((q[nz] * np.log(q[nz] * len(q))).sum())


def digit_modes(samples, threshold: float = 0.9, min_share: float = 0.01, clf=None) -> dict:
    """Which digit classes the samples cover, according to the course classifier.

    A sample is *confident* when its top class probability is at least ``threshold``; a class
    is covered when at least ``min_share`` of all samples are confidently assigned to it.
    Returns ``covered`` (int, of 10), ``confident_share``, ``counts`` (10 ints) and
    ``reverse_kl`` of the confident samples' class histogram against the uniform one.
    """
    clf = clf or digits_classifier()
    with torch.no_grad():
        probs = torch.softmax(clf(samples), dim=1).numpy()
    top, cls = probs.max(1), probs.argmax(1)
    confident = top >= threshold
    counts = np.bincount(cls[confident], minlength=10)
    return {
        "covered": int((counts >= max(1.0, min_share * len(probs))).sum()),
        "confident_share": float(confident.mean()),
        "counts": counts.tolist(),
        "reverse_kl": _reverse_kl_uniform(counts),
    }


def mixture_modes(name: str) -> tuple[np.ndarray, float]:
    """Means (K, 2) and standard deviation of a registered 2D Gaussian mixture (e.g. ``gaussians_8``)."""
    from deepul_helpers import data

    dist = data.true_distribution(name)
    if not hasattr(dist, "means") or not hasattr(dist, "sd"):
        raise ValueError(f"{name!r} is not a Gaussian mixture; mode coverage needs one (e.g. gaussians_8, "
                         "gaussians_25 and their narrow variants)")
    return np.asarray(dist.means, dtype=np.float64), float(dist.sd)


def mode_coverage(points, modes, sd: float | None = None, n_std: float = 3.0) -> dict:
    """Mode dropping on a 2D Gaussian mixture, measured as the literature does (module docstring).

    ``modes`` is a registered mixture's name or an array of means (K, 2) (then give ``sd``).
    Returns ``modes_covered`` (int), ``n_modes``, ``high_quality`` (share of samples, 0..1),
    ``reverse_kl`` (nats) and ``counts`` (high-quality samples per mode).
    """
    if isinstance(modes, str):
        modes, sd = mixture_modes(modes)
    if sd is None or not sd > 0:
        raise ValueError("give the mixture components' standard deviation sd > 0 with an array of means")
    pts = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    pts, means = pts.astype(np.float64), np.asarray(modes, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"points must have shape (N, 2) with N > 0, got {pts.shape}")
    d = np.sqrt(((pts[:, None, :] - means[None]) ** 2).sum(-1))  # (N, K)
    nearest, dist = d.argmin(1), d.min(1)
    good = dist <= n_std * sd
    counts = np.bincount(nearest[good], minlength=len(means))
    return {
        "modes_covered": int((counts > 0).sum()),
        "n_modes": len(means),
        "high_quality": float(good.mean()),
        "reverse_kl": _reverse_kl_uniform(counts),
        "counts": counts.tolist(),
    }


__all__ = [
    "CACHE_ENV", "DigitsClassifier", "cache_dir", "digit_modes", "digits_classifier", "digits_to_float",
    "frechet_distance", "inception_score", "kernel_distance", "kid_from_features", "mixture_modes",
    "mode_coverage", "train_digits_classifier",
]
