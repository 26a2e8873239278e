"""deepul_helpers.data: the documented contract of every set, checksums, and the true entropies
checked against independent computations."""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict

import numpy as np
import pytest
import scipy.stats

from deepul_helpers import data
from deepul_helpers.data import cli as data_cli
from deepul_helpers.data import grammar, signals, text, toy2d

# The documented contract (CONTRIBUTING.md and the issue): dtype, one example's shape, levels,
# train size, test size. None: depends on the Python version (text_corpus).
CONTRACT = {
    "1d_a": (np.int64, (), 20, 800, 200),
    "1d_b": (np.int64, (), 100, 8000, 2000),
    "image_density_25": (np.int64, (2,), 25, 10_000, 2_000),
    "image_density_100": (np.int64, (2,), 100, 100_000, 20_000),
    "moons": (np.float32, (2,), None, 10_000, 2_000),
    "gaussians_8": (np.float32, (2,), None, 10_000, 2_000),
    "gaussians_25": (np.float32, (2,), None, 10_000, 2_000),
    "checkerboard": (np.float32, (2,), None, 10_000, 2_000),
    "swiss_roll": (np.float32, (2,), None, 10_000, 2_000),
    "rings": (np.float32, (2,), None, 10_000, 2_000),
    "shapes": (np.uint8, (20, 20, 1), 2, 10_000, 2_000),
    "shapes_colored": (np.uint8, (20, 20, 3), 4, 10_000, 2_000),
    "digits": (np.uint8, (8, 8, 1), 17, 1500, 297),
    "digits_binary": (np.uint8, (8, 8, 1), 2, 1500, 297),
    "patches": (np.uint8, (8, 8, 3), 4, 6784, 1696),
    "text_grammar": (np.int64, (64,), "vocab", 10_000, 2_000),
    "text_corpus": (np.int64, (128,), 96, None, None),
    "signals": (np.int64, (256,), 256, 8000, 2000),
    "gaussian_pairs": (np.float32, (2, 5), None, 10_000, 2_000),
    "gaussian_rotated": (np.float32, (2,), None, 10_000, 2_000),
    "gaussian_aligned": (np.float32, (2,), None, 10_000, 2_000),
    "bars": (np.uint8, (4, 4, 1), 2, 5000, 1000),
    "gaussians_8_narrow": (np.float32, (2,), None, 10_000, 2_000),
    "gaussians_25_narrow": (np.float32, (2,), None, 10_000, 2_000),
    "mixture_1d": (np.float32, (1,), None, 10_000, 2_000),
}


@pytest.mark.parametrize("name", list(CONTRACT))
def test_contract_of_every_set(name):
    dtype, shape, levels, n_train, n_test = CONTRACT[name]
    inf = data.info(name)
    if levels == "vocab":  # a text set's levels are its characters
        levels = len(inf.vocab)
    assert inf.shape == shape and inf.levels == levels
    for split, n in (("train", n_train), ("test", n_test)):
        x = data.load(name, split=split)
        assert x.dtype == dtype
        if n is not None:
            assert x.shape == (n, *shape)
        else:
            assert x.shape[1:] == shape
        if levels is not None:
            assert x.min() >= 0 and x.max() <= levels - 1
    assert (inf.n_train, inf.n_test) == (len(data.load(name)), len(data.load(name, "test")))


def test_every_registered_set_is_in_the_contract():
    assert set(data.names()) == set(CONTRACT)


@pytest.mark.parametrize("name", list(CONTRACT))
def test_checksum_matches_the_recorded_one(name):
    recorded = data.info(name).sha256
    if recorded is None:
        entry = data.read_recorded()["datasets"].get(name, {})
        pytest.skip(f"{name}: its content depends on the Python version; checksum recorded on Python "
                    f"{entry.get('python', '?')}, this is {data.python_minor()}")
    assert data.checksums(name) == recorded, (
        f"{name} changed; if on purpose, rewrite the record with 'deepul data record {name}'"
    )


