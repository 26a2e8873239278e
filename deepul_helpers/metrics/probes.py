"""Probes: how much a frozen representation knows about labels it never saw in training.

A self-supervised encoder is judged by a small supervised model trained **on its frozen
features** with few labels: a linear probe (multinomial logistic regression) and a k-nearest-
neighbour probe (cosine distance), each with 1, 10 and all labels per class. Both are
scikit-learn's estimators; nothing here trains the encoder.

    from deepul_helpers.metrics import probes
    f_train, f_test = probes.embed(encoder, x_train), probes.embed(encoder, x_test)
    rows = probes.probe(f_train, y_train, f_test, y_test)          # linear, 1 / 10 / all labels
    rows = probes.probe(probes.pixels(x_train), y_train, probes.pixels(x_test), y_test, kind="knn")
    probes.table(rows)                                              # {"linear@1": "64.9 ± 3.1", ...}

Each row is ``{"kind", "labels_per_class", "mean", "std", "accuracies", "n_labelled"}``: the
accuracy on the whole test split (fraction in [0, 1]) for each seeded draw of the labelled
subset, its mean and standard deviation (``ddof=0``; 0 when there is one draw, as for "all").
``labels_per_class=None`` means every training label.
"""

from __future__ import annotations

import numpy as np

KINDS = ("linear", "knn")
DEFAULT_LABELS_PER_CLASS = (1, 10, None)


def pixels(x) -> np.ndarray:
    """Raw-pixel features: images (N, ...) of any integer or float dtype -> (N, D) float32."""
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    return x.reshape(len(x), -1).astype(np.float32)


def embed(encoder, x, batch_size: int = 512, device=None) -> np.ndarray:
    """Frozen features of ``encoder`` (a module with ``encode(x)`` or a callable) on the examples
    ``x`` (numpy or tensor, as the data set stores them): (N, F) float32, computed in eval mode
    without gradients, in batches, on the encoder's device (or ``device``)."""
    import torch

    fn = encoder.encode if hasattr(encoder, "encode") else encoder
    if device is None:
        params = list(encoder.parameters()) if hasattr(encoder, "parameters") else []
        device = params[0].device if params else torch.device("cpu")
    was_training = getattr(encoder, "training", False)
    if hasattr(encoder, "eval"):
        encoder.eval()
    x = torch.as_tensor(np.ascontiguousarray(x)) if not isinstance(x, torch.Tensor) else x
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out.append(fn(x[start:start + batch_size].to(device)).float().cpu())
    if was_training:
        encoder.train()
    return torch.cat(out).reshape(len(x), -1).numpy()


def labelled_subset(y, labels_per_class: int | None, rng) -> np.ndarray:
    """Indices of ``labels_per_class`` examples of every class of ``y`` (all of them for None),
    drawn without replacement by ``rng`` (a numpy Generator or an integer seed), sorted."""
    y = np.asarray(y)
    if labels_per_class is None:
        return np.arange(len(y))
    if isinstance(labels_per_class, bool) or not isinstance(labels_per_class, (int, np.integer)) \
            or labels_per_class < 1:
        raise ValueError(f"labels_per_class must be a positive integer or None (all), got {labels_per_class!r}")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    picked = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < labels_per_class:
            raise ValueError(f"class {c} has only {len(idx)} training examples, fewer than "
                             f"labels_per_class={labels_per_class}; ask for fewer labels")
        picked.append(rng.choice(idx, size=labels_per_class, replace=False))
    return np.sort(np.concatenate(picked))


def _estimator(kind: str, n_labelled: int, n_classes: int, neighbours: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "linear":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    # k-NN: cosine distance, k no larger than the labelled examples of one class
    return KNeighborsClassifier(n_neighbors=max(1, min(neighbours, n_labelled // n_classes)), metric="cosine")


def accuracy(kind: str, train_features, train_labels, test_features, test_labels, neighbours: int = 5) -> float:
    """Test accuracy of one probe (``"linear"`` or ``"knn"``) fitted on the given labelled features."""
    if kind not in KINDS:
        raise ValueError(f"unknown probe kind {kind!r}; use one of {KINDS}")
    f_tr, f_te = np.asarray(train_features, np.float64), np.asarray(test_features, np.float64)
    y_tr, y_te = np.asarray(train_labels), np.asarray(test_labels)
    if f_tr.ndim != 2 or f_te.ndim != 2 or f_tr.shape[1] != f_te.shape[1]:
        raise ValueError(f"features must be (N, F) with the same F for train and test, got {f_tr.shape} "
                         f"and {f_te.shape}; flatten them first (probes.pixels or probes.embed)")
    if len(f_tr) != len(y_tr) or len(f_te) != len(y_te):
        raise ValueError("each features array needs one label per row")
    if not (np.isfinite(f_tr).all() and np.isfinite(f_te).all()):
        raise ValueError("features hold NaN or inf values; the encoder diverged")
    n_classes = len(np.unique(y_tr))
    if n_classes < 2:
        raise ValueError("a probe needs labelled examples of at least two classes")
    est = _estimator(kind, len(y_tr), n_classes, neighbours)
    est.fit(f_tr, y_tr)
    return float(np.mean(est.predict(f_te) == y_te))


def probe(train_features, train_labels, test_features, test_labels, *, kind: str = "linear",
          labels_per_class=DEFAULT_LABELS_PER_CLASS, draws: int = 3, seed: int = 0,
          neighbours: int = 5) -> list[dict]:
    """A ``kind`` probe with each number of labels per class in ``labels_per_class`` (None = all).

    ``draws`` seeded draws of the labelled subset per setting (one for "all": it is one subset);
    draw ``i`` of a setting uses the generator seeded ``(seed, labels_per_class, i)``, so two
    representations probed with the same seed see the same labelled examples. Returns one row per
    setting (see the module docstring)."""
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    rows = []
    for k in labels_per_class:
        accs = []
        for i in range(1 if k is None else draws):
            idx = labelled_subset(train_labels, k, np.random.default_rng([seed, k or 0, i]))
            accs.append(accuracy(kind, np.asarray(train_features)[idx], np.asarray(train_labels)[idx],
                                 test_features, test_labels, neighbours))
        rows.append({"kind": kind, "labels_per_class": k, "mean": float(np.mean(accs)),
                     "std": float(np.std(accs)), "accuracies": accs, "n_labelled": len(idx)})
    return rows


def table(rows) -> dict[str, str]:
    """Rows of :func:`probe` -> ``{"linear@10": "87.1 ± 1.2", "linear@all": ...}`` (percent)."""
    return {f"{r['kind']}@{r['labels_per_class'] or 'all'}": f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}"
            for r in rows}


__all__ = ["DEFAULT_LABELS_PER_CLASS", "KINDS", "accuracy", "embed", "labelled_subset", "pixels", "probe", "table"]
