"""The one benchmark row: every ``deepul bench FAMILY`` writes rows of this shape, so that the
round-up puts every family in one table.

Build a row with :func:`make_row` (it derives bits/dim, the gaps and the true entropy, and
validates), check rows with :func:`validate_rows` (the dispatcher does, for every model family).
Every row has every field of ``FIELDS``; a value is ``None`` where the family has no such figure
(a GAN has no test NLL, a contrastive encoder draws no samples). ``OPTIONAL_FIELDS`` lists the
further quality figures a family may add: one line each, so a family adds its own with a one-line
edit here; any other key is an error.

Quality figures (NLL, cross-entropy, sample-quality scores) come from runs with a fixed number of
epochs and a validation-selected checkpoint; they do not depend on machine speed. Seconds
(``train_s``, ``train_cpu_s``, ``s_per_1000_samples``) do: a row measured on a loaded machine says
so by ``train_cpu_s`` well below ``train_s``.
"""

from __future__ import annotations

import math

import numpy as np

from deepul_helpers import data, metrics

# field -> what it holds (every row has every one of these; None where it does not apply)
FIELDS = {
    "family": "model family: the benchmark's name (autoregressive, flows, latent, implicit, selfsupervised)",
    "model": "the model as a short label (architecture and size)",
    "dataset": "a name in deepul_helpers.data",
    "test_nats_per_dim": "test NLL, or its upper bound, in nats per data dimension (None: no likelihood)",
    "test_bits_per_dim": "the same in bits per dimension",
    "nll_kind": "'exact' (the model's NLL) or 'bound' (an upper bound on it); None without a likelihood",
    "entropy_nats_per_dim": "true entropy of the data's generating distribution where known, else None",
    "gap_percent": "test NLL above the entropy in % of it (a finite test set's average: may dip below 0)",
    "cross_entropy_nats_per_dim": "H(p, q) = -E_p log q over the true distribution p, per dimension",
    "cross_entropy_se": "its standard error: 0.0 when computed exactly over every value, else Monte Carlo",
    "cross_entropy_gap_percent": "cross-entropy above the entropy in %: never below 0 beyond its error",
    "epochs": "epochs trained",
    "iterations": "optimizer steps taken",
    "best_epoch": "epoch of the checkpoint kept by validation (0: before training; None: no validation)",
    "train_s": "wall-clock seconds of training (depends on the machine and its load)",
    "train_cpu_s": "CPU seconds this process spent training (below train_s when the machine was shared)",
    "s_per_1000_samples": "wall-clock seconds to draw 1,000 samples (best of a few repeats)",
    "params": "number of trainable parameters",
}