@pytest.mark.parametrize("name", list(CONTRACT))
def test_same_seed_same_data_fresh_copies(name):
    a, b = data.load(name, seed=3), data.load(name, seed=3)
    assert np.array_equal(a, b)
    a[...] = 0  # the caller owns its copy: the cache is untouched
    assert np.array_equal(data.load(name, seed=3), b)
    other = data.load(name, seed=4)
    if data.info(name).seeded:
        assert not np.array_equal(other, b)
    else:
        assert np.array_equal(other, b)


@pytest.mark.parametrize("name", [n for n in CONTRACT if data.info(n).seeded])
def test_train_and_test_differ(name):
    tr, te = data.load(name, "train"), data.load(name, "test")
    assert not np.array_equal(tr[: len(te)], te)


def test_labels():
    for name in ("digits", "digits_binary", "shapes", "shapes_colored"):
        x, y = data.load(name, "test", labels=True)
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert set(np.unique(y)) == set(range(len(data.info(name).labels)))
    digits_x, digits_y = data.load("digits", labels=True)
    bin_x, bin_y = data.load("digits_binary", labels=True)
    assert np.array_equal(digits_y, bin_y) and np.array_equal(bin_x, (digits_x >= 8).astype(np.uint8))
    with pytest.raises(ValueError, match="'1d_a' has no labels; labelled sets: .*digits"):
        data.load("1d_a", labels=True)


def test_shapes_labels_match_the_drawn_shape():
    """Independent check of the generator: circles fill ~pi/4 of their bounding box, squares all of
    it, triangles half of it, lines a thin part; and every image shows a shape."""
    x, y = data.load("shapes", "test", labels=True)
    m = x[..., 0].astype(bool)
    assert m.reshape(len(m), -1).sum(1).min() >= 3
    rows, cols = m.any(2), m.any(1)
    h = rows.sum(1)
    w = cols.sum(1)
    fill = m.reshape(len(m), -1).sum(1) / (h * w)
    assert np.all(fill[y == 0] == 1.0)  # squares fill their box
    assert 0.6 < np.median(fill[y == 1]) < 0.9  # circles ~ pi / 4
    assert 0.4 < np.median(fill[y == 2]) < 0.7  # triangles ~ 1 / 2
    assert np.median(fill[y == 3]) < 0.4  # lines
    xc, yc = data.load("shapes_colored", "test", labels=True)
    assert not np.any(np.all(xc == xc[:, :1, :1], axis=(1, 2, 3)))  # shape and background colours differ


@pytest.mark.parametrize("name", ["1d_a", "1d_b", "image_density_25", "image_density_100"])
def test_discrete_entropy_and_sample_frequencies(name):
    dist = data.true_distribution(name)
    p = dist.probs
    assert np.isclose(p.sum(), 1.0) and p.min() >= 0
    ndim = p.ndim
    # independent computation: scipy's entropy of the flattened table, per dimension
    assert data.info(name).entropy == pytest.approx(scipy.stats.entropy(p.ravel()) / ndim, rel=1e-12)
    x = np.concatenate([data.load(name, "train"), data.load(name, "test")])
    idx = x if ndim == 1 else np.ravel_multi_index((x[:, 0], x[:, 1]), p.shape)
    counts = np.bincount(idx, minlength=p.size)
    expected = p.ravel() * len(idx)
    # pool cells with small expectation so that the chi-square approximation holds
    order = np.argsort(expected)
    pooled_e, pooled_c, acc_e, acc_c = [], [], 0.0, 0
    for i in order:
        acc_e += expected[i]
        acc_c += counts[i]
        if acc_e >= 5:
            pooled_e.append(acc_e)
            pooled_c.append(acc_c)
            acc_e, acc_c = 0.0, 0
    pooled_e[-1] += acc_e
    pooled_c[-1] += acc_c
    chi2 = scipy.stats.chisquare(pooled_c, pooled_e)
    assert chi2.pvalue > 1e-4
    # log_prob agrees with the table
    assert np.allclose(dist.log_prob(x[:50]), np.log(p.ravel()[idx[:50]]))


