"""The round-up: claims decided by the rows (rows that contradict a claim give "not supported", rows that
support it "supported"), the quick benchmark's rows in the one schema and equal to each family's reference
code on the same seed, the Flow++ table as data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepul_helpers import config, data, metrics, train
from deepul_helpers.bench import claims, schema
from deepul_helpers.bench import roundup as r


def row(family, model, dataset="digits", bits=None, kind="exact", gap=None, **fields):
    """A schema row with test bits/dim ``bits`` (or, on a set with a known entropy, ``gap`` % above it)."""
    nats = bits * math.log(2) if bits is not None else None
    if gap is not None:
        nats = data.info(dataset).entropy * (1 + gap / 100)
    return schema.make_row(family, model, dataset, test_nats_per_dim=nats, nll_kind=kind if nats is not None else None,
                           **fields)


def ood(above: bool, bits: float) -> dict:
    return {f"ood_bits_{k}": bits + (1.0 if above else -0.5) for k in r.OOD_SETS}


def world(support: bool) -> list[dict]:
    """Rows in which every claim holds (support=True) or every claim fails (support=False)."""
    s = support
    b = dict(made=2.0, pcnn=1.9, gated=1.85, par=2.0, it=1.8, fu=2.3, fv=2.2, vae=1.95, iaf=1.96) if s else \
        dict(made=2.0, pcnn=1.55, gated=2.5, par=2.0, it=2.6, fu=1.5, fv=1.6, vae=2.0, iaf=1.58)
    ar_time, passes = (5.0, (64, 400)) if s else (0.01, (10, 16))
    ar = dict(s_per_1000_samples=ar_time, sampling_passes=passes[0], sampling_passes_20x20=passes[1])
    rows = [
        row("autoregressive", "MADE", bits=b["made"], **ar, **ood(s, b["made"])),
        row("autoregressive", r.PIXELCNN, bits=b["pcnn"], **{**ar, "s_per_1000_samples_20x20": 80.0},
            probe_acc_linear=0.80 if s else 0.99, **ood(s, b["pcnn"])),
        row("autoregressive", r.GATED, bits=b["gated"], **ar),
        row("autoregressive", r.PARALLEL, bits=b["par"], s_per_1000_samples=1.0, sampling_passes=10,
            sampling_passes_20x20=16, s_per_1000_samples_20x20=10.0 if s else 100.0),
        row("autoregressive", "Image Transformer", bits=b["it"], **ar),
        row("flows", r.FLOW_U, bits=b["fu"], kind="bound", fid=4.0 if s else 0.8, latent_dims=64 if s else 16,
            data_dims=64, s_per_1000_samples=0.1, probe_acc_linear=0.86, **ood(s, b["fu"])),
        row("flows", r.FLOW_V, bits=b["fv"], kind="bound", fid=3.9 if s else 0.9, latent_dims=64 if s else 16,
            data_dims=64, s_per_1000_samples=0.1),
        row("latent", r.VAE, bits=b["vae"], kind="bound" if s else "exact", s_per_1000_samples=0.05 if s else 10.0,
            probe_acc_linear=0.90 if s else 0.5, latent_dims=16 if s else 64, data_dims=64, fid=5.0 if s else 0.5,
            fid_spread=0.1 if s else 0.4, seeds=3, **ood(s, b["vae"])),
        row("latent", r.IAF_VAE, bits=b["iaf"], kind="bound"),
        row("implicit", r.DCGAN, fid=1.0 if s else 10.0, fid_data=0.5 if s else 2.0, modes_covered=8 if s else 10,
            s_per_1000_samples=0.01, fid_spread=0.5 if s else 0.1, seeds=3),
        row("implicit", r.DCGAN_HINGE, fid=2.0 if s else 10.05, fid_spread=0.8 if s else 0.2, seeds=3),
        row("selfsupervised", r.SIMCLR_32, probe_acc_linear=0.85 if s else 0.90),
        row("selfsupervised", r.SIMCLR_256, probe_acc_linear=0.90 if s else 0.85),
        row("selfsupervised", r.MOCO_32, probe_acc_linear=0.91 if s else 0.80),
        row("selfsupervised", r.RAW, probe_acc_linear=0.85),
    ]
    for name in r.TOYS_2D:
        rows += [row("autoregressive", r.AR_2D, name, gap=2.0 if s else 10.0), row("flows", r.FLOW_2D, name, gap=5.0)]
    for name, k in r.MIXTURES_2D.items():
        rows += [row("latent", r.VAE_2D, name, high_quality_share=0.3 if s else 0.95, modes_covered=k if s else 5),
                 row("implicit", r.GAN_2D, name, high_quality_share=0.9 if s else 0.5, modes_covered=k - 2 if s else k)]
    return rows


@pytest.mark.parametrize("claim", claims.CLAIMS, ids=lambda c: c.__name__)
def test_each_claim_follows_its_rows(claim):
    assert claim(world(True))["verdict"] == claims.SUPPORTED, claim(world(True))
    assert claim(world(False))["verdict"] == claims.NOT_SUPPORTED, claim(world(False))
    assert claim([])["verdict"] == claims.NOT_MEASURED
    out = claim(world(True))
    assert out["claim"] and out["measurement"] and out["numbers"]


def test_half_the_evidence_is_mixed():
    rows = world(True)
    for w in rows:
        if w["model"] == r.PARALLEL:  # still 8x faster, but now 25% more bits/dim than PixelCNN
            w.update(test_bits_per_dim=1.9 * 1.25, test_nats_per_dim=1.9 * 1.25 * math.log(2))
    assert claims.log_time_sampling(rows)["verdict"] == claims.MIXED
    assert "+25.0%" in claims.log_time_sampling(rows)["numbers"]


def test_flowpp_table_is_the_papers():
    table = {m: (c, i32, i64) for _, m, c, i32, i64 in r.FLOWPP_TABLE}
    assert len(table) == 11 and table["Flow++"] == (3.09, 3.86, 3.69) and table["PixelSNAIL"] == (2.85, 3.80, 3.52)
    assert table["RealNVP"] == (3.49, 4.28, None) and table["Multiscale PixelCNN"] == (None, 3.95, 3.70)
    assert set(r.FLOWPP_OURS) <= set(table)


def test_ood_sets_are_in_the_digits_format():
    sets = r.ood_sets(n=20)
    digits = data.load("digits", "test")[:20]
    assert set(sets) == set(r.OOD_SETS)
    for x in sets.values():
        assert x.shape == digits.shape and x.dtype == np.uint8 and x.max() <= 16
    assert np.array_equal(sets["inverted"], 16 - digits) and sets["blank"].max() == 0
    assert set(np.unique(sets["shapes"])) <= {0, 16}


@pytest.fixture(scope="module")
def quick_rows():
    artifacts = {}
    return r.run(quick=True, device="cpu", artifacts=artifacts), artifacts


def test_quick_rows_follow_the_schema_and_cover_every_family(quick_rows):
    rows, artifacts = quick_rows
    for w in rows:
        schema.validate_row(w)
    assert {w["family"] for w in rows} == {"autoregressive", "flows", "latent", "implicit", "selfsupervised"}
    digits = [w for w in rows if w["dataset"] == "digits" and w["model"] != r.RAW]
    assert len({w["budget_cpu_s"] for w in rows if w["dataset"] == "digits" and w["model"] != r.RAW}) == 1
    gen = [w for w in digits if w["family"] != "selfsupervised"]
    assert all(w["s_per_1000_samples"] > 0 and w["s_per_1000_samples_20x20"] > 0 and w["fid"] >= 0 for w in gen)
    par = next(w for w in rows if w["model"] == r.PARALLEL)
    pcnn = next(w for w in rows if w["model"] == r.PIXELCNN)
    assert (pcnn["sampling_passes"], pcnn["sampling_passes_20x20"]) == (64, 400)
    assert (par["sampling_passes"], par["sampling_passes_20x20"]) == (10, 16)
    assert all(w["latent_dims"] == 64 for w in rows if w["family"] == "flows" and w["dataset"] == "digits")
    assert artifacts[f"interp/{r.VAE}"].shape == (4, 8, 8, 8, 1)
    strips, xt = artifacts[f"interp/{r.FLOW_U}"], data.load("digits", "test")[:8]  # a flow decodes its z exactly
    assert np.array_equal(strips[:, 0], xt[0::2]) and np.array_equal(strips[:, -1], xt[1::2])
    assert artifacts[f"samples/{r.DCGAN}"].shape[1:] == (8, 8, 1)
    verdicts = claims.table(rows)
    assert len(verdicts) == len(claims.CLAIMS) and all(c["verdict"] in claims.VERDICTS for c in verdicts)
    assert sum(c["verdict"] != claims.NOT_MEASURED for c in verdicts) == len(verdicts)  # every claim measured


def _reference(label):
    """The family's own model at the round-up's settings, built from the family's package."""
    from deepul_helpers.bench.latent import BoundModel
    from deepul_helpers.models import autoregressive as ar
    from deepul_helpers.models import latent

    if label == r.PIXELCNN:
        return ar.PixelCNN((8, 8, 1), 17, n_filters=32, n_layers=5, kernel_size=5)
    if label == r.VQVAE:
        return latent.VQVAE((8, 8, 1), 17, n_codes=32, code_dim=16, hidden=64)
    return BoundModel(latent.VAE((8, 8, 1), "categorical", 17, latent_dim=16, hidden=256, warmup_iters=300), 2)


