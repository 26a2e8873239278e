"""``deepul bench roundup``: every family on the same data under the same CPU budget, in the one row schema.

On ``digits`` (8x8, 17 levels), each model is built with its family's public constructor, trained by
``train.fit`` for the same ``budget_cpu_s`` seconds of this process's CPU time (``budget_clock="cpu"``,
so a loaded machine changes the comparison less than a wall-clock budget would; epochs capped), on 90%
of the training split, keeping the epoch with the lowest loss on the other 10% (GANs: the last epoch,
they have no validation loss). One row per model holds (``None`` where the family cannot answer):

1. test NLL in nats and bits/dim, ``exact`` or ``bound``;
2. training seconds; seconds per 1,000 samples on digits (8x8) and for the same architecture built for
   20x20 ``shapes`` (``s_per_1000_samples_20x20``; untrained: the time does not depend on the weights),
   with the network passes per sample counted for the autoregressive models;
3. Frechet distance and KID of 1,000 samples against the test digits, digit classes covered;
4. linear-probe accuracy with 1, 10 and all labels per class of the model's representation (VAE posterior
   mean, flow latent, DCGAN discriminator features, PixelCNN hidden features, self-supervised encoders)
   beside raw pixels;
5. (interpolation strips go to ``artifacts``, not rows);
6. bits/dim on out-of-distribution inputs: inverted digits, uniform noise, ``shapes`` shrunk to 8x8 at
   17 levels, a blank image;
7. parameters, and latent size against data size.

The image models: MADE, PixelCNN, Gated PixelCNN, the parallel multiscale PixelCNN, an Image Transformer;
RealNVP with uniform and with variational dequantization; the VAE and the IAF-posterior VAE (their -ELBO,
and beside it the IWAE-k bound ``test_bits_per_dim_iw``, k = 1000), the VQ-VAE with its PixelCNN prior over
the 4x4 code grid (stage 1 and the prior share the budget, ``VQ_STAGE1_SHARE``; its NLL the bound
-log p(x|z_q) - log p(z_q)); the DCGAN with the non-saturating loss and with the hinge loss and spectral norm.

On the 2D toys (where a family applies): an autoregressive continuous density (mixture CDFs), RealNVP and
the grid-normalised energy-based model (trained by denoising score matching, exact NLL on its grid) on
``checkerboard`` and ``gaussians_8`` (gap of the cross-entropy to the true entropy), and a GAN against a VAE
on the narrow ring and grid (modes covered, high-quality share). Self-supervised: SimCLR at batch 32 and
256 and MoCo (batch 32, queue 512) under the same budget, for the batch-size claim.

Seeds: ``SEEDS`` (3) where the spread matters: the VAE and both DCGANs on digits (the sample-quality,
blurriness and first-choice claims compare them closely) and every 2D row (the mode and gap comparisons);
one seed elsewhere (the autoregressive and flow rows' bits/dim differ by more than a seed moves them; the
self-supervised rows' claim asks for a margin of one point). A seeded row holds the mean over its seeds,
``seeds`` and the spreads (max - min: ``test_bits_per_dim_spread``, ``gap_spread``, ``fid_spread``,
``probe_acc_linear_spread``, ``modes_covered_spread``, ``high_quality_spread``); timings are the first seed's.
The claims call a difference smaller than the spreads a tie. The cost, by the budgets: 9 one-seed image
models x 60 + 3 seeded image models x 3 x 60 + 3 self-supervised x 60 = 1,260 CPU s, and 10 2D models x 3
seeds x 10 = 300 CPU s: 1,560 CPU s of training, about 26 minutes, plus the evaluations, on one thread
(under 30 minutes on an idle machine; a shared one stretches the wall time, not the figures).

``claims.table(rows)`` turns the rows into the lecture's claims with verdicts. ``FLOWPP_TABLE`` holds the
published bits/dim by family (Ho et al. 2019, "Flow++", Table 2) for the lecture's comparison.
Full run: ``nice -n 10 deepul bench roundup`` (writes ``out/bench/roundup.json``; the samples and
interpolation strips go to ``out/bench/roundup_artifacts.npz``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepul_helpers import config, data, metrics, train
from deepul_helpers.bench import schema

BUDGET_CPU_S = 60.0  # CPU seconds of training per image model (the same for every family)
TOY_BUDGET_CPU_S = 10.0  # per 2D model and seed
SEEDS = (0, 1, 2)  # for the seeded rows (see the module docstring); quick mode: the first two
VQ_STAGE1_SHARE = 2 / 3  # of the VQ-VAE's budget for its encoder, decoder and codebook; the rest for its prior
IW_K = 1000  # importance samples of the IWAE bound beside the VAEs' -ELBO (quick: 4)
EBM_BOX = {"checkerboard": (-4.0, 4.0, -4.0, 4.0), "gaussians_8": (-7.0, 7.0, -7.0, 7.0)}  # all but < 1e-9 of
# the mass (the checkerboard's support exactly; the ring's Gaussians, sd 0.5 at radius 4, to 6 sd)
MAX_EPOCHS = 2000  # a cap the budget reaches first in full mode (400 stopped the VAEs at 41-45 of 60 CPU s)
ARTIFACTS = "roundup_artifacts.npz"  # the samples and interpolations, beside roundup.json in the bench folder
REGENERATE = "nice -n 10 deepul bench roundup   (in the course checkout; about 30 CPU minutes)"
OOD_SETS = ("inverted", "noise", "shapes", "blank")

# Ho, Chen, Srinivas, Duan, Abbeel (2019), "Flow++", Table 2: test bits/dim on
# CIFAR-10 / ImageNet 32x32 / ImageNet 64x64 (None: not reported). (kind, model, cifar10, imagenet32, imagenet64)
FLOWPP_TABLE = [
    ("non-autoregressive", "RealNVP", 3.49, 4.28, None),
    ("non-autoregressive", "Glow", 3.35, 4.09, 3.81),
    ("non-autoregressive", "IAF-VAE", 3.11, None, None),
    ("non-autoregressive", "Flow++", 3.09, 3.86, 3.69),
    ("autoregressive", "Multiscale PixelCNN", None, 3.95, 3.70),
    ("autoregressive", "PixelCNN", 3.14, None, None),
    ("autoregressive", "PixelRNN", 3.00, 3.86, 3.63),
    ("autoregressive", "Gated PixelCNN", 3.03, 3.83, 3.57),
    ("autoregressive", "PixelCNN++", 2.92, None, None),
    ("autoregressive", "Image Transformer", 2.90, 3.77, None),
    ("autoregressive", "PixelSNAIL", 2.85, 3.80, 3.52),
]
# Flow++ table name -> the label of our model of the same kind on digits
FLOWPP_OURS = {"RealNVP": "RealNVP (uniform dequantization)", "IAF-VAE": "IAF-VAE",
               "Multiscale PixelCNN": "Parallel PixelCNN", "PixelCNN": "PixelCNN",
               "Gated PixelCNN": "Gated PixelCNN", "Image Transformer": "Image Transformer",
               "Flow++": "RealNVP (variational dequantization)"}


# the labels the claims (bench/claims.py) look up
PIXELCNN, PARALLEL, GATED = "PixelCNN", "Parallel PixelCNN", "Gated PixelCNN"
FLOW_U, FLOW_V = "RealNVP (uniform dequantization)", "RealNVP (variational dequantization)"
VAE, IAF_VAE, VQVAE, DCGAN, DCGAN_HINGE = "VAE", "IAF-VAE", "VQ-VAE (PixelCNN prior)", "DCGAN", "DCGAN hinge+SN"
AR_2D, FLOW_2D = "autoregressive mixture CDFs (continuous)", "RealNVP (8 couplings)"
EBM_2D = "EBM (grid-normalised, score matching)"
GAN_2D, VAE_2D = "GAN (MLP, non-saturating)", "VAE (2D latent, Gaussian decoder)"
# the 2D GAN: the implicit benchmark's settings of this session's sweep (MLP 3x256, Adam betas (0.5, 0.9)), pinned
# here so that out/bench/roundup.json stays reproducible when that benchmark is retuned; lr 1e-3, batch 256
GAN_2D_NET, GAN_2D_BETAS = {"hidden": 256, "layers": 3}, (0.5, 0.9)
SIMCLR_32, SIMCLR_256, MOCO_32, RAW = "SimCLR, batch 32", "SimCLR, batch 256", "MoCo, batch 32, queue 512", "raw pixels"
TOYS_2D, MIXTURES_2D = ("checkerboard", "gaussians_8"), {"gaussians_8_narrow": 8, "gaussians_25_narrow": 25}


@dataclass
class Spec:
    """One image model of the round-up. ``build(shape, levels)`` makes it for any image size;
    ``features(model)`` -> a callable x -> (B, F) representation, ``latent(model)`` -> (encode, decode)."""
    family: str
    label: str
    build: Callable
    nll_kind: str | None = "exact"
    lr: float = 2e-3
    batch_size: int = 64
    step: Callable | None = None
    features: Callable | None = None
    latent: Callable | None = None
    seeded: bool = False  # trained from every seed of SEEDS (else the first only)
    fit: Callable | None = None  # fit(model, x, budget, quick, device, seed) -> History, instead of one train.fit
    iw: bool = False  # report the IWAE bound beside the -ELBO


def _hidden_of(module_name: str):
    """features(model): the output of submodule ``module_name`` during a forward pass, flattened."""

    def features(model):
        layer = dict(model.named_modules())[module_name]

        def f(x):
            got = []
            hook = layer.register_forward_hook(lambda _m, _i, out: got.append(out))
            try:
                model.logits(x) if hasattr(model, "logits") else model.discriminate(model.encode(x))
            finally:
                hook.remove()
            return got[-1].reshape(len(x), -1)

        return f

    return features


def _vae_latent(model):
    inner = model.model
    return (lambda x: inner.encode(inner.lik.check(x, "roundup"))[0],
            lambda z: inner.decoder.sample(z, noise=False))


def _flow_latent(model):
    return model.encode, model.decode  # z in the flow's internal layout, as many numbers as x


def _vqvae(shape, levels):
    """The family's VQ-VAE (8x8 -> a 4x4 grid of 32 codes) with the family's PixelCNN as its prior."""
    from deepul_helpers.models import autoregressive as ar
    from deepul_helpers.models import latent as lt

    vq = lt.VQVAE(shape, levels, n_codes=32, code_dim=16, hidden=64)
    vq.prior = ar.PixelCNN(vq.grid + (1,), vq.n_codes, n_filters=32, n_layers=3, kernel_size=3)
    return vq


def _fit_vqvae(vq, x, budget, quick, device, seed):
    """The VQ-VAE's two stages under one budget: encoder, decoder and codebook (``objective_step``; no
    validation, the bound needs the prior) for ``VQ_STAGE1_SHARE`` of it, then the prior on the training
    codes (validation split, best epoch kept). The History adds the two stages up."""
    from deepul_helpers.models import latent as lt

    prior, vq.prior = vq.prior, None
    h1 = _fit(vq, x, lt.objective_step, 2e-3, 64, budget * VQ_STAGE1_SHARE, quick, device, False, seed)
    vq.cpu().eval()
    codes = vq.codes(torch.as_tensor(x)).numpy()
    h2 = _fit(prior, codes, None, 2e-3, 64, budget * (1 - VQ_STAGE1_SHARE), quick, device, True, seed)
    vq.prior = prior.cpu().eval()
    return train.History(train_losses=np.concatenate([h1.train_losses, h2.train_losses]),
                         test_losses=h2.test_losses, wall_time_s=h1.wall_time_s + h2.wall_time_s,
                         epochs=h1.epochs + h2.epochs, iterations=h1.iterations + h2.iterations, device=h2.device,
                         quick=h2.quick, val_losses=h2.val_losses, best_epoch=h2.best_epoch,
                         cpu_time_s=h1.cpu_time_s + h2.cpu_time_s)


def _vq_features(model):
    return lambda x: model.encode(x).reshape(len(x), -1)  # z_e, before quantisation (4 x 4 x 16)


def digit_specs(k_iw: int = 8) -> list[Spec]:
    """The image models of the round-up (built lazily: no family is imported before it is needed)."""
    from deepul_helpers.bench.latent import BoundModel
    from deepul_helpers.models import autoregressive as ar
    from deepul_helpers.models import flows as fl
    from deepul_helpers.models import implicit
    from deepul_helpers.models import latent as lt

    flat = (lambda m: lambda x: m.encode(x).reshape(len(x), -1))  # noqa: E731
    vae_mu = (lambda m: _vae_latent(m)[0])  # noqa: E731
    return [
        Spec("autoregressive", "MADE", lambda s, k: ar.MADE(s, k, hidden=(500, 500)), lr=1e-3),
        Spec("autoregressive", PIXELCNN, lambda s, k: ar.PixelCNN(s, k, n_filters=32, n_layers=5, kernel_size=5),
             features=_hidden_of("out1")),
        Spec("autoregressive", GATED,
             lambda s, k: ar.GatedPixelCNN(s, k, n_filters=32, n_layers=4, kernel_size=3)),
        Spec("autoregressive", PARALLEL, lambda s, k: ar.ParallelPixelCNN(s, k, n_filters=32, n_layers=6)),
        Spec("autoregressive", "Image Transformer", lambda s, k: ar.ImageTransformer(s, k, d_model=64, n_heads=4),
             lr=1e-3),
        Spec("flows", FLOW_U,
             lambda s, k: fl.RealNVPImage(s, k, channels=32, n_blocks=1), "bound", features=flat, latent=_flow_latent),
        Spec("flows", FLOW_V,
             lambda s, k: fl.RealNVPImage(s, k, channels=32, n_blocks=1, dequantization="variational",
                                          deq_couplings=2, deq_channels=16), "bound", features=flat,
             latent=_flow_latent),
        Spec("latent", VAE, lambda s, k: BoundModel(lt.VAE(s, "categorical", k, latent_dim=16, hidden=256,
                                                              warmup_iters=300), k_iw),
             "bound", lr=1e-3, step=lt.objective_step, features=vae_mu, latent=_vae_latent, seeded=True, iw=True),
        Spec("latent", IAF_VAE, lambda s, k: BoundModel(lt.IAFVAE(s, "categorical", k, latent_dim=16, n_flows=2,
                                                                     flow_hidden=64, hidden=256, warmup_iters=300),
                                                           k_iw),
             "bound", lr=1e-3, step=lt.objective_step, features=vae_mu, iw=True),  # encode: the mean before
        # the IAF layers, not the posterior's: no interpolation strip from it
        Spec("latent", VQVAE, _vqvae, "bound", fit=_fit_vqvae, features=_vq_features),
        Spec("implicit", DCGAN, lambda s, k: implicit.dcgan("digits" if s[0] == 8 else "shapes"), None, lr=2e-4,
             step=implicit.gan_step, features=_hidden_of("discriminator.5"), seeded=True),
        Spec("implicit", DCGAN_HINGE, lambda s, k: implicit.dcgan("digits" if s[0] == 8 else "shapes", loss="hinge"),
             None, lr=2e-4, step=implicit.gan_step, features=_hidden_of("discriminator.5"), seeded=True),
    ]


def _params(model) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def ood_sets(n: int = 297, seed: int = 0) -> dict[str, np.ndarray]:
    """Out-of-distribution inputs in the digits format ((n, 8, 8, 1) uint8, levels 0..16): the test digits
    inverted, uniform noise, ``shapes`` test images shrunk to 8x8 (nearest pixel) at levels 0 / 16, blank."""
    test = data.load("digits", "test")[:n]
    rng = np.random.default_rng(seed)
    shp = data.load("shapes", "test")[:n]
    idx = np.round(np.linspace(0, shp.shape[1] - 1, 8)).astype(int)
    return {"inverted": (16 - test).astype(np.uint8), "noise": rng.integers(0, 17, test.shape).astype(np.uint8),
            "shapes": (shp[:, idx][:, :, idx] * 16).astype(np.uint8), "blank": np.zeros_like(test)}


def bits_per_dim(model, x, seed: int = 0) -> float:
    """Mean ``model.loss`` over ``x`` (batches of 256, seeded noise draws) in bits/dim."""
    config.seed_everything(seed)
    with torch.no_grad():
        return float(metrics.bits_per_dim(train.evaluate(model, x)))


def count_passes(model) -> int:
    """Network passes of ``model.sample(1)``: the calls of its first parameterised layer."""
    first = next(m for m in model.modules() if not list(m.children()) and list(m.parameters(recurse=False)))
    calls = []
    hook = first.register_forward_hook(lambda *_: calls.append(1))
    try:
        model.sample(1)
    finally:
        hook.remove()
    return len(calls)


def _probe(features, x, y, xt, yt) -> dict:
    """Linear probes with 1 / 10 / all labels per class; ``features``: a callable on a batch as stored
    (embedded without gradients, in batches, by ``probes.embed``), or ``probes.pixels``."""
    from deepul_helpers.metrics import probes

    embed = features if features is probes.pixels else (lambda v: probes.embed(features, v))
    acc = probes.probe(embed(x), y, embed(xt), yt, kind="linear", labels_per_class=(1, 10, None), draws=3,
                       seed=0)
    return {"labels_per_class": 10, "probe_acc_linear": acc[1]["mean"], "probe_acc_linear_std": acc[1]["std"],
            "probe_acc_linear_1": acc[0]["mean"], "probe_acc_linear_all": acc[2]["mean"], "probe_draws": 3}


def _quality(samples, test) -> dict:
    from deepul_helpers.metrics import sample_quality as sq

    kid, kid_se = sq.kernel_distance(samples, test)
    return {"fid": sq.frechet_distance(samples, test), "kid": kid, "kid_se": kid_se,
            "fid_data": sq.frechet_distance(data.load("digits"), test),
            "modes_covered": float(sq.digit_modes(samples)["covered"])}


def _fit(model, x, spec_step, lr, batch_size, budget, quick, device, validate=True, seed=0, betas=None):
    kw = {} if spec_step is None else {"step": spec_step}
    if spec_step is not None and spec_step.__name__ == "gan_step":
        from deepul_helpers.models import implicit

        kw["optimizer"] = implicit.gan_optimizer() if betas is None else implicit.gan_optimizer(betas=betas)
        validate = False
    return train.fit(model, x, epochs=MAX_EPOCHS, budget_s=budget, budget_clock="cpu", lr=lr, batch_size=batch_size,
                     seed=seed, device=device, quick=quick, progress=False, lr_schedule="cosine", grad_clip=100.0,
                     val_fraction=0.1 if validate else 0.0, **kw)


def iwae_bits(model, x, k: int, seed: int = 0) -> float:
    """The IWAE-k bound of a ``BoundModel``'s VAE on ``x`` in bits/dim (seeded draws, batches of 64)."""
    inner = model.model
    config.seed_everything(seed)
    with torch.no_grad():
        lp = torch.cat([inner.log_prob_iw(b, k) for b in torch.as_tensor(x).split(64)])
    return float(metrics.bits_per_dim(-lp.mean() / inner.dims))


