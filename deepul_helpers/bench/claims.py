"""The round-up's claims table: each piece of the lecture's advice, and each family's strengths and
weaknesses where a measurement can speak, checked against benchmark rows by code.

Every claim is one small function ``f(rows) -> dict`` with ``claim`` (the words of the lecture),
``measurement`` (what is compared), ``numbers`` (the measured values, formatted), ``verdict`` (one of
``VERDICTS``, computed here, never typed) and ``models`` (the row labels it read). A claim whose rows
are missing says ``not measured``. ``table(rows)`` runs them all; the rows are those of
``deepul bench roundup`` (labels from ``bench/roundup.py``).

Rows trained from several seeds hold the mean and the spread (max - min) over the seeds: a comparison of
two such figures counts as won only by a margin larger than half the two spreads together (``_below``), so
a difference the seeds alone produce is a tie; rows of one seed (no spread) compare plainly.
"""

from __future__ import annotations

import itertools
import math

from deepul_helpers.bench import roundup as r

SUPPORTED, NOT_SUPPORTED, MIXED, NOT_MEASURED = "supported", "not supported", "mixed", "not measured"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, MIXED, NOT_MEASURED)


def _find(rows, label=None, dataset="digits", family=None, field=None) -> list[dict]:
    return [w for w in rows if (label is None or w["model"] == label) and (dataset is None or w["dataset"] == dataset)
            and (family is None or w["family"] == family) and (field is None or w.get(field) is not None)]


def _one(rows, label, dataset="digits", field=None):
    found = _find(rows, label, dataset, field=field)
    return found[0] if found else None


def _out(claim, measurement, numbers="", verdict=NOT_MEASURED, models=()) -> dict:
    assert verdict in VERDICTS
    return {"claim": claim, "measurement": measurement, "numbers": numbers, "verdict": verdict,
            "models": ", ".join(models)}


def _value(w, field):
    return r.gap_of(w) if field == "gap" else w[field]


def _spread(w, field) -> float:
    return w.get(r.SPREADS[field]) or 0.0


def _below(a, b, field) -> bool:
    """a's ``field`` below b's by more than half their spreads over seeds together (``field``: a key of
    ``roundup.SPREADS``; "gap": the gap to the entropy)."""
    return _value(a, field) + (_spread(a, field) + _spread(b, field)) / 2 < _value(b, field)


def _fmt(w, field, spec=".2f", scale=1.0) -> str:
    """The figure, with '± half its spread' when the row holds one over several seeds."""
    s = _spread(w, field) if field in r.SPREADS else 0.0
    out = format(scale * _value(w, field), spec)
    return out + (f" ±{format(scale * s / 2, spec)}" if s else "")


def _checked(claim, how, checks, nums, models) -> dict:
    """A claim decided by a list of checks (see ``_count``), each with its numbers; none: not measured."""
    if not checks:
        return _out(claim, how)
    return _out(claim, how, "; ".join(nums), _count(*checks), models)


def _count(*checks: bool) -> str:
    """All true: supported; none: not supported; else mixed."""
    return SUPPORTED if all(checks) else NOT_SUPPORTED if not any(checks) else MIXED


def density_autoregressive(rows) -> dict:
    claim = "If you only care about density, use an autoregressive model"
    how = "lowest test bits/dim on digits by family"
    best = {}
    for w in _find(rows, field="test_bits_per_dim"):
        if w["family"] not in best or w["test_bits_per_dim"] < best[w["family"]]["test_bits_per_dim"]:
            best[w["family"]] = w
    if "autoregressive" not in best or len(best) < 2:
        return _out(claim, how)
    ar = best.pop("autoregressive")["test_bits_per_dim"]
    other = min(best.values(), key=lambda w: w["test_bits_per_dim"])
    nums = f"autoregressive {ar:.3f}; best other: {other['model']} {other['test_bits_per_dim']:.3f} " \
           f"({other['nll_kind']})"
    verdict = NOT_SUPPORTED if other["test_bits_per_dim"] <= ar else MIXED if other["test_bits_per_dim"] < 1.01 * ar \
        else SUPPORTED
    return _out(claim, how, nums, verdict, ["best of each family"])


