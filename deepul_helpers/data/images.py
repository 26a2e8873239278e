"""Small image sets, NHWC uint8: generated shapes, scikit-learn's digits, photo patches.

- ``shapes``: 20x20 binary images (values 0/1) of one filled square, circle, triangle
  (pointing up, right, down or left) or line segment (about 1.5 pixels thick), at a random
  position and size; labels 0..3 in that order. Generated with numpy from the seed.
- ``shapes_colored``: the same kind of images in colour, 2 bits per channel (values 0..3,
  3 channels): the shape and the background each get one of the 64 colours, never the same.
- ``digits``: scikit-learn's 1,797 handwritten 8x8 digits (values 0..16, 17 levels) with their
  labels; a fixed split (a fixed permutation, then 1,500 train / 297 test). The seed is
  validated and otherwise unused: the set is fixed.
- ``digits_binary``: ``digits`` thresholded at 8 (value >= 8 -> 1), same split and labels.
- ``patches``: every non-overlapping 8x8 tile of scikit-learn's two sample photographs
  (china.jpg, flower.jpg: 2 x 53 x 80 = 8,480 tiles), 2 bits per channel (value // 64);
  a fixed permutation, then 6,784 train / 1,696 test. Fixed set: the seed is unused.
"""

from __future__ import annotations

import numpy as np

from ._common import Spec, photographs, rng_for

SHAPE_NAMES = ("square", "circle", "triangle", "line")
SIZE = 20


def _uniform_centres(rng, half, n):
    """Centres (n, 2) such that a shape of half-size ``half`` (n,) stays inside the image."""
    u = rng.random((n, 2))
    return half[:, None] + u * (SIZE - 2 * half[:, None])


def shape_masks(n: int, rng: np.random.Generator, factors: bool = False):
    """``n`` boolean masks (n, 20, 20) and their labels (n,) int64 (0 square ... 3 line).

    With ``factors=True`` also a dict of the generating factors (see :func:`shapes_factors`);
    the random draws are the same either way.
    """
    labels = rng.integers(0, 4, size=n)
    half = rng.uniform(1.5, 6.5, size=n)  # half-size / radius in pixels
    centre = _uniform_centres(rng, half, n)  # (n, 2) as (y, x)
    rot = rng.integers(0, 4, size=n)  # triangle orientation
    ends = rng.uniform(1.0, SIZE - 1.0, size=(n, 2, 2))  # line end points (n, 2 points, (y, x))
    for _ in range(20):  # redraw lines shorter than 8 pixels
        short = np.linalg.norm(ends[:, 0] - ends[:, 1], axis=1) < 8.0
        if not short.any():
            break
        ends[short] = rng.uniform(1.0, SIZE - 1.0, size=(int(short.sum()), 2, 2))

    py, px = np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5, indexing="ij")  # pixel centres
    dy = py[None] - centre[:, 0, None, None]  # (n, H, W)
    dx = px[None] - centre[:, 1, None, None]
    h = half[:, None, None]
    masks = np.zeros((n, SIZE, SIZE), dtype=bool)
    sel = labels == 0  # square
    masks[sel] = (np.abs(dy[sel]) <= h[sel]) & (np.abs(dx[sel]) <= h[sel])
    sel = labels == 1  # circle
    masks[sel] = dy[sel] ** 2 + dx[sel] ** 2 <= h[sel] ** 2
    for k in range(4):  # triangle, apex up at dy = -h, base at dy = +h, rotated by k quarter turns
        sel = (labels == 2) & (rot == k)  # rotation about the image centre keeps the shape inside
        tri = (dy[sel] <= h[sel]) & (np.abs(dx[sel]) <= (dy[sel] + h[sel]) / 2)
        masks[sel] = np.rot90(tri, k=k, axes=(1, 2))
    sel = labels == 3  # line segment from a to b, pixels within 0.75 of it
    a, b = ends[sel, 0, :, None, None], ends[sel, 1, :, None, None]  # (m, 2, 1, 1)
    ab = b - a
    p = np.stack([py, px])[None]  # (1, 2, H, W)
    t = np.clip(((p - a) * ab).sum(1) / (ab**2).sum(1), 0.0, 1.0)  # (m, H, W)
    masks[sel] = np.linalg.norm(p - (a + t[:, None] * ab), axis=1) <= 0.75
    if not factors:
        return masks, labels.astype(np.int64)
    line = labels == 3  # a line's position is its midpoint, its size half its length
    centre[line] = ends[line].mean(1)
    half[line] = np.linalg.norm(ends[line, 0] - ends[line, 1], axis=1) / 2
    for k in range(1, 4):  # a triangle turned k quarter turns about the image centre moved with it
        sel = (labels == 2) & (rot == k)
        for _ in range(k):
            centre[sel] = np.stack([SIZE - centre[sel, 1], centre[sel, 0]], 1)
    return masks, labels.astype(np.int64), {"kind": labels.astype(np.int64), "size": half, "y": centre[:, 0],
                                            "x": centre[:, 1], "rotation": np.where(labels == 2, rot, 0)}