# a quality field -> the field holding its spread over seeds (max - min)
SPREADS = {"test_bits_per_dim": "test_bits_per_dim_spread", "gap": "gap_spread", "fid": "fid_spread",
           "probe_acc_linear": "probe_acc_linear_spread", "modes_covered": "modes_covered_spread",
           "high_quality_share": "high_quality_spread"}
_HISTORY = ("epochs", "iterations", "best_epoch", "train_s", "train_cpu_s")
_DERIVED = ("test_bits_per_dim", "entropy_nats_per_dim", "gap_percent", "cross_entropy_gap_percent",
            "cross_entropy_nats_per_dim", "cross_entropy_se")


def gap_of(row: dict):
    """The row's gap to the entropy in %: of the cross-entropy where known, else of the test NLL."""
    g = row.get("cross_entropy_gap_percent")
    return g if g is not None else row.get("gap_percent")


def merge_seeds(rows: list[dict]) -> dict:
    """One row from the rows of the same model trained from different seeds: every figure the mean over
    the seeds (the cross-entropy's standard error that of the mean), ``seeds``, and for each quality field
    of ``SPREADS`` that the rows hold its spread, max - min (none from one seed); timings, counts and parameters
    of the first seed."""
    first, n = rows[0], len(rows)

    def mean(k):
        vals = [w.get(k) for w in rows]
        if any(v is None for v in vals):
            return None
        return vals[0] if all(v == vals[0] for v in vals) else float(np.mean(vals))

    fields = {k: mean(k) for k in first if k not in schema.FIELDS and k not in SPREADS.values() and k != "seeds"}
    ce = None
    if first.get("cross_entropy_nats_per_dim") is not None:
        ce = (mean("cross_entropy_nats_per_dim"),
              float(np.sqrt(sum(w["cross_entropy_se"] ** 2 for w in rows)) / n))
    for k, spread in SPREADS.items():  # one seed: no spread (not a spread of 0)
        vals = [gap_of(w) if k == "gap" else w.get(k) for w in rows]
        if n > 1 and all(v is not None for v in vals):
            fields[spread] = float(np.ptp(vals))
    row = schema.make_row(first["family"], first["model"], first["dataset"],
                          test_nats_per_dim=mean("test_nats_per_dim"), nll_kind=first["nll_kind"], cross_entropy=ce,
                          s_per_1000_samples=first["s_per_1000_samples"], params=first["params"], seeds=n, **fields)
    row.update({k: first[k] for k in _HISTORY})
    schema.validate_row(row)
    return row