def log_time_sampling(rows) -> dict:
    claim = ("If you cannot afford linear-time sampling, a weaker autoregressive model with log-time sampling "
             "is worth it")
    how = "parallel vs plain PixelCNN: passes and seconds per 1,000 samples at 20x20; bits/dim on digits"
    p, q = _one(rows, r.PIXELCNN, field="s_per_1000_samples_20x20"), _one(rows, r.PARALLEL,
                                                                          field="s_per_1000_samples_20x20")
    if p is None or q is None:
        return _out(claim, how)
    speedup = p["s_per_1000_samples_20x20"] / q["s_per_1000_samples_20x20"]
    cost = q["test_bits_per_dim"] / p["test_bits_per_dim"] - 1
    nums = (f"passes {p.get('sampling_passes_20x20')} vs {q.get('sampling_passes_20x20')}; {speedup:.1f}x faster; "
            f"bits/dim {p['test_bits_per_dim']:.3f} -> {q['test_bits_per_dim']:.3f} ({100 * cost:+.1f}%)")
    return _out(claim, how, nums, _count(speedup >= 2, cost <= 0.10), [r.PIXELCNN, r.PARALLEL])


def ar_continuous(rows) -> dict:
    claim, how = "Autoregressive models are not only for discrete data", \
        "gap to the true entropy (%) on 2D toys: continuous autoregressive density vs RealNVP"
    checks, nums = [], []
    for name in r.TOYS_2D:
        a, f = _one(rows, r.AR_2D, name, "gap_percent"), _one(rows, r.FLOW_2D, name, "gap_percent")
        if a is not None and f is not None:
            checks.append(not _below(f, a, "gap"))
            nums.append(f"{name}: {_fmt(a, 'gap', '.1f')}% vs {_fmt(f, 'gap', '.1f')}%")
    return _checked(claim, how, checks, nums, [r.AR_2D, r.FLOW_2D])


def _best_ar_bits(rows):
    ar = _find(rows, family="autoregressive", field="test_bits_per_dim")
    return min((w["test_bits_per_dim"] for w in ar), default=None)


def flows_continuous_discrete(rows) -> dict:
    claim, how = "Flows are good for continuous data, getting better for discrete", \
        "RealNVP's gap to the entropy on 2D toys vs flows' excess over the best autoregressive bits/dim on digits"
    flows2d = [w for n in r.TOYS_2D for w in _find(rows, r.FLOW_2D, n, field="gap_percent")]
    u, v, ar = _one(rows, r.FLOW_U, field="test_bits_per_dim"), _one(rows, r.FLOW_V, field="test_bits_per_dim"), \
        _best_ar_bits(rows)
    if not flows2d or u is None or ar is None:
        return _out(claim, how)
    gap = sum(r.gap_of(w) for w in flows2d) / len(flows2d)
    half = sum(_spread(w, "gap") for w in flows2d) / len(flows2d) / 2  # half the seeds' spread, on average
    best_flow = min(w["test_bits_per_dim"] for w in (u, v) if w is not None)
    excess = 100 * (best_flow / ar - 1)
    better = v is not None and v["test_bits_per_dim"] < u["test_bits_per_dim"]
    nums = (f"2D gap {gap:.1f}%" + (f" ±{half:.1f}" if half else "") + f"; digits: best flow {best_flow:.3f} vs "
            f"autoregressive {ar:.3f} ({excess:+.1f}%); variational {'<' if better else '>='} uniform dequantization")
    return _out(claim, how, nums, _count(gap + half < excess, better), [r.FLOW_2D, r.FLOW_U, r.FLOW_V])