# Further figures a family may add (one line each; add yours here)
OPTIONAL_FIELDS = {
    "val_nats_per_dim": "validation NLL of the kept checkpoint (nats/dim)",
    "test_bits_per_dim_iw": "importance-weighted bound on the test NLL (bits/dim), k samples in iw_k",
    "iw_k": "importance samples per example for test_bits_per_dim_iw",
    "density_s_per_example": "seconds per example to evaluate the density (MAF/IAF trade-off)",
    "tokens_sampled": "tokens generated per sample in the KV-cache timing",
    "s_per_sample_naive": "seconds per sample recomputing the whole prefix at every step",
    "s_per_sample_cached": "seconds per sample with the KV cache",
    "cache_speedup": "s_per_sample_naive / s_per_sample_cached, measured interleaved in one run",
    "fid": "Frechet distance in the course feature network's space (lower is better)",
    "kid": "kernel inception distance in the same space",
    "kid_se": "standard error of kid",
    "inception_score": "Inception-style score with the course classifier",
    "modes_covered": "modes of a known mixture that samples reach",
    "high_quality_share": "share of samples close to some mode",
    "reverse_kl": "KL(q || p) from samples to the known distribution (nats/dim)",
    "probe_acc_linear": "linear-probe accuracy of the representation",
    "probe_acc_knn": "k-nearest-neighbour probe accuracy of the representation",
    "labels_per_class": "labelled training examples per class the probe saw (0: all of them)",
    "probe_acc_linear_std": "standard deviation of probe_acc_linear over the draws of the labelled examples",
    "probe_acc_knn_std": "standard deviation of probe_acc_knn over the same draws",
    "probe_draws": "seeded draws of the labelled examples the probe accuracies average over",
    "processes": "processes that trained together (torch.distributed), negatives gathered across them",
    "s_per_step": "wall-clock seconds per optimizer step (the machine's load counts)",
    "mode_kl": "KL(histogram of high-quality samples over the modes || uniform), nats (PacGAN's reverse KL)",
    "seeds": "number of seeds a row's quality figures are averaged over",
    "modes_covered_spread": "max - min over the seeds of modes_covered",
    "high_quality_spread": "max - min over the seeds of high_quality_share",
    "test_bits_per_dim_spread": "max - min over the seeds of test_bits_per_dim",
    "gap_spread": "max - min over the seeds of the gap to the entropy (cross_entropy_gap_percent where known)",
    "fid_spread": "max - min over the seeds of fid",
    "probe_acc_linear_spread": "max - min over the seeds of probe_acc_linear",
    "fid_data": "Frechet distance of the training split to the test split: what a perfect sampler scores",
    "budget_cpu_s": "CPU seconds of training each model of the round-up was allowed (the same for every family)",
    "s_per_1000_samples_20x20": "seconds per 1,000 samples of the same architecture built for 20x20 shapes (untrained)",
    "sampling_passes": "network passes per sample, counted (autoregressive models)",
    "sampling_passes_20x20": "the same for the 20x20 build",
    "probe_acc_linear_1": "linear-probe accuracy with 1 label per class (mean over probe_draws)",
    "probe_acc_linear_all": "linear-probe accuracy with every training label",
    "ood_bits_inverted": "bits/dim (NLL or its bound) of the test digits inverted (16 - x)",
    "ood_bits_noise": "bits/dim of uniform noise images",
    "ood_bits_shapes": "bits/dim of shapes test images shrunk to 8x8 at levels 0 / 16",
    "ood_bits_blank": "bits/dim of an all-zero image",
    "latent_dims": "dimensions of the model's latent code (flows: as many as the data)",
    "data_dims": "dimensions of one example in data space",
}

# The run's metadata: the dispatcher (``deepul bench``) stamps these on every row it writes, so that a JSON file
# says how it was made. Optional in a row a family returns.
RUN_FIELDS = {
    "quick": "true when the run was in quick mode (--quick or DEEPUL_QUICK=1: a few iterations, numbers that "
             "check the code, not the claims)",
}

NLL_KINDS = ("exact", "bound")