def _image_row(spec: Spec, budget: float, quick: bool, device: str, artifacts: dict | None, seed: int = 0,
               timed: dict | None = None) -> dict:
    """Train one image model on digits from ``seed`` under the budget and measure its whole row. ``timed``:
    the timing fields of an earlier seed's row (they do not depend on the weights: measured once)."""
    x, y = data.load("digits", labels=True)
    xt, yt = data.load("digits", "test", labels=True)
    shape, levels = tuple(data.info("digits").shape), data.info("digits").levels
    config.seed_everything(seed)
    model = spec.build(shape, levels)
    if spec.fit is not None:
        hist = spec.fit(model, x, budget, quick, device, seed)
    else:
        hist = _fit(model, x, spec.step, spec.lr, spec.batch_size, budget, quick, device, seed=seed)
    model = model.cpu().eval()
    extra: dict = {"val_nats_per_dim": float(hist.val_losses[hist.best_epoch])
                   if hist.best_epoch is not None and spec.fit is None else None}  # the VQ-VAE's: its prior's, per code
    nll = None
    if spec.nll_kind is not None:
        config.seed_everything(seed)
        nll = train.evaluate(model, xt) if not quick else train.evaluate(model, xt[:config.QUICK_MAX_TEST_EXAMPLES])
        model.eval()
        oods = ood_sets(n=config.pick(len(xt), 64, quick=quick))
        extra.update({f"ood_bits_{k}": bits_per_dim(model, v, seed) for k, v in oods.items()})
        model.eval()
    if spec.iw:
        k = config.pick(IW_K, 4, quick=quick)
        extra.update(test_bits_per_dim_iw=iwae_bits(model, xt[:config.pick(len(xt), 64, quick=quick)], k, seed),
                     iw_k=k)
    n = config.pick(1000, 100, quick=quick)
    torch.manual_seed(10_000 + seed)
    samples = model.sample(n).numpy()
    extra.update(_quality(samples, xt))
    if timed is None:
        timed = {"s_per_1000_samples_20x20": schema.seconds_per_1000_samples(
            spec.build(tuple(data.info("shapes").shape), data.info("shapes").levels).eval(),
            config.pick(20, 2, quick=quick), repeats=config.pick(3, 1, quick=quick)),
            "s_per_1000_samples": schema.seconds_per_1000_samples(model, config.pick(100, 2, quick=quick),
                                                                  repeats=config.pick(3, 1, quick=quick))}
        if spec.family == "autoregressive":
            timed["sampling_passes"] = count_passes(model)
            timed["sampling_passes_20x20"] = count_passes(spec.build((20, 20, 1), 2))
    extra.update({k: v for k, v in timed.items() if k != "s_per_1000_samples"})
    if spec.features is not None:
        extra.update(_probe(spec.features(model), x, y, xt, yt))
    extra["data_dims"] = math.prod(shape)
    if spec.label == VQVAE:
        extra["latent_dims"] = math.prod(model.grid)  # one code index per cell of the grid
    if spec.latent is not None:
        enc, dec = spec.latent(model)
        with torch.no_grad():
            z = enc(torch.as_tensor(xt[:8]))
            extra["latent_dims"] = int(z[0].numel())
            if artifacts is not None:
                t = torch.linspace(0, 1, 8).reshape(8, *[1] * z.dim())  # (8 steps, 1, 1, ...)
                line = (1 - t) * z[0::2][None, :4] + t * z[1::2][None, :4]  # (8 steps, 4 pairs, ...) in z
                strips = dec(line.reshape(32, *z.shape[1:]))  # (32, 8, 8, 1) images
                artifacts[f"interp/{spec.label}"] = np.asarray(strips).reshape(8, 4, *shape).transpose(1, 0, 2, 3, 4)
    if artifacts is not None:
        artifacts[f"samples/{spec.label}"] = samples[:36]
    return schema.make_row(spec.family, spec.label, "digits", test_nats_per_dim=nll, nll_kind=spec.nll_kind,
                           history=hist, params=_params(model), s_per_1000_samples=timed["s_per_1000_samples"],
                           budget_cpu_s=budget, **extra)