def vae_first_choice(rows) -> dict:
    claim = "For representations and sampling, or the simplest thing first, a VAE is a natural first choice"
    how = ("VAE: probe@10 vs raw pixels, sampling time vs the fastest autoregressive model, its tighter bound "
           "(-ELBO or IWAE) within 10% of the best autoregressive bits/dim")
    vae, raw = _one(rows, r.VAE, field="probe_acc_linear"), _one(rows, r.RAW, field="probe_acc_linear")
    ar = _find(rows, family="autoregressive", field="s_per_1000_samples")
    if vae is None or raw is None or not ar:
        return _out(claim, how)
    fastest_ar, best_ar = min(w["s_per_1000_samples"] for w in ar), _best_ar_bits(rows)
    bound = min(vae["test_bits_per_dim"], vae.get("test_bits_per_dim_iw") or math.inf)  # the tighter bound
    checks = (not _below(vae, raw, "probe_acc_linear"), vae["s_per_1000_samples"] < fastest_ar,
              bound <= 1.10 * best_ar)
    iw = f" (IWAE-{vae['iw_k']} {vae['test_bits_per_dim_iw']:.3f})" if vae.get("test_bits_per_dim_iw") else ""
    nums = (f"probe {_fmt(vae, 'probe_acc_linear', '.1f', 100)}% vs pixels {100 * raw['probe_acc_linear']:.1f}%; "
            f"{vae['s_per_1000_samples']:.3g} s vs {fastest_ar:.3g} s per 1,000; bound "
            f"{_fmt(vae, 'test_bits_per_dim', '.3f')}{iw} vs {best_ar:.3f} bits/dim")
    return _out(claim, how, nums, _count(all(checks), sum(checks) >= 2), [r.VAE, r.RAW])


def _best_gan(rows):
    gans = _find(rows, family="implicit", field="fid")
    return min(gans, key=lambda w: w["fid"]) if gans else None


def gan_quality_per_compute(rows) -> dict:
    claim, how = "GANs for perceptual quality with little compute", \
        "Frechet distance on digits of the best GAN vs every other model, all under the same CPU budget"
    gan = _best_gan(rows)
    others = [w for w in _find(rows, field="fid") if w["family"] != "implicit"]
    if gan is None or not others:
        return _out(claim, how)
    beaten = sum(_below(gan, w, "fid") for w in others)
    best = min(others, key=lambda w: w["fid"])
    nums = (f"{gan['model']} FD {_fmt(gan, 'fid')}, clearly better than {beaten}/{len(others)}; best other "
            f"{best['model']} {_fmt(best, 'fid')}")
    return _out(claim, how, nums, _count(beaten == len(others), beaten > len(others) / 2), [gan["model"]])


def blurry_vs_modes(rows) -> dict:
    claim = ("Blurry samples vs missing modes: VAEs trade sample quality for coverage, GANs coverage for "
             "sample quality")
    how = "narrow 2D mixtures: high-quality share and modes covered, VAE vs GAN"
    checks, nums = [], []
    for name in r.MIXTURES_2D:
        v, g = _one(rows, r.VAE_2D, name, "modes_covered"), _one(rows, r.GAN_2D, name, "modes_covered")
        if v is not None and g is not None:
            checks += [_below(v, g, "high_quality_share"), not _below(v, g, "modes_covered")]
            nums.append(f"{name}: quality {_fmt(v, 'high_quality_share')} vs {_fmt(g, 'high_quality_share')}, "
                        f"modes {_fmt(v, 'modes_covered', '.1f')} vs {_fmt(g, 'modes_covered', '.1f')}")
    return _checked(claim, how, checks, nums, [r.VAE_2D, r.GAN_2D])


def simclr_batch_moco_queue(rows) -> dict:
    claim = "SimCLR needs large batches; MoCo's queue decouples batch size from negatives"
    how = "linear probe@10 under the same budget: SimCLR batch 32 vs 256, MoCo batch 32 with a queue of 512"
    s32, s256, moco = (_one(rows, k, field="probe_acc_linear") for k in (r.SIMCLR_32, r.SIMCLR_256, r.MOCO_32))
    if s32 is None or s256 is None or moco is None:
        return _out(claim, how)
    a, b, m = (100 * w["probe_acc_linear"] for w in (s32, s256, moco))
    nums = f"SimCLR {a:.1f}% (32) vs {b:.1f}% (256); MoCo {m:.1f}% (32)"
    return _out(claim, how, nums, _count(b > a + 1, m >= b - 1), [r.SIMCLR_32, r.SIMCLR_256, r.MOCO_32])


