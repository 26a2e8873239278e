"""Implicit models: the mathematics of the losses, the gradient penalty, spectral normalisation, the MMD
and its permutation test, and the grid-normalised EBM, against hand values, autograd, SVDs and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from likelihood_contract import check_likelihood_model
from scipy.spatial.distance import jensenshannon

from deepul_helpers import config, data
from deepul_helpers.models import implicit as im
from deepul_helpers.train import fit

LN3 = math.log(3.0)


# ----------------------------------------------------------------------------- losses by hand


def test_gan_losses_against_values_computed_by_hand():
    # logits: D(real) = sigmoid(0) = 1/2 and sigmoid(ln 3) = 3/4; D(fake) = 1/4 and 1/2
    real, fake = torch.tensor([0.0, LN3]), torch.tensor([-LN3, 0.0])
    # -[(log 1/2 + log 3/4) / 2 + (log 3/4 + log 1/2) / 2] = log(8 / 3)
    assert float(im.minimax_d_loss(real, fake)) == pytest.approx(math.log(8 / 3), rel=1e-6)
    # (log(1 - 1/4) + log(1 - 1/2)) / 2 = log(3/8) / 2
    assert float(im.minimax_g_loss(fake)) == pytest.approx(0.5 * math.log(3 / 8), rel=1e-6)
    # -(log 1/4 + log 1/2) / 2 = log(8) / 2
    assert float(im.nonsaturating_g_loss(fake)) == pytest.approx(0.5 * math.log(8), rel=1e-6)


def test_wasserstein_and_hinge_losses_against_values_computed_by_hand():
    real, fake = torch.tensor([0.5, 3.0]), torch.tensor([-2.0, 0.5])
    assert float(im.wasserstein_d_loss(real, fake)) == pytest.approx(-0.75 - 1.75)
    assert float(im.wasserstein_g_loss(fake)) == pytest.approx(0.75)
    # relu(1 - 0.5) = 0.5, relu(1 - 3) = 0 -> 0.25; relu(1 - 2) = 0, relu(1 + 0.5) = 1.5 -> 0.75
    assert float(im.hinge_d_loss(real, fake)) == pytest.approx(1.0)
    assert float(im.hinge_g_loss(fake)) == pytest.approx(0.75)


def test_losses_are_stable_at_extreme_logits():
    big = torch.tensor([80.0, -80.0])
    for loss in (im.minimax_d_loss(big, -big), im.minimax_g_loss(big), im.nonsaturating_g_loss(big)):
        assert torch.isfinite(loss)


def test_minimax_value_at_the_optimal_discriminator_is_minus_log_4_plus_2_jsd():
    """p, q on 4 atoms with probabilities in eighths: a batch of 8 atoms represents each exactly;
    D* = p / (p + q) has logit log p - log q, and -minimax_d_loss is then V(D*, G)."""
    p = np.array([4, 2, 1, 1]) / 8
    q = np.array([1, 1, 3, 3]) / 8
    atoms_p = np.repeat(np.arange(4), (p * 8).astype(int))
    atoms_q = np.repeat(np.arange(4), (q * 8).astype(int))
    logit = torch.tensor(np.log(p) - np.log(q))
    value = -float(im.minimax_d_loss(logit[atoms_p], logit[atoms_q]))
    jsd = jensenshannon(p, q) ** 2  # scipy returns the square root of the divergence (natural log)
    assert value == pytest.approx(-math.log(4) + 2 * jsd, rel=1e-9)
    # any other discriminator does worse for D (a lower value)
    assert -float(im.minimax_d_loss(0.9 * logit[atoms_p], 0.9 * logit[atoms_q])) < value


# ----------------------------------------------------------------------------- gradient penalty


def test_interpolation_is_per_example_not_per_pixel():
    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    eps = torch.rand(5)
    x_hat = im.interpolate(real, fake, eps)
    for i in range(5):
        assert torch.allclose(x_hat[i], eps[i] * real[i] + (1 - eps[i]) * fake[i])
    torch.manual_seed(0)
    x_hat = im.interpolate(real, fake)
    e = ((x_hat - fake) / (real - fake)).reshape(5, -1)  # one coefficient per example
    assert torch.allclose(e, e[:, :1].expand_as(e), atol=1e-4)


def test_gradient_penalty_against_autograd_and_closed_forms():
    torch.manual_seed(0)
    real, fake, eps = torch.randn(6, 3), torch.randn(6, 3), torch.rand(6)
    # linear critic w.x: the gradient is w everywhere, penalty (|w| - 1)^2
    w = torch.tensor([3.0, 0.0, 4.0])
    penalty, norms = im.gradient_penalty(lambda x: x @ w, real, fake, eps)
    assert torch.allclose(norms, torch.full((6,), 5.0))
    assert float(penalty) == pytest.approx(16.0)
    # quadratic critic sum x^2: gradient 2 x_hat at the interpolate
    x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake
    penalty, norms = im.gradient_penalty(lambda x: (x**2).sum(1), real, fake, eps)
    assert torch.allclose(norms, 2 * x_hat.norm(dim=1), rtol=1e-6)
    expected = float(((2 * x_hat.norm(dim=1) - 1) ** 2).mean())
    assert float(penalty.detach()) == pytest.approx(expected, rel=1e-6)
    # an MLP critic: per-example norms against torch.func's Jacobian, and the penalty trains the critic
    net = im.mlp(3, 1, hidden=16, layers=2)
    critic = lambda x: net(x).squeeze(-1)
    penalty, norms = im.gradient_penalty(critic, real, fake, eps)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: critic(v[None])[0], x_hat[i]) for i in range(6)])
    assert torch.allclose(norms, jac.norm(dim=1), rtol=1e-5)
    penalty.backward()  # the output bias does not change the input gradient: it gets none
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert len(grads) == len(list(net.parameters())) - 1 and all(torch.isfinite(g).all() for g in grads)


def _trained_critic_norm(gp_weight, steps=200):
    config.seed_everything(0)
    model = im.mlp_gan(2, loss="wgan-gp", hidden=32, layers=2, gp_weight=gp_weight)
    opt = torch.optim.Adam(model.discriminator.parameters(), lr=2e-3, betas=(0.5, 0.9))
    real = torch.as_tensor(data.load("gaussians_8")[:256])
    with torch.no_grad():
        fake = model.generator(model.noise(256))  # a fixed generator: train the critic alone
    for _ in range(steps):
        loss, _ = im.gan.discriminator_loss(model, real, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(im.gradient_penalty(model.discriminate, real, fake)[1].mean())


def test_trained_wgan_gp_critic_has_unit_gradient_norm_on_interpolates():
    """The critic maximises (slope x transport distance) - lambda (slope - 1)^2: its gradient norm settles
    at about 1 + W / (2 lambda), near 1 for a large lambda (here W ~ 4: 1.2 for lambda = 10)."""
    strong, usual = _trained_critic_norm(100.0), _trained_critic_norm(10.0)
    assert strong == pytest.approx(1.0, abs=0.05)
    assert 1.0 < usual < 1.4 and usual > strong


# ----------------------------------------------------------------------------- spectral norm


def test_spectral_normalize_against_svdvals():
    torch.manual_seed(0)
    for shape in [(20, 30), (8, 4, 3, 3)]:
        w = torch.randn(*shape)
        normed, sigma, _ = im.spectral_normalize(w, torch.nn.functional.normalize(torch.randn(shape[0]), dim=0), 200)
        top = torch.linalg.svdvals(w.reshape(shape[0], -1))[0]
        assert float(sigma) == pytest.approx(float(top), rel=1e-4)
        assert float(torch.linalg.svdvals(normed.reshape(shape[0], -1))[0]) == pytest.approx(1.0, abs=1e-4)


def test_spectral_norm_layers_converge_during_training_passes():
    torch.manual_seed(0)
    net = im.apply_spectral_norm(torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(),
                                                     torch.nn.Conv2d(1, 6, 3)))
    x = torch.randn(4, 10)
    for _ in range(100):  # one power-iteration step per forward pass in training mode
        net[0](x)
        net[2](torch.randn(1, 1, 5, 5))
    for layer in (net[0], net[2]):
        w = layer.weight.detach()
        assert float(torch.linalg.svdvals(w.reshape(w.shape[0], -1))[0]) == pytest.approx(1.0, abs=1e-3)
    # a spectrally normalised MLP is 1-Lipschitz: no input gradient above 1
    mlp = im.apply_spectral_norm(im.mlp(2, 1, hidden=32, layers=3))
    for _ in range(100):
        mlp(torch.randn(8, 2))
    mlp.eval()
    z = torch.randn(256, 2, requires_grad=True)
    (g,) = torch.autograd.grad(mlp(z).sum(), z)
    assert float(g.norm(dim=1).max()) <= 1.0 + 1e-3



def test_scaled_network_space_makes_the_critic_scale_lipschitz_in_data_space():
    """mlp_gan(scale=s): the discriminator sees s * x, samples come back in data space, and a spectrally
    normalised critic's input gradient in data space is s times its gradient in network space (chain rule,
    against autograd at s * x): s-Lipschitz instead of 1."""
    config.seed_everything(0)
    gan = im.mlp_gan(2, loss="hinge", scale=10.0, hidden=32)
    x = torch.randn(64, 2)
    assert torch.equal(gan.encode(x), 10.0 * x) and torch.allclose(gan.decode(gan.encode(x)), x)
    for _ in range(100):  # power iteration converges over training passes
        gan.discriminate(gan.encode(x))
    gan.eval()
    z = torch.randn(512, 2, requires_grad=True)
    (g,) = torch.autograd.grad(gan.discriminate(gan.encode(z)).sum(), z)
    y = (10.0 * z.detach()).requires_grad_(True)
    (g_net,) = torch.autograd.grad(gan.discriminate(y).sum(), y)
    assert torch.allclose(g, 10.0 * g_net, atol=1e-5)
    assert float(g_net.norm(dim=1).max()) <= 1.0 + 1e-3 and float(g.norm(dim=1).max()) <= 10.0 + 1e-2
    config.seed_everything(0)
    plain = im.mlp_gan(2, loss="hinge", hidden=32)
    config.seed_everything(0)
    scaled = im.mlp_gan(2, loss="hinge", hidden=32, scale=10.0)
    torch.manual_seed(1)
    a = plain.sample(8)
    torch.manual_seed(1)
    assert torch.allclose(scaled.sample(8), a / 10.0)  # the same generator, read back into data space
    with pytest.raises(ValueError, match="scale must be a positive number"):
        im.mlp_gan(2, scale=0.0)


# ----------------------------------------------------------------------------- MMD


def test_mmd2_unbiased_against_literal_sums():
    torch.manual_seed(0)
    x, y = torch.randn(5, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64) + 0.3
    bw = (0.5, 2.0)
    k = lambda a, b: sum(math.exp(-float(((a - b) ** 2).sum()) / (2 * s * s)) for s in bw)
    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(7) for j in range(7) if i != j) / 42
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(7)) / 35
    assert float(im.mmd2_unbiased(x, y, bw)) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_mmd2_has_mean_zero_under_the_null_and_sees_a_shift():
    g = torch.Generator().manual_seed(0)
    est = torch.stack([im.mmd2_unbiased(torch.randn(40, 2, generator=g), torch.randn(40, 2, generator=g))
                       for _ in range(200)]).double()
    assert abs(float(est.mean())) < 3 * float(est.std()) / math.sqrt(len(est))
    assert float(est.min()) < 0  # unbiased: it goes below zero
    shifted, p_value = im.mmd_permutation_test(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 0.5)
    assert shifted > 0 and p_value < 0.01


def test_permutation_test_rejects_at_its_nominal_rate_and_has_power():
    g = torch.Generator().manual_seed(1)
    trials, alpha = 200, 0.1
    p_null = np.array([im.mmd_permutation_test(torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g),
                                               permutations=99, seed=t)[1] for t in range(trials)])
    rate = float((p_null <= alpha).mean())
    assert abs(rate - alpha) < 3.5 * math.sqrt(alpha * (1 - alpha) / trials), f"rejection rate {rate} under the null"
    assert 0.35 < float((p_null <= 0.5).mean()) < 0.65  # calibrated across the range, not only at alpha
    p_alt = [im.mmd_permutation_test(torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g) + 1.0,
                                     permutations=99, seed=t)[1] for t in range(20)]
    assert np.mean(np.array(p_alt) <= alpha) > 0.8


# ----------------------------------------------------------------------------- EBM


def _small_ebm(grid=40):
    config.seed_everything(0)
    return im.GridEBM(data.true_distribution("moons").extent, hidden=32, layers=2, grid=grid)


def test_ebm_grid_density_integrates_to_one_and_is_constant_per_cell():
    ebm = _small_ebm()
    x0, x1, y0, y1 = ebm.extent
    k = 4 * ebm.grid  # four sub-cells per cell side: a finer midpoint sum of the same function
    cx = x0 + (np.arange(k) + 0.5) * (x1 - x0) / k
    cy = y0 + (np.arange(k) + 0.5) * (y1 - y0) / k
    pts = torch.tensor(np.stack(np.meshgrid(cx, cy, indexing="ij"), -1).reshape(-1, 2), dtype=torch.float32)
    with torch.no_grad():
        mass = float(ebm.log_prob(pts).double().exp().sum()) * (x1 - x0) * (y1 - y0) / k**2
        assert mass == pytest.approx(1.0, abs=1e-5)
        outside = ebm.log_prob(torch.tensor([[x1 + 0.1, 0.0], [0.0, y0 - 1.0]]))
        assert torch.isinf(outside).all() and (outside < 0).all()


def _independent_log_prob(ebm):
    """-E(centre of x's cell) - log Z with the cell found and Z summed by numpy, one loop over cells."""
    x0, x1, y0, y1 = ebm.extent
    hx, hy = (x1 - x0) / ebm.grid, (y1 - y0) / ebm.grid

    def log_prob(x):
        with torch.no_grad():
            centres = [(x0 + (i + 0.5) * hx, y0 + (j + 0.5) * hy) for i in range(ebm.grid) for j in range(ebm.grid)]
            e = ebm.energy(torch.tensor(centres)).double().numpy()
            log_z = np.log(np.exp(-e - (-e).max()).sum()) + (-e).max() + np.log(hx * hy)
            xn = x.double().numpy()
            c = np.stack([x0 + (np.floor((xn[:, 0] - x0) / hx) + 0.5) * hx,
                          y0 + (np.floor((xn[:, 1] - y0) / hy) + 0.5) * hy], 1)
            return torch.tensor(-ebm.energy(torch.tensor(c, dtype=torch.float32)).double().numpy() - log_z)

    return log_prob


def test_ebm_meets_the_likelihood_contract():
    ebm = _small_ebm()
    x = torch.as_tensor(data.load("moons", "test")[:64])
    check_likelihood_model(ebm, x, log_prob=_independent_log_prob(ebm), tol=1e-4)


def test_ebm_nll_is_at_or_above_the_true_entropy():
    """Trained briefly by exact maximum likelihood on a coarse grid, the exact cross-entropy
    H(p, q) = -sum_cells P(cell) log q(cell), with the true cell masses, stays above H(p)."""
    ebm = _small_ebm(grid=30)
    x = data.load("moons")
    fit(ebm, x, epochs=1, lr=3e-3, batch_size=256, seed=0, quick=True)
    dist = data.true_distribution("moons")
    x0, x1, y0, y1 = ebm.extent
    k = 6 * ebm.grid
    cx, cy = x0 + (np.arange(k) + 0.5) * (x1 - x0) / k, y0 + (np.arange(k) + 0.5) * (y1 - y0) / k
    pts = np.stack(np.meshgrid(cx, cy, indexing="ij"), -1).reshape(-1, 2)
    p = np.exp(dist.log_prob(pts)) * (x1 - x0) * (y1 - y0) / k**2  # true mass of each sub-cell
    with torch.no_grad():
        lq = ebm.log_prob(torch.tensor(pts, dtype=torch.float32)).double().numpy()
    cross = float(-(p * lq).sum() / p.sum()) / 2
    assert p.sum() == pytest.approx(1.0, abs=1e-4)  # the box holds the data's mass
    assert cross >= data.info("moons").entropy
    with torch.no_grad():  # the test-set NLL estimates the same cross-entropy
        test_nll = float(ebm.loss(torch.as_tensor(data.load("moons", "test"))))
    assert cross == pytest.approx(test_nll, abs=0.1)


@pytest.mark.parametrize("step", [im.cd_step, im.dsm_step])
def test_ebm_steps_train_through_fit(step):
    ebm = _small_ebm()
    hist = fit(ebm, data.load("moons"), epochs=1, lr=1e-3, batch_size=64, seed=0, step=step, quick=True)
    assert hist.iterations == config.QUICK_MAX_ITERS_PER_EPOCH and np.isfinite(hist.train_losses).all()
    if step is im.cd_step:
        assert ebm.chains.shape == (8192, 2)
        lo = torch.tensor(ebm.extent[0::2])
        assert (ebm.chains >= lo).all()


def test_dsm_loss_is_minimised_by_the_true_score_of_a_gaussian():
    """Data N(0, I): the noisy data is N(0, (1 + s^2) I), whose energy |x|^2 / (2 (1 + s^2)) minimises
    the denoising loss among quadratic energies |x|^2 / (2 v)."""
    torch.manual_seed(0)
    x, s = torch.randn(20_000, 2), 0.3
    e = torch.randn_like(x)
    noisy = x + s * e

    def dsm(v):  # grad E = x~ / v
        return float(0.5 * (e - s * noisy / v).pow(2).sum(1).mean())

    vs = np.linspace(0.6, 1.6, 41)
    best = vs[int(np.argmin([dsm(v) for v in vs]))]
    assert best == pytest.approx(1 + s * s, abs=0.05)


# ----------------------------------------------------------------------------- GANs through fit


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "wgan-gp", "hinge"])
def test_gan_trains_through_fit_with_each_loss(loss):
    config.seed_everything(0)
    model = im.mlp_gan(2, loss=loss, hidden=32, layers=2, pack=2 if loss == "nonsaturating" else 1)
    hist = fit(model, data.load("gaussians_8_narrow"), epochs=1, step=im.gan_step, optimizer=im.gan_optimizer(),
               lr=1e-3, batch_size=64, seed=0, quick=True)
    assert hist.iterations == config.QUICK_MAX_ITERS_PER_EPOCH and np.isfinite(hist.train_losses).all()
    assert "g_loss" in hist.train_extra and ("grad_norm" in hist.train_extra) == (loss == "wgan-gp")
    s = model.sample(10)
    assert s.shape == (10, 2) and s.dtype == torch.float32 and s.device.type == "cpu"


