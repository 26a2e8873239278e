"""Self-supervised family: its data (signals' bands, Gaussian pairs with known MI) and the reference
models checked against closed forms and literal implementations."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.stats
import torch

from deepul_helpers import data
from deepul_helpers.data import pairs, signals

# ----------------------------------------------------------------------------- data


def test_signals_band_labels_agree_with_the_spectrum():
    """Independent check: the period at the peak of each waveform's spectrum falls in its band
    for most waveforms (leakage and near-equal sines account for the rest)."""
    x, y = data.load("signals", "test", labels=True)
    assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1, 2, 3}
    assert np.bincount(y).min() > 0.2 * len(y)  # log-spaced bands: about a quarter each
    w = signals.mu_law_decode(x)
    spectrum = np.abs(np.fft.rfft(w * np.hanning(w.shape[1]), axis=1))[:, 1:]
    period = w.shape[1] / (np.argmax(spectrum, 1) + 1)
    assert (signals.band(np.clip(period, 8, 64)) == y).mean() > 0.9


def test_gaussian_pairs_have_the_stated_correlation_density_and_entropy():
    p = data.load("gaussian_pairs")
    assert p.shape == (10_000, 2, pairs.DIM) and p.dtype == np.float32
    r = [np.corrcoef(p[:, 0, i], p[:, 1, i])[0, 1] for i in range(pairs.DIM)]
    assert np.allclose(r, pairs.RHO, atol=0.01)
    dist = data.true_distribution("gaussian_pairs")
    cov = np.kron(np.array([[1, pairs.RHO], [pairs.RHO, 1]]), np.eye(pairs.DIM))  # (x, y) flattened
    mvn = scipy.stats.multivariate_normal(np.zeros(2 * pairs.DIM), cov)
    np.testing.assert_allclose(dist.log_prob(p[:50]), mvn.logpdf(p[:50].reshape(50, -1)), rtol=1e-6)
    assert data.info("gaussian_pairs").entropy == pytest.approx(mvn.entropy() / (2 * pairs.DIM), rel=1e-12)
    # I(x; y) = H(x) + H(y) - H(x, y)
    h_marginal = scipy.stats.multivariate_normal(np.zeros(pairs.DIM), np.eye(pairs.DIM)).entropy()
    assert pairs.mutual_information() == pytest.approx(2 * h_marginal - mvn.entropy(), rel=1e-12)
    assert pairs.mutual_information(5, 0.9) == pytest.approx(-2.5 * math.log(1 - 0.81))


# ----------------------------------------------------------------------------- losses against literal loops

from deepul_helpers.models import selfsupervised as ssl  # noqa: E402
from deepul_helpers.train import fit  # noqa: E402


def _literal_nt_xent(z1, z2, t):
    """The published algorithm, one anchor at a time: views 2k and 2k+1 are example k's pair."""
    z = [None] * (2 * len(z1))
    for k in range(len(z1)):
        z[2 * k], z[2 * k + 1] = z1[k] / np.linalg.norm(z1[k]), z2[k] / np.linalg.norm(z2[k])
    n2 = len(z)

    def ell(i, j):
        den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(n2) if k != i)
        return -math.log(math.exp(float(z[i] @ z[j]) / t) / den)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(len(z1))) / n2


def test_nt_xent_equals_a_literal_loop_and_its_distributed_form():
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    for t in (0.1, 0.5, 1.0):
        got = ssl.nt_xent(torch.tensor(z1), torch.tensor(z2), t)
        assert float(got) == pytest.approx(_literal_nt_xent(z1, z2, t), rel=1e-10)
    # Local anchors against the global candidates, averaged over equal shards = the whole batch.
    full = ssl.nt_xent(torch.tensor(z1), torch.tensor(z2), 0.5)
    parts = [ssl.nt_xent(torch.tensor(z1[o:o + 2]), torch.tensor(z2[o:o + 2]), 0.5, torch.tensor(z1),
                         torch.tensor(z2), offset=o) for o in (0, 2, 4)]
    assert float(sum(parts) / 3) == pytest.approx(float(full), rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_all_equal_embeddings_give_log_2n_minus_1(n):
    z = torch.ones(n, 8, dtype=torch.float64)
    for t in (0.07, 0.5, 2.0):
        assert float(ssl.nt_xent(z, z.clone(), t)) == pytest.approx(math.log(2 * n - 1), abs=1e-12)


@pytest.mark.parametrize("m", [1, 10, 100])
def test_queue_loss_all_equal_gives_log_m_plus_1_and_matches_a_loop(m):
    q = torch.ones(5, 3, dtype=torch.float64)
    assert float(ssl.queue_info_nce(q, q, torch.ones(m, 3, dtype=torch.float64), 0.2)) == \
        pytest.approx(math.log(m + 1), abs=1e-12)
    rng = np.random.default_rng(m)
    qs, ks, queue = (rng.standard_normal(s) for s in ((4, 3), (4, 3), (m, 3)))
    unit = [lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)][0]
    qs, ks, queue = unit(qs), unit(ks), unit(queue)
    literal = np.mean([-math.log(math.exp(qs[i] @ ks[i] / 0.2) / (math.exp(qs[i] @ ks[i] / 0.2)
                                                                   + sum(math.exp(qs[i] @ c / 0.2) for c in queue)))
                       for i in range(4)])
    got = ssl.queue_info_nce(*(torch.tensor(a) for a in (qs, ks, queue)), 0.2)
    assert float(got) == pytest.approx(literal, rel=1e-10)