def ar_slow_sampling(rows) -> dict:
    claim, how = "Autoregressive: slow sampling, growing with the dimension", \
        "seconds per 1,000 samples on digits vs one-pass samplers; passes counted at 8x8 and 20x20"
    ar = [w for w in _find(rows, family="autoregressive", field="sampling_passes") if w["model"] != r.PARALLEL]
    one_pass = [w for w in _find(rows, field="s_per_1000_samples") if w["family"] in ("flows", "latent", "implicit")]
    if not ar or not one_pass:
        return _out(claim, how)
    fastest_ar, slowest = min(w["s_per_1000_samples"] for w in ar), max(w["s_per_1000_samples"] for w in one_pass)
    growth = min(w["sampling_passes_20x20"] / w["sampling_passes"] for w in ar)
    nums = (f"fastest autoregressive {fastest_ar:.3g} s vs slowest one-pass {slowest:.3g} s; passes grow "
            f"{growth:.2f}x for {400 / 64:.2f}x the pixels")
    return _out(claim, how, nums, _count(fastest_ar > slowest, growth >= 0.9 * 400 / 64), [w["model"] for w in ar])


def ar_no_representation(rows) -> dict:
    claim, how = "Autoregressive: no single layer of learned representation, not directly usable downstream", \
        "linear probe@10 of PixelCNN's hidden features vs raw pixels and the best learned representation"
    p, raw = _one(rows, r.PIXELCNN, field="probe_acc_linear"), _one(rows, r.RAW, field="probe_acc_linear")
    learned = [w for w in _find(rows, field="probe_acc_linear") if w["family"] != "autoregressive" and w is not raw]
    if p is None or raw is None or not learned:
        return _out(claim, how)
    best = max(learned, key=lambda w: w["probe_acc_linear"])
    nums = (f"PixelCNN {100 * p['probe_acc_linear']:.1f}%, pixels {100 * raw['probe_acc_linear']:.1f}%, "
            f"best {best['model']} {100 * best['probe_acc_linear']:.1f}%")
    return _out(claim, how, nums, _count(p["probe_acc_linear"] < best["probe_acc_linear"],
                                         p["probe_acc_linear"] <= raw["probe_acc_linear"]), [r.PIXELCNN, best["model"]])


def flows_z_as_big_as_x(rows) -> dict:
    claim, how = "Flows: z is as big as x, no lower-dimensional embedding", "latent size vs data size"
    fl = _find(rows, family="flows", field="latent_dims")
    if not fl:
        return _out(claim, how)
    nums = "; ".join(f"{w['model']}: {w['latent_dims']} for {w['data_dims']}" for w in fl)
    return _out(claim, how, nums, _count(*(w["latent_dims"] == w["data_dims"] for w in fl)), [w["model"] for w in fl])


def flows_long_way(rows) -> dict:
    claim = "Flows: a long way to GAN-level samples and autoregressive-level likelihoods"
    how = "best flow's FD vs the best GAN's, bits/dim vs the best autoregressive model"
    fl, gan, ar = _find(rows, family="flows", field="fid"), _best_gan(rows), _best_ar_bits(rows)
    if not fl or gan is None or ar is None:
        return _out(claim, how)
    fid, bits = min(w["fid"] for w in fl), min(w["test_bits_per_dim"] for w in fl)
    nums = f"FD {fid:.2f} vs {gan['model']} {_fmt(gan, 'fid')}; bits/dim {bits:.3f} vs {ar:.3f}"
    return _out(claim, how, nums, _count(fid > gan["fid"], bits > ar), [w["model"] for w in fl] + [gan["model"]])


def vae_compressed(rows) -> dict:
    claim = "VAEs: a compressed representation, an approximate likelihood"
    how = "latent size vs data size, probe@10 vs raw pixels, the NLL reported as a bound"
    v, raw = _one(rows, r.VAE, field="latent_dims"), _one(rows, r.RAW, field="probe_acc_linear")
    if v is None or raw is None:
        return _out(claim, how)
    nums = (f"{v['latent_dims']} latent dims for {v['data_dims']}; probe {100 * v['probe_acc_linear']:.1f}% vs "
            f"{100 * raw['probe_acc_linear']:.1f}%; NLL kind: {v['nll_kind']}")
    return _out(claim, how, nums, _count(v["latent_dims"] < v["data_dims"], v["probe_acc_linear"] >=
                                         raw["probe_acc_linear"], v["nll_kind"] == "bound"), [r.VAE, r.RAW])