def _seeded_image_row(spec: Spec, budget: float, quick: bool, device: str, artifacts: dict | None,
                      seeds: tuple) -> dict:
    """The model's row from each of ``seeds`` (one unless ``spec.seeded``), merged; samples and strips of
    the first seed."""
    rows = []
    for seed in seeds if spec.seeded else seeds[:1]:
        timed = None if not rows else {k: rows[0][k] for k in ("s_per_1000_samples", "s_per_1000_samples_20x20",
                                                             "sampling_passes", "sampling_passes_20x20")
                                       if rows[0].get(k) is not None}
        rows.append(_image_row(spec, budget, quick, device, artifacts if not rows else None, seed, timed))
    return merge_seeds(rows)


def _toy_rows(budget: float, quick: bool, device: str, seeds: tuple = (0,)) -> list[dict]:
    """2D, from every seed of ``seeds``: an autoregressive continuous density, RealNVP and the grid EBM
    (gap to the entropy), and a GAN against a VAE on the narrow mixtures (modes)."""
    from deepul_helpers.bench.latent import BoundModel
    from deepul_helpers.metrics import sample_quality as sq
    from deepul_helpers.models import flows as fl
    from deepul_helpers.models import implicit
    from deepul_helpers.models import latent as lt

    rows = []
    for name in TOYS_2D:
        for family, label, make, lr, bs, step in (
                ("autoregressive", AR_2D, lambda: fl.CDFFlow2d(16, "gaussian", 128), 3e-3, 512, None),
                ("flows", FLOW_2D, lambda: fl.RealNVP(2, 8, 64), 1e-3, 128, None),
                ("implicit", EBM_2D, lambda box=EBM_BOX[name]: implicit.GridEBM(box, hidden=64, layers=3, grid=200),
                 1e-3, 256, implicit.dsm_step)):
            kw = {} if step is None else {"step": step}
            rows.append(merge_seeds([schema.likelihood_row(
                family, label, name, make, epochs=MAX_EPOCHS, lr=lr, batch_size=bs, quick=quick, device=device,
                n_samples=1000, budget_s=budget, budget_clock="cpu", lr_schedule="cosine", grad_clip=100.0, seed=seed,
                measure=lambda _m, _t: {"budget_cpu_s": budget}, **kw) for seed in seeds]))
    for name in MIXTURES_2D:
        x = data.load(name)
        for family, label in (("implicit", GAN_2D), ("latent", VAE_2D)):
            per_seed = []
            for seed in seeds:
                config.seed_everything(seed)
                if family == "implicit":
                    model = implicit.mlp_gan(2, **GAN_2D_NET)
                    hist = _fit(model, x, implicit.gan_step, 1e-3, 256, budget, quick, device, seed=seed,
                                betas=GAN_2D_BETAS)
                else:  # no NLL row: the narrow mixtures' entropy is negative, a gap in % is undefined
                    model = BoundModel(lt.VAE((2,), "gaussian", latent_dim=2, hidden=64, warmup_iters=400), 8)
                    hist = _fit(model, x, lt.objective_step, 2e-3, 128, budget, quick, device, seed=seed)
                model = model.cpu().eval()
                torch.manual_seed(10_000 + seed)
                cov = sq.mode_coverage(model.sample(2500).numpy(), name)
                per_seed.append(schema.make_row(
                    family, label, name, history=hist, params=_params(model), budget_cpu_s=budget,
                    s_per_1000_samples=schema.seconds_per_1000_samples(model, 1000) if not per_seed
                    else per_seed[0]["s_per_1000_samples"],
                    modes_covered=float(cov["modes_covered"]), high_quality_share=float(cov["high_quality"])))
            rows.append(merge_seeds(per_seed))
    return rows