def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'; known: 1d_a, 1d_b, "):
        data.load("mnist")
    with pytest.raises(ValueError, match="unknown data set"):
        data.info("mnist")
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'valid'"):
        data.load("1d_a", split="valid")
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        data.load("1d_a", seed=-1)
    for bad in (1.5, "0", True, None):
        with pytest.raises(TypeError, match="seed must be a non-negative integer"):
            data.load("1d_a", seed=bad)
    with pytest.raises(ValueError, match="no known true distribution"):
        data.true_distribution("digits")
    with pytest.raises(ValueError, match="decode works on text sets"):
        data.decode("digits", [[0, 1]])
    with pytest.raises(ValueError, match="must lie in the table"):
        data.true_distribution("1d_a").log_prob(np.array([3, 20]))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        data.true_distribution("image_density_25").log_prob(np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        data.true_distribution("moons").log_prob(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="ids must lie in"):
        data.true_distribution("text_grammar").log_prob(np.full((1, 64), 99))
    with pytest.raises(ValueError, match="ids must be"):
        data.decode("text_grammar", [[0, 999]])


def test_distributions_accept_torch_tensors_and_seeds():
    import torch

    pts = data.load("moons", "test")[:5]
    dist = data.true_distribution("moons")
    assert np.allclose(dist.log_prob(torch.from_numpy(pts)), dist.log_prob(pts))
    ids = data.load("text_grammar", "test")[:3]
    assert data.decode("text_grammar", torch.from_numpy(ids)) == data.decode("text_grammar", ids)
    for name in ("1d_b", "rings", "text_grammar"):
        d = data.true_distribution(name)
        assert np.array_equal(d.sample(7, 5), d.sample(7, np.random.default_rng(5)))


def test_cli_list_and_show(tmp_path, capsys):
    from deepul_helpers.cli import main

    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in data.names():
        assert name in out
    assert f"{data.info('1d_a').entropy:.4f}" in out
    one_per_kind = {data.info(n).kind: n for n in reversed(data.names())}  # every kind of data set is drawn
    assert {"pairs", "1d_continuous"} <= set(one_per_kind)
    for name in sorted(one_per_kind.values()):
        png = tmp_path / f"{name}.png"
        assert main(["data", "show", name, "--out", str(png), "--n", "50"]) == 0
        assert png.stat().st_size > 1000
    assert main(["data", "show", "mnist", "--out", str(tmp_path / "x.png")]) == 2
    assert "unknown data set 'mnist'" in capsys.readouterr().err
    assert data_cli.verify(["1d_a", "digits"]) == []


TOYS = ["moons", "gaussians_8", "gaussians_25", "checkerboard", "swiss_roll", "rings"]


@functools.cache
def _grid(name, margin=1.0):
    """The log-density of toy ``name`` on the cell centres of a uniform grid (k cells per unit,
    step <= sd / 2; 1/6 for the checkerboard) over the plot extent widened by ``margin`` to whole
    units. The grid holds all the mass but ~1e-10 (>= 7 sd beyond the support) and, the densities
    being smooth (or constant on cells aligned with the grid), a plain sum integrates them to
    ~1e-12. Unit bins are unions of whole cells. Returns (points, log_prob, cell area, (lo, hi))."""
    dist = data.true_distribution(name)
    k = int(np.ceil(2 / getattr(dist, "sd", 1 / 3)))
    lo, hi = np.floor(dist.extent[0] - margin), np.ceil(dist.extent[1] + margin)
    n = int(round((hi - lo) * k))
    c = lo + (np.arange(n) + 0.5) / k
    gx, gy = np.meshgrid(c, c, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    return pts, dist.log_prob(pts), 1.0 / k**2, (lo, hi)


@pytest.mark.parametrize("name", TOYS)
def test_toy_density_integrates_to_one_and_entropy_agrees(name):
    _, lp, area, _ = _grid(name)
    p = np.exp(lp)
    assert p.sum() * area == pytest.approx(1.0, abs=1e-6)
    h_grid = float(-(p * np.where(p > 0, lp, 0.0)).sum() * area / 2)  # nats per dimension
    inf = data.info(name)
    assert inf.entropy > 1.0  # the documented scale keeps a gap in % meaningful
    if name == "checkerboard":
        assert inf.entropy_se is None
        assert inf.entropy == pytest.approx(np.log(32) / 2, rel=1e-12)
        assert h_grid == pytest.approx(inf.entropy, rel=1e-9)
    else:  # the recorded Monte Carlo estimate, against an independent grid integral
        assert inf.entropy_se < 0.002 * inf.entropy
        assert abs(inf.entropy - h_grid) < 4 * inf.entropy_se


@pytest.mark.parametrize("name", TOYS)
def test_toy_samples_follow_the_density(name):
    """Counts of the 12k samples in 1x1 bins against the density integrated over each bin."""
    x = np.concatenate([data.load(name, "train"), data.load(name, "test")]).astype(np.float64)
    pts, lp, area, (lo, hi) = _grid(name)
    p = np.exp(lp) * area
    edges = np.arange(lo, hi + 1.0)
    expected, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=[edges, edges], weights=p)
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])
    expected = expected.ravel() / expected.sum() * len(x)
    counts = counts.ravel()
    assert counts[expected < 1e-9].sum() == 0  # no sample where the density is zero
    big = expected >= 5
    e = np.append(expected[big], expected[~big].sum())
    o = np.append(counts[big], counts[~big].sum())
    if e[-1] < 1e-9:
        e, o = e[:-1], o[:-1]
    assert scipy.stats.chisquare(o, e * o.sum() / e.sum()).pvalue > 1e-4