def make_row(family: str, model: str, dataset: str, *, test_nats_per_dim=None, nll_kind=None,
             cross_entropy=None, history=None, s_per_1000_samples=None, params=None, **optional) -> dict:
    """One validated row. ``cross_entropy``: ``(nats_per_dim, se)`` from :func:`true_cross_entropy` or
    None; ``history``: the ``train.fit`` History (epochs, iterations, best epoch, wall and CPU seconds);
    ``optional``: fields of ``OPTIONAL_FIELDS``. Bits, gaps and the data set's entropy are derived here."""
    entropy = data.info(dataset).entropy
    h_pq, h_se = cross_entropy if cross_entropy is not None else (None, None)
    row = {
        "family": family, "model": model, "dataset": dataset,
        "test_nats_per_dim": None if test_nats_per_dim is None else float(test_nats_per_dim),
        "test_bits_per_dim": None if test_nats_per_dim is None else float(metrics.bits_per_dim(test_nats_per_dim)),
        "nll_kind": nll_kind,
        "entropy_nats_per_dim": entropy,
        "gap_percent": metrics.gap_percent(test_nats_per_dim, entropy),
        "cross_entropy_nats_per_dim": h_pq, "cross_entropy_se": h_se,
        "cross_entropy_gap_percent": metrics.gap_percent(h_pq, entropy),
        "epochs": None if history is None else history.epochs,
        "iterations": None if history is None else history.iterations,
        "best_epoch": None if history is None else history.best_epoch,
        "train_s": None if history is None else history.wall_time_s,
        "train_cpu_s": None if history is None else history.cpu_time_s,
        "s_per_1000_samples": s_per_1000_samples,
        "params": params,
        **optional,
    }
    validate_row(row)
    return row


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def validate_row(row: dict, family: str | None = None) -> None:
    """Raise ValueError, naming the field, unless ``row`` follows the schema (and is of ``family``)."""
    where = f"bench row {row.get('family')}/{row.get('model')}/{row.get('dataset')}"
    missing = [k for k in FIELDS if k not in row]
    unknown = [k for k in row if k not in FIELDS and k not in OPTIONAL_FIELDS and k not in RUN_FIELDS]
    if missing:
        raise ValueError(f"{where}: missing fields {missing}; build rows with bench.schema.make_row")
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; add each to OPTIONAL_FIELDS in "
                         "deepul_helpers/bench/schema.py (one line: name and what it holds)")
    if family is not None and row["family"] != family:
        raise ValueError(f"{where}: family is {row['family']!r}, but the benchmark is {family!r}")
    if row["dataset"] not in data.names():
        raise ValueError(f"{where}: unknown data set {row['dataset']!r}")
    for k, v in row.items():
        if k in ("family", "model", "dataset", "nll_kind"):
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{where}: {k} must be a string, got {v!r}")
        elif k == "quick":
            if not isinstance(v, bool):
                raise ValueError(f"{where}: quick must be true or false, got {v!r}")
        elif v is not None and not _is_number(v):
            raise ValueError(f"{where}: {k} must be a number or None, got {v!r}")
    for k in ("family", "model", "dataset"):
        if not row[k]:
            raise ValueError(f"{where}: {k} must be a non-empty string")
    nats = row["test_nats_per_dim"]
    if (nats is None) != (row["nll_kind"] is None) or (nats is not None and row["nll_kind"] not in NLL_KINDS):
        raise ValueError(f"{where}: nll_kind must be one of {NLL_KINDS} with a test NLL, None without one; "
                         f"got nll_kind={row['nll_kind']!r}, test_nats_per_dim={nats!r}")
    if nats is not None and not math.isfinite(nats):
        raise ValueError(f"{where}: test_nats_per_dim must be finite, got {nats}")
    entropy = data.info(row["dataset"]).entropy
    _same(where, "test_bits_per_dim", row["test_bits_per_dim"], None if nats is None else metrics.bits_per_dim(nats))
    _same(where, "entropy_nats_per_dim", row["entropy_nats_per_dim"], entropy)
    _same(where, "gap_percent", row["gap_percent"], metrics.gap_percent(nats, entropy))
    h_pq, h_se = row["cross_entropy_nats_per_dim"], row["cross_entropy_se"]
    if (h_pq is None) != (h_se is None):
        raise ValueError(f"{where}: cross_entropy_nats_per_dim and cross_entropy_se go together")
    _same(where, "cross_entropy_gap_percent", row["cross_entropy_gap_percent"], metrics.gap_percent(h_pq, entropy))
    if h_pq is not None and entropy is not None and h_pq < entropy - max(4 * h_se, 1e-9 * abs(entropy)):
        raise ValueError(f"{where}: cross-entropy {h_pq:.6g} is below the entropy {entropy:.6g} by more than "
                         f"4 standard errors ({h_se:.2g}): the model is not normalised, or the figure is wrong")
    for k in ("epochs", "iterations", "best_epoch", "params"):
        if row[k] is not None and (not isinstance(row[k], (int, np.integer)) or row[k] < 0):
            raise ValueError(f"{where}: {k} must be a non-negative integer or None, got {row[k]!r}")
    for k in ("train_s", "train_cpu_s", "s_per_1000_samples"):
        if row[k] is not None and not row[k] >= 0:
            raise ValueError(f"{where}: {k} must be non-negative seconds or None, got {row[k]!r}")


def _same(where, name, got, expected) -> None:
    if (got is None) != (expected is None) or (got is not None and not math.isclose(got, expected, rel_tol=1e-9,
                                                                                    abs_tol=1e-12)):
        raise ValueError(f"{where}: {name} is {got!r}, the schema derives {expected!r}; use bench.schema.make_row")


def validate_rows(rows, family: str) -> list[dict]:
    """Every row of ``family``'s benchmark checked against the schema; returns the rows."""
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"bench {family}: run() must return a non-empty list of row dicts")
    for row in rows:
        validate_row(row, family)
    return rows


# ----------------------------------------------------------------------------- measurements for a row