def test_info_nce_bound_never_exceeds_log_n():
    gen = torch.Generator().manual_seed(0)
    for n in (2, 8, 32):
        for scale in (0.1, 1.0, 10.0, 1e3):
            s = scale * torch.randn(n, n, generator=gen, dtype=torch.float64)
            s.diagonal().add_(scale * 3)  # strong positives: the bound is pushed toward its ceiling
            assert float(ssl.mi_lower_bound(s)) <= math.log(n) + 1e-12
        perfect = torch.eye(n, dtype=torch.float64) * 1e4
        assert float(ssl.mi_lower_bound(perfect)) == pytest.approx(math.log(n), abs=1e-9)
        assert float(ssl.mi_lower_bound(torch.zeros(n, n))) == pytest.approx(0.0, abs=1e-6)  # an ignorant critic


def _trained_bound(dim, rho, n, iterations=600):
    from deepul_helpers import config

    train = pairs.correlated_pairs(n * iterations // 3, np.random.default_rng(1), dim, rho)
    test = torch.as_tensor(pairs.correlated_pairs(n * 40, np.random.default_rng(2), dim, rho))
    config.seed_everything(0)
    critic = ssl.InfoNCE(dim, hidden=64, embed=16)
    fit(critic, train, epochs=3, batch_size=n, lr=3e-3, seed=0, device="cpu", quick=False, progress=False)
    return critic.mi_bound(test, n)


def test_trained_critic_approaches_the_true_mi_when_log_n_exceeds_it():
    """d = 2, rho = 0.8: I = 1.02 nats, N = 128 (log N = 4.85). The bound must stay below I (up to
    the Monte Carlo error of 40 held-out batches, ~0.02) and reach it within 0.15 nats."""
    i_true = pairs.mutual_information(2, 0.8)
    got = _trained_bound(2, 0.8, 128)
    assert i_true - 0.15 < got < i_true + 0.05, (got, i_true)


def test_trained_critic_is_capped_at_log_n_when_the_mi_exceeds_it():
    """d = 5, rho = 0.99: I = 9.8 nats, N = 16: the bound saturates at log N = 2.77 (within 0.15)."""
    got = _trained_bound(5, 0.99, 16)
    assert math.log(16) - 0.15 < got <= math.log(16) + 1e-9, got
    assert pairs.mutual_information(5, 0.99) > math.log(16) + 5


# ----------------------------------------------------------------------------- MoCo's momentum and queue


def test_momentum_update_equals_its_closed_form():
    torch.manual_seed(0)
    online, target = torch.nn.Linear(3, 2).double(), torch.nn.Linear(3, 2).double()
    start = [p.detach().clone() for p in target.parameters()]
    m, steps = 0.9, 7
    for _ in range(steps):
        ssl.momentum_update(target, online, m)
    for p0, pt, po in zip(start, target.parameters(), online.parameters()):
        expected = m**steps * p0 + (1 - m**steps) * po.detach()  # geometric series toward a fixed online net
        torch.testing.assert_close(pt.detach(), expected, rtol=1e-12, atol=1e-12)
    ssl.momentum_update(target, online, 0.0)  # m = 0: the key encoder is a copy
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), online.parameters()))
    with pytest.raises(ValueError, match="momentum"):
        ssl.momentum_update(target, online, 1.5)


@pytest.mark.parametrize("size,batches", [(10, [3, 3, 3, 3]), (7, [4, 4, 4]), (8, [2, 8, 1]), (5, [12, 2]),
                                          (6, [6, 6])])
def test_queue_is_fifo_including_sizes_not_multiples_of_the_batch(size, batches):
    q = ssl.KeyQueue(size, 2)
    initial = q.in_order().clone()
    pushed = []
    for b in batches:
        k = torch.arange(len(pushed) + 1, len(pushed) + b + 1, dtype=torch.float32)[:, None].repeat(1, 2)
        q.push(k)
        pushed += k[:, 0].tolist()
        have = q.in_order()[:, 0].tolist()
        newest = pushed[-size:]
        assert have[len(have) - len(newest):] == newest  # the newest keys, oldest first
        if len(pushed) < size:  # the random initial keys not yet pushed out keep their order
            assert torch.equal(q.in_order()[: size - len(pushed)], initial[len(pushed):])