def test_packing_puts_consecutive_examples_side_by_side():
    x = torch.arange(6 * 2 * 3 * 3, dtype=torch.float32).reshape(6, 2, 3, 3)
    packed = im.pack_batch(x, 3)
    assert packed.shape == (2, 6, 3, 3)
    assert torch.equal(packed[1, 2:4], x[4])
    with pytest.raises(ValueError, match="packs of 4"):
        im.pack_batch(x, 4)


def test_dcgan_samples_are_digits_and_the_discriminator_sees_images():
    config.seed_everything(0)
    model = im.dcgan("digits", width=8)
    s = model.sample(5)
    assert s.shape == (5, 8, 8, 1) and s.dtype == torch.uint8 and int(s.max()) <= 16
    x = torch.as_tensor(data.load("digits")[:4])
    assert model.discriminate(model.encode(x)).shape == (4,)
    assert torch.equal(model.decode(model.encode(x)), x)  # levels survive the round trip
    hist = fit(model, data.load("digits"), epochs=1, step=im.gan_step, optimizer=im.gan_optimizer(), lr=2e-4,
               batch_size=32, seed=0, quick=True)
    assert np.isfinite(hist.train_losses).all()


def test_generator_gradient_saturates_under_minimax_when_d_rejects_the_fakes():
    """A discriminator that confidently rejects the generator's samples (a large negative logit
    everywhere): the minimax generator gradient scales with D(G(z)), the non-saturating one does not."""
    config.seed_everything(0)
    model = im.mlp_gan(1, loss="minimax", hidden=16, layers=2)
    last = model.discriminator[-1]
    with torch.no_grad():
        last.bias.fill_(-8.0)  # D(G(z)) ~ sigmoid(-8) ~ 3e-4
    minimax = im.generator_grad_norm(model, 256, loss="minimax")
    nonsat = im.generator_grad_norm(model, 256, loss="nonsaturating")
    assert nonsat > 100 * minimax