def _fit_reference(label, model, x, seed):
    """Trained as the family trains it: the VQ-VAE in its two stages (its own objective, then the course
    PixelCNN on its codes), the others by fit on their loss or objective."""
    from deepul_helpers.models import autoregressive as ar
    from deepul_helpers.models import latent

    spec = next(s for s in r.digit_specs(k_iw=2) if s.label == label)
    kw = dict(epochs=r.MAX_EPOCHS, budget_clock="cpu", seed=seed, device="cpu", quick=True, progress=False,
              lr_schedule="cosine", grad_clip=100.0)
    if label != r.VQVAE:
        step = {} if spec.step is None else {"step": spec.step}
        train.fit(model, x, budget_s=r.BUDGET_CPU_S, lr=spec.lr, batch_size=spec.batch_size, val_fraction=0.1,
                  **step, **kw)
        return model
    prior = ar.PixelCNN((4, 4, 1), 32, n_filters=32, n_layers=3, kernel_size=3)  # built with the VQ-VAE: same draws
    train.fit(model, x, budget_s=r.BUDGET_CPU_S * r.VQ_STAGE1_SHARE, lr=2e-3, batch_size=64,
              step=latent.objective_step, **kw)
    model.eval()
    codes = model.codes(torch.as_tensor(x)).numpy()
    train.fit(prior, codes, budget_s=r.BUDGET_CPU_S * (1 - r.VQ_STAGE1_SHARE), lr=2e-3, batch_size=64,
              val_fraction=0.1, **kw)
    model.prior = prior.eval()
    return model