def vae_blurry(rows) -> dict:
    claim, how = "VAEs: blurrier samples than GANs", "FD on digits and high-quality share on the narrow 2D mixtures"
    v, g = _one(rows, r.VAE, field="fid"), _best_gan(rows)
    if v is None or g is None:
        return _out(claim, how)
    checks, nums = [_below(g, v, "fid")], [f"FD {_fmt(v, 'fid')} vs {g['model']} {_fmt(g, 'fid')}"]
    for name in r.MIXTURES_2D:
        a, b = _one(rows, r.VAE_2D, name, "high_quality_share"), _one(rows, r.GAN_2D, name, "high_quality_share")
        if a is not None and b is not None:
            checks.append(_below(a, b, "high_quality_share"))
            nums.append(f"{name} {_fmt(a, 'high_quality_share')} vs {_fmt(b, 'high_quality_share')}")
    return _checked(claim, how, checks, nums, [r.VAE, g["model"], r.VAE_2D, r.GAN_2D])


def gan_mode_dropping(rows) -> dict:
    claim, how = "GANs: mode dropping", "modes covered of the narrow 2D mixtures and digit classes (of 10)"
    checks, nums = [], []
    gans = [(name, k, _one(rows, r.GAN_2D, name, "modes_covered")) for name, k in r.MIXTURES_2D.items()]
    gans += [("digits", 10, w) for w in _find(rows, family="implicit", field="modes_covered")]
    for name, k, g in gans:
        if g is not None:  # a mean below k over seeds: some seed missed a mode
            checks.append(g["modes_covered"] < k)
            nums.append(f"{name if name != 'digits' else g['model']} {_fmt(g, 'modes_covered', '.1f')}/{k}")
    return _checked(claim, how, checks, nums, [r.GAN_2D, r.DCGAN, r.DCGAN_HINGE])


def gan_fragile(rows) -> dict:
    claim = "GANs: many engineering tricks, a fragile training"
    how = ("FD spread over seeds relative to its mean, each DCGAN vs the VAE; the loss and normalisation "
           "(non-saturating vs hinge+SN) changing FD by more than the seeds' spread")
    gans = [w for w in (_one(rows, r.DCGAN, field="fid_spread"), _one(rows, r.DCGAN_HINGE, field="fid_spread"))
            if w is not None]
    vae = _one(rows, r.VAE, field="fid_spread")
    if len(gans) < 2 or vae is None:
        return _out(claim, how)
    rel = {w["model"]: w["fid_spread"] / w["fid"] for w in [*gans, vae]}
    checks = [rel[g["model"]] > rel[r.VAE] for g in gans]
    checks.append(_below(gans[0], gans[1], "fid") or _below(gans[1], gans[0], "fid"))
    nums = ("FD spread / mean: " + ", ".join(f"{m} {100 * v:.0f}%" for m, v in rel.items()) +
            f"; FD {gans[0]['model']} {_fmt(gans[0], 'fid')} vs {gans[1]['model']} {_fmt(gans[1], 'fid')}")
    return _out(claim, how, nums, _count(*checks), [*rel])


def gan_metrics_generalisation(rows) -> dict:
    claim = "GANs: evaluation metrics do not account for generalisation"
    how = "FD of a copy of the training set (a memoriser) vs the best model's FD on digits"
    fd = _find(rows, field="fid")
    data_fd = next((w["fid_data"] for w in fd if w.get("fid_data") is not None), None)
    if not fd or data_fd is None:
        return _out(claim, how)
    best = min(fd, key=lambda w: w["fid"])
    nums = f"training set {data_fd:.2f} vs best model {best['model']} {best['fid']:.2f}"
    return _out(claim, how, nums, SUPPORTED if data_fd <= best["fid"] else NOT_SUPPORTED, [best["model"]])