def _ssl_rows(budget: float, quick: bool, device: str) -> list[dict]:
    """SimCLR at batch 32 and 256, MoCo at batch 32 (queue 512), the same budget; raw pixels."""
    from deepul_helpers.augment import Augment
    from deepul_helpers.metrics import probes
    from deepul_helpers.models import selfsupervised as ssl

    x, y = data.load("digits", labels=True)
    xt, yt = data.load("digits", "test", labels=True)
    inf = data.info("digits")
    views = Augment(shift=1, degrees=20, scale=(0.8, 1.2), noise=0.05, cutout=3)
    specs = [(SIMCLR_32, lambda: ssl.SimCLR(inf.shape, inf.levels, 64, augment=views), 32),
             (SIMCLR_256, lambda: ssl.SimCLR(inf.shape, inf.levels, 64, augment=views), 256),
             (MOCO_32, lambda: ssl.MoCo(inf.shape, inf.levels, 64, augment=views, queue_size=512), 32)]
    rows = []
    for label, make, bs in specs:
        config.seed_everything(0)
        model = make()
        step = model.train_step if isinstance(model, ssl.MoCo) else None
        hist = train.fit(model, x, epochs=MAX_EPOCHS, budget_s=budget, budget_clock="cpu", lr=1e-3, batch_size=bs,
                         seed=0, device=device, quick=quick, progress=False, step=step)
        model = model.cpu().eval()
        rows.append(schema.make_row("selfsupervised", label, "digits", history=hist, params=_params(model),
                                    budget_cpu_s=budget, **_probe(model.encode, x, y, xt, yt)))
    rows.append(schema.make_row("selfsupervised", RAW, "digits", data_dims=math.prod(inf.shape),
                                **_probe(probes.pixels, x, y, xt, yt)))
    return rows