@pytest.mark.parametrize("label", [r.PIXELCNN, r.VAE, r.VQVAE])
def test_quick_row_equals_the_familys_reference_code(quick_rows, label):
    """The round-up trains the family's own model: that model, built from its package with the same seeds
    and trained by fit/evaluate directly, gives the same test NLL (the mean over the seeds of a seeded row)."""
    rows, _ = quick_rows
    x, xt = data.load("digits"), data.load("digits", "test")[: config.QUICK_MAX_TEST_EXAMPLES]
    got = next(w for w in rows if w["model"] == label and w["dataset"] == "digits")
    nlls = []
    for seed in r.SEEDS[: got["seeds"]]:
        config.seed_everything(seed)
        model = _fit_reference(label, _reference(label), x, seed)
        model.eval()
        config.seed_everything(seed)
        with torch.no_grad():
            nlls.append(train.evaluate(model, xt))
    assert got["seeds"] == (2 if label == r.VAE else 1)
    assert got["test_nats_per_dim"] == pytest.approx(np.mean(nlls), rel=1e-5)
    if label == r.VAE:
        bits = [metrics.bits_per_dim(n) for n in nlls]
        assert got["test_bits_per_dim_spread"] == pytest.approx(max(bits) - min(bits), rel=1e-5)


def test_merge_seeds_means_and_spreads():
    a = schema.make_row("flows", "m", "checkerboard", test_nats_per_dim=1.8, nll_kind="exact",
                        cross_entropy=(1.80, 0.03), fid=1.0, modes_covered=8.0, iw_k=4)
    b = schema.make_row("flows", "m", "checkerboard", test_nats_per_dim=2.1, nll_kind="exact",
                        cross_entropy=(1.90, 0.04), fid=4.0, modes_covered=6.0, iw_k=4)
    m = r.merge_seeds([a, b])
    schema.validate_row(m)
    h = data.info("checkerboard").entropy
    assert m["seeds"] == 2 and m["test_nats_per_dim"] == pytest.approx(1.95) and m["iw_k"] == 4
    assert m["fid"] == pytest.approx(2.5) and m["fid_spread"] == pytest.approx(3.0)
    assert m["modes_covered_spread"] == pytest.approx(2.0)
    assert m["test_bits_per_dim_spread"] == pytest.approx(0.3 / math.log(2))
    assert m["cross_entropy_nats_per_dim"] == pytest.approx(1.85) and m["cross_entropy_se"] == pytest.approx(0.025)
    assert m["gap_spread"] == pytest.approx(100 * 0.1 / h)  # of the cross-entropy's gap, not the test NLL's
    assert "probe_acc_linear_spread" not in m
    assert "fid_spread" not in r.merge_seeds([a]) and r.merge_seeds([a])["seeds"] == 1