def test_curve_quadrature_is_converged_and_matches_bessel_closed_form():
    rng = np.random.default_rng(0)
    for make in (toy2d._moons, toy2d._swiss_roll):
        d = make()
        ext = d.extent
        pts = rng.uniform([ext[0], ext[2]], [ext[1], ext[3]], size=(2000, 2))
        fine = toy2d.CurveMixture(d.name, d.curves, d.sd, d.extent, panel_scale=2)
        assert np.max(np.abs(d.log_prob(pts) - fine.log_prob(pts))) < 1e-6
    rings = toy2d.Rings()

    def circle(radius):
        return lambda t: radius * np.stack([np.cos(t), np.sin(t)], 1)

    circles = [(w, circle(r), 0.0, 2 * np.pi, 64) for w, r in zip(rings.weights, rings.radii)]
    quad = toy2d.CurveMixture("circles", circles, rings.sd, rings.extent)
    pts = rng.uniform(-5.5, 5.5, size=(2000, 2))
    assert np.max(np.abs(quad.log_prob(pts) - rings.log_prob(pts))) < 1e-6


def _windows_by_enumeration(table, T):
    """Probability of every possible first-T-characters string after a sentence start, by
    walking all action sequences of the grammar table until T characters are written."""
    probs = defaultdict(float)
    stack = [(grammar.START, 1.0, "")]
    while stack:
        state, p, txt = stack.pop()
        for word, q, nxt in table[state]:
            longer = txt + grammar._token(state, word)
            if len(longer) >= T:
                probs[longer[:T]] += p * q
            else:
                stack.append((grammar.START if nxt is None else nxt, p * q, longer))
    return probs


def test_grammar_entropies_against_enumeration():
    g = grammar.Grammar()
    # the entropy rate two ways: word level (H_s / L_s) and the stationary character chain
    assert g.entropy_rate() == pytest.approx(g.entropy_rate_from_char_chain(), rel=1e-10)
    # exact window entropy and log_prob against the enumeration of all windows of length T
    cid = {c: i for i, c in enumerate(g.vocab)}
    for T in (5, 12, 20):
        probs = _windows_by_enumeration(grammar.GRAMMAR, T)
        p = np.array(list(probs.values()))
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        assert g.window_entropy(T) == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-10)
        ids = np.array([[cid[c] for c in w] for w in probs])
        assert np.allclose(g.log_prob(ids), np.log(p), atol=1e-10)
    # per character, window entropies fall towards the rate as T grows
    per_char = [g.window_entropy(T) / T for T in (16, 64, 256, 1024)]
    assert all(a > b for a, b in zip(per_char, per_char[1:])) and per_char[-1] > g.entropy_rate()
    assert per_char[-1] == pytest.approx(g.entropy_rate(), rel=0.01)