def run(quick: bool = False, device: str = "auto", budget_cpu_s: float | None = None,
        toy_budget_cpu_s: float | None = None, artifacts: dict | None = None, seeds: tuple | None = None,
        out: str | Path | None = None) -> list[dict]:
    """Every family's rows (see the module docstring). ``artifacts``: a dict to fill with sample grids
    (``samples/<label>``) and interpolation strips (``interp/<label>``: (pairs, steps, 8, 8, 1)); in full
    mode they are also saved to ``ARTIFACTS`` in the bench folder ``out`` (``bench.bench_dir``'s rule).
    ``seeds``: of the seeded rows (default ``SEEDS``; quick mode its first two)."""
    quick = config.is_quick(quick)
    budget = float(budget_cpu_s or BUDGET_CPU_S)
    toy_budget = float(toy_budget_cpu_s or TOY_BUDGET_CPU_S)
    seeds = tuple(seeds or config.pick(SEEDS, SEEDS[:2], quick=quick))
    keep = {} if artifacts is None else artifacts
    rows = []
    for spec in digit_specs(k_iw=config.pick(8, 2, quick=quick)):
        row = _seeded_image_row(spec, budget, quick, device, keep, seeds)
        print(f"  {spec.family:15s} {spec.label:38s} bits/dim {row['test_bits_per_dim'] or float('nan'):.3f}  "
              f"FD {row['fid']:.2f}  ({row['train_cpu_s']:.0f} CPU s, {row['seeds']} seed(s))", flush=True)
        rows.append(row)
    rows += _toy_rows(toy_budget, quick, device, seeds)
    rows += _ssl_rows(budget, quick, device)
    for row in rows:
        schema.validate_row(row)
    if not quick:
        from deepul_helpers.bench import bench_dir

        folder = bench_dir(out)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / ARTIFACTS, **keep)
    return rows