def test_a_difference_within_the_seeds_spread_is_a_tie():
    rows = world(True)
    assert claims.gan_quality_per_compute(rows)["verdict"] == claims.SUPPORTED
    gan = next(w for w in rows if w["model"] == r.DCGAN)
    gan.update(fid_spread=7.0)  # FD 1.0 +- 3.5: no longer clearly below 3.9 - 5.0
    assert claims.gan_quality_per_compute(rows)["verdict"] == claims.NOT_SUPPORTED
    assert "±3.50" in claims.gan_quality_per_compute(rows)["numbers"]
    rows = world(True)
    for w in rows:
        if w["model"] in (r.VAE_2D, r.GAN_2D):
            w["high_quality_spread"] = 1.5  # 0.3 vs 0.9: within the seeds' spread
    assert claims.blurry_vs_modes(rows)["verdict"] == claims.MIXED
    rows = world(False)  # the autoregressive gap 10% vs the flow's 5%: clearly worse, unless the seeds say a tie
    for w in rows:
        if w["model"] == r.FLOW_2D:
            w["gap_spread"] = 12.0
    assert claims.ar_continuous(rows)["verdict"] == claims.SUPPORTED
    rows = world(True)  # RealNVP's 2D gap 5% vs the flows' digits excess over autoregressive (2.2 / 1.8: +22%)
    assert claims.flows_continuous_discrete(rows)["verdict"] == claims.SUPPORTED
    for w in rows:
        if w["model"] == r.FLOW_2D:
            w["gap_spread"] = 40.0  # 5% +- 20: no longer clearly below +22%
    assert claims.flows_continuous_discrete(rows)["verdict"] == claims.MIXED


def test_taxonomy_walks_the_package_and_draws_a_box_per_model():
    import matplotlib

    matplotlib.use("Agg")
    from deepul_helpers.models import taxonomy

    fams = taxonomy.families()
    assert list(fams) == ["autoregressive", "flows", "implicit", "latent", "selfsupervised"]
    kinds = {name: kind for found in fams.values() for name, kind in found}
    assert {n for n, _ in fams["latent"]} >= {"VAE", "VQVAE", "IAFVAE"}
    assert ("ParallelPixelCNN", "exact likelihood") in fams["autoregressive"]
    assert kinds["GridEBM"] == "exact likelihood" and kinds["GAN"] == "samples only"
    assert kinds["VAE"] == kinds["VQVAE"] == "likelihood bound" and kinds["SimCLR"] == "representation"
    assert "MaskedConv2d" not in kinds and "AffineCoupling" not in kinds  # layers are not models
    fig = taxonomy.draw(title=None)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(t for t in texts if t in kinds) == sorted(kinds)  # one box per model
    assert sum(t.startswith(tuple(fams)) for t in texts) == len(fams)
    import matplotlib.pyplot as plt

    plt.close(fig)