def true_cross_entropy(model, dataset: str, *, n_monte_carlo: int = 20_000, seed: int = 0):
    """``(H(p, q) in nats/dim, standard error)`` of ``model.log_prob`` against the data set's true
    distribution p, or None where p is unknown.

    A probability table (the 1D and 2D discrete sets) is enumerated: the exact -sum_x p(x) log q(x),
    standard error 0. Other known distributions: the Monte Carlo average of -log q over
    ``n_monte_carlo`` fresh samples of p, with its standard error. For a model that reports a bound
    (dequantized flows, VAEs), this is the cross-entropy of the bound.
    """
    import torch

    from deepul_helpers.data._common import DiscreteDistribution
    from deepul_helpers.models._common import model_device

    try:
        dist = data.true_distribution(dataset)
    except ValueError:
        return None
    info = data.info(dataset)
    dims = math.prod(info.shape) if info.shape else 1

    def log_q(x: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(x).to(model_device(model))
        with torch.no_grad():
            return torch.cat([model.log_prob(b) for b in t.split(4096)]).double().cpu().numpy()

    model.eval()
    if isinstance(dist, DiscreteDistribution):
        values = np.stack(np.unravel_index(np.arange(dist.probs.size), dist.probs.shape), 1)  # (V, ndim)
        values = values.reshape(-1) if dist.ndim == 1 else values
        return metrics.cross_entropy(dist.probs.ravel(), log_q(values.astype(np.int64))) / dims, 0.0
    samples = dist.sample(n_monte_carlo, np.random.default_rng(seed))
    samples = samples.astype(np.float32) if info.levels is None else samples.astype(np.int64)
    h, se = metrics.entropy_monte_carlo(log_q, samples)  # -mean log q over samples of p, and its error
    return h / dims, se / dims


def seconds_per_1000_samples(model, n: int, repeats: int = 3, **sample_kwargs) -> float:
    """Wall seconds per 1,000 samples: best of ``repeats`` calls of ``model.sample(n)`` after a warm-up."""
    from deepul_helpers.timing import best_of

    return best_of(model.sample, n, repeats=repeats, warmup=1, **sample_kwargs).best_s / n * 1000


def likelihood_row(family: str, label: str, dataset: str, make, *, epochs: int, lr: float, batch_size: int,
                   nll_kind: str = "exact", quick: bool = False, device: str = "auto", seed: int = 0,
                   val_fraction: float = 0.1, test_draws: int = 1, n_samples: int = 16, measure=None, **fit_kwargs):
    """Train a likelihood model the same way in every family and measure one row.

    ``make()`` builds the model (after seeding). ``fit`` trains it for ``epochs`` with a seeded
    validation split (``val_fraction``) and keeps the best epoch; then the test NLL (mean ``loss``
    over the whole test split, averaged over ``test_draws`` seeded draws for a stochastic bound),
    the cross-entropy against the true distribution where known, the sampling time and the
    parameter count. ``measure(model, test) -> dict`` adds a family's optional fields.
    """
    import torch

    from deepul_helpers import config
    from deepul_helpers.train import evaluate, fit

    quick = config.is_quick(quick)
    train, test = data.load(dataset, "train"), data.load(dataset, "test")
    test = test[: config.pick(len(test), config.QUICK_MAX_TEST_EXAMPLES, quick=quick)]
    config.seed_everything(seed)
    model = make()
    hist = fit(model, train, None, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=device,
               quick=quick, progress=False, val_fraction=val_fraction, **fit_kwargs)
    model.eval()
    config.seed_everything(seed)  # the same noise draws on every run: a stochastic bound is reproducible
    with torch.no_grad():
        nll = sum(evaluate(model, test) for _ in range(test_draws)) / test_draws
        h_pq = true_cross_entropy(model, dataset, n_monte_carlo=config.pick(20_000, 500, quick=quick), seed=seed)
    model.eval()  # evaluate() hands the model back in training mode
    n = config.pick(n_samples, 2, quick=quick)
    s_per_1000 = seconds_per_1000_samples(model, n, repeats=config.pick(3, 1, quick=quick))
    extra = measure(model, test) if measure is not None else {}
    return make_row(family, label, dataset, test_nats_per_dim=nll, nll_kind=nll_kind, cross_entropy=h_pq,
                    history=hist, s_per_1000_samples=s_per_1000, params=sum(p.numel() for p in model.parameters()),
                    val_nats_per_dim=float(hist.val_losses[hist.best_epoch]), **extra)