def load_or_run(quick: bool = False, device: str = "auto", out: str | Path | None = None
                ) -> tuple[list[dict], dict, str]:
    """(rows, artifacts, note): the full benchmark's ``roundup.json`` and its artifacts from the bench folder
    ``out`` (``bench.bench_dir``'s rule) when they exist, come from a full run and ``quick`` is off, else the
    quick benchmark run now; ``note`` says which, where it looked, and how to regenerate."""
    import json
    import time

    from deepul_helpers.bench import bench_dir

    folder = bench_dir(out)
    results, saved = folder / "roundup.json", folder / ARTIFACTS
    why = f"no {results.name} and {saved.name} in {folder}"
    if not config.is_quick(quick) and results.exists() and saved.exists():
        rows = json.loads(results.read_text())
        if not any(row.get("quick") for row in rows):
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results.stat().st_mtime))
            with np.load(saved) as npz:
                artifacts = {k: npz[k] for k in npz.files}
            return rows, artifacts, f"Loaded {results} (measured {when}). Regenerate with: {REGENERATE}"
        why = f"{results} comes from a --quick run"
    artifacts: dict = {}
    rows = run(quick=True, device=device, artifacts=artifacts)
    return rows, artifacts, ("Ran the QUICK benchmark just now (a few iterations per model: the numbers check the "
                             f"code, not the claims; {why}). For the measured verdicts run: {REGENERATE}")