# ----------------------------------------------------------------------------- the models' contracts


def _digits(n=32):
    return torch.as_tensor(data.load("digits")[:n])


@pytest.mark.parametrize("make", [lambda: ssl.SimCLR(width=8, features=16), lambda: ssl.MoCo(width=8, features=16,
                                  queue_size=50), lambda: ssl.RotationPrediction(width=8, features=16)])
def test_image_models_train_with_fit_and_encode(make):
    from deepul_helpers import config

    config.seed_everything(0)
    model = make()
    x = _digits(64)
    loss = model.loss(x)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad
    step = model.train_step if isinstance(model, ssl.MoCo) else None
    before = [p.detach().clone() for p in model.encoder.parameters()]
    hist = fit(model, x.numpy(), epochs=2, batch_size=16, seed=0, device="cpu", quick=True, step=step)
    assert np.isfinite(hist.train_losses).all() and hist.iterations == 8
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))
    f = model.encode(x[:5])
    assert f.shape == (5, 16) and f.dtype == torch.float32
    with pytest.raises(TypeError, match="integer levels"):
        model.loss(x.float())


def test_moco_step_updates_key_encoder_and_queue_only_through_the_step():
    from deepul_helpers import config

    config.seed_everything(0)
    model = ssl.MoCo(width=8, features=16, queue_size=20, momentum=0.5)
    x = _digits(8)
    keys0, key_w0 = model.queue.keys.clone(), model.key_encoder.fc.weight.clone()
    model.loss(x)  # a plain loss evaluation changes nothing
    assert torch.equal(model.queue.keys, keys0) and torch.equal(model.key_encoder.fc.weight, key_w0)
    assert not any(p.requires_grad for p in model.key_encoder.parameters())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    before = copy.deepcopy(model)  # same weights and the same views' generator state
    model.train_step(model, x, opt, 0)
    # centring: the running mean of the keys (from 0) moved a tenth of the way to this batch's raw keys
    with torch.no_grad():
        u = before.encoder.to_views(x)
        before.augment(u, before.gen)  # the query's view
        raw = before.key_head(before.key_encoder(before.augment(u, before.gen)))  # the keys' view
    torch.testing.assert_close(model.key_mean, 0.1 * raw.mean(0))
    torch.testing.assert_close(model.key_encoder.fc.weight, 0.5 * key_w0 + 0.5 * model.encoder.fc.weight)
    assert int(model.queue.ptr) == 8 and not torch.equal(model.queue.keys[:8], keys0[:8])
    assert torch.equal(model.queue.keys[8:], keys0[8:])



def test_cpc_loss_equals_a_literal_loop_and_trains():
    from deepul_helpers import config

    config.seed_everything(0)
    model = ssl.CPC(length=32, levels=256, patch=4, hidden=6, context=5, steps=3).double()
    x = torch.as_tensor(data.load("signals")[:5, :32])
    z, c = model.latents(x)
    literal = []
    for k, w in enumerate(model.predictors, start=1):
        terms = []
        for t in range(z.shape[1] - k):
            for b in range(5):
                scores = torch.stack([w(c[b, t]) @ z[j, t + k] for j in range(5)])
                terms.append(-torch.log_softmax(scores, 0)[b])
        literal.append(torch.stack(terms).mean())
    torch.testing.assert_close(model.step_losses(x), torch.stack(literal))
    assert model.encode(x).shape == (5, 5)
    config.seed_everything(0)
    model = ssl.CPC(length=256, hidden=16, context=16)
    sig = data.load("signals")[:256]
    hist = fit(model, sig, sig[:64], epochs=2, batch_size=32, seed=0, device="cpu", quick=True)
    assert np.isfinite(hist.train_losses).all() and hist.test_losses[-1] < hist.test_losses[0]


def test_random_encoder_is_frozen_and_deterministic():
    from deepul_helpers import config

    config.seed_everything(3)
    a = ssl.RandomEncoder(width=8, features=16)
    config.seed_everything(3)
    b = ssl.RandomEncoder(width=8, features=16)
    assert not any(p.requires_grad for p in a.parameters())
    assert torch.equal(a.encode(_digits(4)), b.encode(_digits(4)))
    shapes = ssl.RandomEncoder((20, 20, 1), levels=2, width=8, features=16)
    assert shapes.encode(torch.as_tensor(data.load("shapes")[:3])).shape == (3, 16)