def shapes_factors(split: str = "train", seed: int = 0) -> dict:
    """The generating factors of ``data.load("shapes", split, seed)``, one entry per image:
    ``kind`` (0 square, 1 circle, 2 triangle, 3 line), ``size`` (half-side / radius / half the
    line's length, pixels), ``y`` and ``x`` (centre, or the line's midpoint, pixels from the top
    left), ``rotation`` (triangle quarter turns, 0 otherwise). Regenerated from the same draws."""
    from . import _check_seed, _check_split

    spec = _shapes_spec(False)
    _, _, f = shape_masks(spec.n_train + spec.n_test, rng_for("shapes", _check_seed(seed)), factors=True)
    sel = slice(0, spec.n_train) if _check_split(split) == "train" else slice(spec.n_train, None)
    return {k: v[sel].copy() for k, v in f.items()}


def _shapes_spec(colored: bool) -> Spec:
    name = "shapes_colored" if colored else "shapes"
    n_train, n_test = 10_000, 2_000

    def generate(seed):
        rng = rng_for(name, seed)
        masks, labels = shape_masks(n_train + n_test, rng)
        if colored:
            bg = rng.integers(0, 64, size=len(masks))
            fg = (bg + rng.integers(1, 64, size=len(masks))) % 64  # never the background colour
            bits = np.array([0, 2, 4])
            bg_rgb, fg_rgb = (bg[:, None] >> bits) & 3, (fg[:, None] >> bits) & 3  # (n, 3)
            x = np.where(masks[..., None], fg_rgb[:, None, None, :], bg_rgb[:, None, None, :])
        else:
            x = masks[..., None]
        x = x.astype(np.uint8)
        return {"train": x[:n_train], "test": x[n_train:],
                "train_labels": labels[:n_train], "test_labels": labels[n_train:]}

    channels, levels = (3, 4) if colored else (1, 2)
    desc = (
        "20x20 images of a square, circle, triangle or line at random position and size; "
        + ("colour, 2 bits per channel (shape and background colours differ)" if colored else "binary")
        + "; labels = shape"
    )
    return Spec(name=name, description=desc, kind="image", shape=(SIZE, SIZE, channels), levels=levels,
                n_train=n_train, n_test=n_test, generate=generate, labels=SHAPE_NAMES)


def _fixed_permutation(n: int, tag: str) -> np.ndarray:
    return rng_for(tag, 0).permutation(n)


def _digits_spec(binary: bool) -> Spec:
    name = "digits_binary" if binary else "digits"

    def generate(seed):
        from sklearn.datasets import load_digits

        d = load_digits()
        order = _fixed_permutation(len(d.target), "digits_split")
        x = d.images[order].astype(np.uint8)[..., None]  # (1797, 8, 8, 1), 0..16
        if binary:
            x = (x >= 8).astype(np.uint8)
        y = d.target[order].astype(np.int64)
        return {"train": x[:1500], "test": x[1500:], "train_labels": y[:1500], "test_labels": y[1500:]}

    desc = (
        "scikit-learn's 8x8 handwritten digits"
        + (", thresholded at 8 (binary)" if binary else ", 17 grey levels")
        + "; fixed 1500/297 split (seed unused); labels 0..9"
    )
    return Spec(name=name, description=desc, kind="image", shape=(8, 8, 1), levels=2 if binary else 17,
                n_train=1500, n_test=297, generate=generate, seeded=False,
                labels=tuple(str(i) for i in range(10)))


def _patches(seed):
    tiles = []
    for photo in photographs():  # (427, 640, 3)
        h, w = (photo.shape[0] // 8) * 8, (photo.shape[1] // 8) * 8
        t = photo[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 8, 8, 3)
        tiles.append(t)
    x = np.concatenate(tiles)[_fixed_permutation(8480, "patches_split")] // 64  # 2 bits per channel
    return {"train": x[:6784].astype(np.uint8), "test": x[6784:].astype(np.uint8)}


SPECS = [
    _shapes_spec(False),
    _shapes_spec(True),
    _digits_spec(False),
    _digits_spec(True),
    Spec(name="patches", description="8x8 RGB tiles of scikit-learn's two sample photographs, 2 bits per "
         "channel; fixed 6784/1696 split (seed unused)", kind="image", shape=(8, 8, 3), levels=4,
         n_train=6784, n_test=1696, generate=_patches, seeded=False),
]