def test_grammar_sentence_entropy_by_enumeration_on_a_small_grammar():
    small = {  # words that share prefixes, loops, and two ways to end
        "start": [("ab", 0.4, "x"), ("ac", 0.3, "y"), ("b", 0.3, "x")],
        "x": [(grammar.END, 0.6, None), ("c", 0.4, "x")],
        "y": [(grammar.END, 0.5, None), ("ca", 0.3, "x"), ("cb", 0.2, "y")],
    }
    g = grammar.Grammar(small)
    mass = h = length = 0.0
    stack = [("start", 1.0, 0)]
    while stack:  # every sentence of probability >= 1e-13
        state, p, n_chars = stack.pop()
        for word, q, nxt in small[state]:
            pq, n2 = p * q, n_chars + len(grammar._token(state, word))
            if pq < 1e-13:
                continue
            if nxt is None:
                mass, h, length = mass + pq, h - pq * np.log(pq), length + pq * n2
            else:
                stack.append((nxt, pq, n2))
    assert mass == pytest.approx(1.0, abs=1e-9)
    H, L = g.sentence_entropy_and_length()
    assert H == pytest.approx(h, rel=1e-7) and L == pytest.approx(length, rel=1e-7)
    assert g.entropy_rate() == pytest.approx(g.entropy_rate_from_char_chain(), rel=1e-10)
    for T in (3, 9):
        p = np.array(list(_windows_by_enumeration(small, T).values()))
        assert g.window_entropy(T) == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-10)
    with pytest.raises(ValueError, match="prefix"):
        grammar.Grammar({"start": [("a", 0.5, "start"), ("ab", 0.5, None)]})


def test_text_grammar_samples_under_the_exact_model():
    dist = data.true_distribution("text_grammar")
    x = np.concatenate([data.load("text_grammar"), data.load("text_grammar", "test")])
    lp = dist.log_prob(x)
    assert np.all(np.isfinite(lp))
    nll = -lp / x.shape[1]  # per character
    assert abs(nll.mean() - data.info("text_grammar").entropy) < 4 * nll.std() / np.sqrt(len(nll))
    words = {w for acts in grammar.GRAMMAR.values() for w, _, _ in acts if w != grammar.END}
    for s in data.decode("text_grammar", x[:200]):
        for sentence in s.split(". ")[:-1]:  # the last piece may be cut by the window
            assert set(sentence.split(" ")) <= words
    bad = x[:1].copy()
    bad[0, 0] = data.info("text_grammar").vocab.index(".")  # no sentence starts with '.'
    assert dist.log_prob(bad)[0] == -np.inf
    assert data.info("text_grammar").entropy == pytest.approx(dist.grammar.window_entropy(64) / 64)


def test_text_corpus():
    inf = data.info("text_corpus")
    assert inf.vocab == text.CORPUS_VOCAB and not inf.seeded
    tr, te = data.load("text_corpus"), data.load("text_corpus", "test")
    assert len(tr) > 2000 and len(te) > 500
    assert not {r.tobytes() for r in te} & {r.tobytes() for r in tr}  # no shared window
    docs = text.corpus_documents()
    assert len(docs) == len(set(docs))
    joined = data.decode("text_corpus", tr[:50])
    assert "".join(joined) in "\n\n".join(d for d in docs if hashlib.sha256(d.encode()).digest()[0] >= 52)
    assert data.decode("text_corpus", tr[0]) == joined[:1]


def test_signals_mu_law():
    x = np.linspace(-1, 1, 10001)
    q = signals.mu_law_encode(x)
    assert q.min() == 0 and q.max() == 255 and np.all(np.diff(q) >= 0)
    back = signals.mu_law_decode(q)
    # the round trip error is at most half a level, measured in the compressed domain
    comp = lambda v: np.sign(v) * np.log1p(255 * np.abs(v)) / np.log1p(255)
    assert np.max(np.abs(comp(back) - comp(x))) <= 1 / 255 + 1e-12
    s = data.load("signals", "test")
    assert len(np.unique(s)) > 200  # the quantizer's range is used