def ood_likelihood(rows) -> dict:
    claim = "Higher likelihood means 'more like the training data'"
    how = "bits/dim of test digits vs inverted digits, noise, shrunk shapes, a blank image"
    models = _find(rows, field="ood_bits_blank")
    if not models:
        return _out(claim, how)
    fooled = {w["model"]: [k for k in r.OOD_SETS if w[f"ood_bits_{k}"] < w["test_bits_per_dim"]] for w in models}
    n_fooled = sum(bool(v) for v in fooled.values())
    nums = "; ".join(f"{m}: {', '.join(v)}" for m, v in fooled.items() if v) or "every OOD set scored worse"
    nums = f"{n_fooled}/{len(models)} models give an OOD set fewer bits than the test digits ({nums})"
    return _out(claim, how, nums, _count(*(not v for v in fooled.values())), list(fooled))


def flowpp_ordering(rows) -> dict:
    claim = "The published ordering of families by bits/dim (Flow++, Table 2, CIFAR-10) holds on digits"
    how = "Kendall's tau between the paper's CIFAR-10 bits/dim and ours on digits, for the models we have"
    pairs = []
    for _, name, cifar, _, _ in r.FLOWPP_TABLE:
        ours = _one(rows, r.FLOWPP_OURS[name], field="test_bits_per_dim") if name in r.FLOWPP_OURS else None
        if cifar is not None and ours is not None:
            pairs.append((name, cifar, ours["test_bits_per_dim"]))
    if len(pairs) < 3:
        return _out(claim, how)
    sign = [math.copysign(1, (a[1] - b[1]) * (a[2] - b[2])) for a, b in itertools.combinations(pairs, 2)
            if a[1] != b[1] and a[2] != b[2]]
    tau = sum(sign) / len(sign)
    nums = f"tau {tau:+.2f} over {len(pairs)} models (" + ", ".join(f"{n} {c:.2f}/{o:.2f}" for n, c, o in pairs) + ")"
    return _out(claim, how, nums, SUPPORTED if tau >= 0.5 else MIXED if tau > 0 else NOT_SUPPORTED,
                [p[0] for p in pairs])


CLAIMS = (density_autoregressive, log_time_sampling, ar_continuous, flows_continuous_discrete, vae_first_choice,
          gan_quality_per_compute, blurry_vs_modes, simclr_batch_moco_queue, ar_slow_sampling, ar_no_representation,
          flows_z_as_big_as_x, flows_long_way, vae_compressed, vae_blurry, gan_mode_dropping,
          gan_fragile, gan_metrics_generalisation, ood_likelihood, flowpp_ordering)


def table(rows) -> list[dict]:
    """Every claim's dict, in the lecture's order."""
    return [claim(rows) for claim in CLAIMS]


# the lecture's advice as a decision guide: (if you want, use, the claim whose measured row backs it)
GUIDE = [
    ("the best density (bits/dim) on discrete data", "an autoregressive model", density_autoregressive),
    ("density, but n network passes per sample are too many", "a parallel multiscale PixelCNN (log n passes)",
     log_time_sampling),
    ("a density on continuous data", "a flow, or a continuous autoregressive density", ar_continuous),
    ("exact likelihood and one-pass sampling, no compression", "a flow (z is as big as x)", flows_z_as_big_as_x),
    ("representation, sampling and a likelihood bound at once", "a VAE", vae_first_choice),
    ("sharp samples with little compute", "a GAN", gan_quality_per_compute),
    ("every mode of the data covered", "a likelihood model rather than a GAN", gan_mode_dropping),
    ("a training that works without tuning", "a likelihood model rather than a GAN", gan_fragile),
    ("features for a task with few labels", "a self-supervised encoder, not an autoregressive model",
     ar_no_representation),
    ("to flag inputs unlike the training data", "not the likelihood alone", ood_likelihood),
]


def decision_guide(rows) -> list[dict]:
    """Each line of ``GUIDE`` with the claim that backs it, that claim's verdict and numbers (the OOD line's
    advice holds when its claim, "higher likelihood means more like the training data", is not supported)."""
    out = []
    for want, use, claim in GUIDE:
        c = claim(rows)
        out.append({"if you want": want, "use": use, "backed by the claim": c["claim"], "its verdict": c["verdict"],
                    "numbers": c["numbers"]})
    return out
