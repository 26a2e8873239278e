"""Latent-variable models: the bounds against the exact log-likelihood of the linear-Gaussian model,
the KL and the reparameterised gradient against independent computations, posterior collapse on the
two Gaussians, the VQ-VAE's straight-through estimator and bound, wake-sleep against enumeration,
and every model through the shared likelihood contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from likelihood_contract import check_likelihood_model

from deepul_helpers import config, data
from deepul_helpers.models.autoregressive import PixelCNN
from deepul_helpers.models.latent import (
    IAFVAE,
    VAE,
    VQVAE,
    BetaVAE,
    HelmholtzMachine,
    LinearGaussianVAE,
    PixelVAE,
    factor_r2,
    gaussian_kl,
    interpolate,
    interpolation_grid,
    objective_step,
    reparameterize,
    traverse,
    wake_sleep_step,
)
from deepul_helpers.models.latent._common import log_normal, log_standard_normal
from deepul_helpers.train import fit


def _pca_model(seed=0, dim=4, latent=2):
    torch.manual_seed(seed)
    m = LinearGaussianVAE(dim, latent)
    with torch.no_grad():
        m.b.copy_(torch.randn(dim))
        m.log_s.fill_(-0.7)
    x = m.sample(64).double()
    return m, x


# ----------------------------------------------------------------------------- bounds on pPCA


def test_elbo_le_iwae_k_le_iwae_kprime_le_exact_log_likelihood():
    m, x = _pca_model()
    with torch.no_grad():
        exact = float(m.exact_log_prob(x).mean())
        elbo = float(m.elbo(x).mean())  # closed form: no Monte Carlo error
        torch.manual_seed(1)
        est = {k: torch.stack([m.log_prob_iw(x, k).mean() for _ in range(200)]).numpy() for k in (1, 10, 100)}
    mean = {k: v.mean() for k, v in est.items()}
    se = {k: v.std(ddof=1) / math.sqrt(len(v)) for k, v in est.items()}
    assert abs(mean[1] - elbo) < 4 * se[1]  # IWAE_1 is the ELBO's one-draw estimate
    assert elbo + 4 * se[10] < mean[10] < mean[100] - 4 * (se[10] + se[100])
    assert mean[100] < exact  # at this k the bound is still visibly below the exact value
    assert exact - mean[100] > 4 * se[100]
    assert exact - elbo > 0.5  # a random encoder: the ELBO's gap is large


def test_elbo_equals_log_likelihood_at_the_exact_posterior():
    m, x = _pca_model(seed=3)
    m.set_exact_posterior()
    with torch.no_grad():
        exact = m.exact_log_prob(x)
        torch.testing.assert_close(m.elbo(x), exact, rtol=0, atol=1e-10)
        # every importance weight equals p(x): log p(x, z) - log q(z|x) = log p(x) for each draw
        lw = m.log_weights(x, 5)
        torch.testing.assert_close(lw, exact.expand(5, -1), rtol=0, atol=1e-10)


def test_ppca_maximum_likelihood_is_the_gaussian_fit_on_the_rotated_data():
    x = torch.from_numpy(data.load("gaussian_rotated"))
    m = LinearGaussianVAE(2, 1)
    m.set_maximum_likelihood(x)
    cov = np.cov(x.double().numpy().T, bias=True)
    # 1 latent in 2D: W W^T + s^2 I is the sample covariance itself, so the NLL is that Gaussian's
    closed = 0.5 * (np.log(np.linalg.det(2 * np.pi * np.e * cov))) / 2
    with torch.no_grad():
        assert float(-m.exact_log_prob(x).mean() / 2) == pytest.approx(closed, rel=1e-9)
        assert float(m.loss(x)) == pytest.approx(closed, rel=1e-9)  # tight ELBO at the exact posterior
    assert closed == pytest.approx(data.info("gaussian_rotated").entropy, rel=5e-3)


# ----------------------------------------------------------------------------- KL and gradients


def test_analytic_kl_matches_monte_carlo_within_its_standard_error():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(6, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(6, 3, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    z = reparameterize(mu, logvar, 100_000)  # (N, 6, 3)
    terms = log_normal(z, mu, logvar) - log_standard_normal(z)  # (N, 6) log q - log p
    mc, se = terms.mean(0), terms.std(0) / math.sqrt(len(terms))
    analytic = gaussian_kl(mu, logvar).sum(-1)
    assert torch.all((mc - analytic).abs() < 4 * se)
    assert torch.all(gaussian_kl(torch.zeros(3), torch.zeros(3)) == 0)


def test_reparameterised_gradient_matches_finite_difference():
    m, x = _pca_model(seed=5)

    def objective():  # the mean IWAE_3 estimate with fixed noise (common random numbers)
        torch.manual_seed(11)
        return m.log_prob_iw(x, 3).mean()

    m.zero_grad()
    objective().backward()
    for p in (m.A, m.c, m.L_raw, m.W):
        idx = (0,) * p.dim()
        h = 1e-6
        with torch.no_grad():
            p[idx] += h
            up = float(objective())
            p[idx] -= 2 * h
            down = float(objective())
            p[idx] += h
        assert float(p.grad[idx]) == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-7)


def test_reparameterisation_gradient_of_a_known_expectation():
    # E[z^2] = mu^2 + sigma^2: d/dmu = 2 mu, d/dlogvar = sigma^2; the pathwise estimate is unbiased
    mu = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    logvar = torch.tensor([-0.4], dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    (reparameterize(mu, logvar, 400_000) ** 2).mean().backward()
    assert float(mu.grad) == pytest.approx(1.4, abs=0.01)
    assert float(logvar.grad) == pytest.approx(math.exp(-0.4), abs=0.01)


# ----------------------------------------------------------------------------- posterior collapse


@pytest.mark.parametrize("name", ["gaussian_aligned", "gaussian_rotated"])
def test_2d_vae_bound_near_the_entropy_and_collapse_only_on_aligned_data(name):
    config.seed_everything(0)
    # a short KL warm-up: without it, at this small budget the rotated VAE can stall with an unused latent
    model = VAE((2,), "gaussian", latent_dim=2, hidden=64, warmup_iters=200)
    fit(model, data.load(name), epochs=8, lr=2e-3, batch_size=128, seed=0, step=objective_step,
        quick=False, progress=False)
    model.eval()
    x = torch.from_numpy(data.load(name, "test"))
    with torch.no_grad():
        torch.manual_seed(0)
        t = model.elbo_terms(x)
    nelbo_per_point = float(-t["elbo"].mean())
    kl = float(t["kl_per_dim"].sum(1).mean())
    assert nelbo_per_point == pytest.approx(2 * data.info(name).entropy, rel=0.01)
    if name == "gaussian_aligned":
        assert kl < 0.05  # the diagonal decoder models it alone: the latent is unused
    else:
        assert kl > 1.0  # the correlation can only come through z


# ----------------------------------------------------------------------------- VQ-VAE


def test_straight_through_gradient_is_the_identity():
    torch.manual_seed(0)
    vq = VQVAE((8, 8, 1), 17, n_codes=8, code_dim=4)
    z_e = torch.randn(3, 4, 4, 4, requires_grad=True)
    z_q, _ = vq.quantize(z_e)
    out = vq.straight_through(z_e, z_q)
    torch.testing.assert_close(out, z_q)  # the value is the quantised one
    g = torch.randn_like(out)
    (jac_vec,) = torch.autograd.grad(out, z_e, g)
    torch.testing.assert_close(jac_vec, g, rtol=0, atol=0)


@pytest.fixture(scope="module")
def trained_vqvae():
    """A VQ-VAE on digits (3 epochs) with a PixelCNN prior over its 4x4 code grid (2 epochs)."""
    config.seed_everything(0)
    vq = VQVAE((8, 8, 1), 17, n_codes=16, code_dim=8, hidden=32)
    x = data.load("digits")
    fit(vq, x, epochs=3, lr=2e-3, batch_size=64, seed=0, step=objective_step, quick=False, progress=False)
    vq.eval()
    codes = vq.codes(torch.from_numpy(x)).numpy()
    config.seed_everything(0)
    prior = PixelCNN(vq.grid + (1,), vq.n_codes, n_filters=16, n_layers=2, kernel_size=3)
    fit(prior, codes, epochs=2, lr=3e-3, batch_size=64, seed=0, quick=False, progress=False)
    vq.prior = prior.eval()
    return vq


def test_vqvae_codebook_usage_and_bound_against_its_exact_terms(trained_vqvae):
    vq = trained_vqvae
    x = torch.from_numpy(data.load("digits", "test")[:64])
    use = vq.usage(torch.from_numpy(data.load("digits")))
    assert use["used"] >= 0.75 and use["perplexity"] > 4  # data-initialised EMA codebook: no collapse
    with torch.no_grad():
        codes = vq.codes(x)  # (B, 4, 4, 1)
        # decoder term: a plain gather of the decoder's log-softmax at the data
        logits = vq.decode_logits(vq.codebook[codes[..., 0]])  # (B, 8, 8, 1, 17)
        dec = torch.log_softmax(logits, -1).gather(-1, x.long()[..., None]).flatten(1).sum(1)
        # prior term: the chain rule in raster order, each position seeing a grid with the future blanked
        prior_lp = torch.zeros(len(x))
        flat = codes.reshape(len(x), -1)
        for i in range(flat.shape[1]):
            seen = flat.clone()
            seen[:, i:] = 0
            lp = torch.log_softmax(vq.prior.logits(seen.reshape(codes.shape)).reshape(len(x), -1, vq.n_codes), -1)
            prior_lp += lp[:, i].gather(-1, flat[:, i:i + 1])[:, 0]
        bound = float(vq.loss(x))
    dims = 64
    assert bound == pytest.approx(float(-(dec + prior_lp).mean()) / dims, rel=1e-5)
    assert bound >= float(-dec.mean()) / dims and bound >= float(-prior_lp.mean()) / dims
    assert float(-prior_lp.mean()) > 0


# ----------------------------------------------------------------------------- wake-sleep


def _cross_entropy_with_bars(model):
    """Exact H(p_bars, q) per pixel: sum over all 2^16 images of p(x) (-log q(x))."""
    p = torch.tensor(data.true_distribution("bars").probs)
    images = ((torch.arange(1 << 16)[:, None] >> torch.arange(15, -1, -1)) & 1).reshape(-1, 4, 4, 1)
    with torch.no_grad():
        lq = torch.cat([model.log_prob(images[i:i + 8192].to(torch.uint8)) for i in range(0, 1 << 16, 8192)])
    return float(-(p * lq.double()).sum() / 16), float(lq.double().exp().sum())


def test_wake_sleep_on_bars_improves_the_exact_likelihood():
    config.seed_everything(0)
    hm = HelmholtzMachine((4, 4, 1), 8)
    entropy = data.info("bars").entropy
    ce = [_cross_entropy_with_bars(hm)]
    for epoch in range(3):
        fit(hm, data.load("bars")[:2000], epochs=1, lr=0.01, batch_size=20, seed=epoch, step=wake_sleep_step,
            quick=False, progress=False)
        ce.append(_cross_entropy_with_bars(hm))
    for h, total in ce:
        assert total == pytest.approx(1.0, abs=1e-6)  # the enumeration normalises (float32)
        assert h >= entropy  # Gibbs: the model's cross-entropy never goes below the data's entropy
    assert ce[-1][0] < ce[0][0] - 0.05 and ce[-1][0] < ce[1][0]


# ----------------------------------------------------------------------------- the shared contract


def _binary_2x2():
    return ((torch.arange(16)[:, None] >> torch.arange(3, -1, -1)) & 1).reshape(16, 2, 2, 1).to(torch.uint8)


def _vae_models():
    torch.manual_seed(0)
    yield "vae_2d", VAE((2,), "gaussian"), torch.from_numpy(data.load("gaussian_rotated")[:32]), None, None
    yield "vae_bernoulli", VAE((2, 2, 1), "bernoulli", hidden=16), _binary_2x2(), 2, _binary_2x2()
    yield "vae_digits", VAE((8, 8, 1), "categorical", 17), torch.from_numpy(data.load("digits")[:16]), 17, None
    yield "beta_vae", BetaVAE((4, 4, 1), latent_dim=3), torch.from_numpy(data.load("bars")[:16]), 2, None
    yield "iaf_vae", IAFVAE((2,), latent_dim=2), torch.from_numpy(data.load("gaussian_rotated")[:32]), None, None
    yield ("pixelvae", PixelVAE((4, 4, 1), 2, latent_dim=2, n_filters=8, n_layers=2, kernel_size=3),
           torch.from_numpy(data.load("bars")[:16]), 2, None)


@pytest.mark.parametrize("name", ["vae_2d", "vae_bernoulli", "vae_digits", "beta_vae", "iaf_vae", "pixelvae"])
def test_vae_family_meets_the_likelihood_contract(name):
    _, model, x, levels, support = next(m for m in _vae_models() if m[0] == name)
    found = check_likelihood_model(model, x, levels=levels, log_prob=model.elbo, bound=True,
                                   tighter=lambda b: model.log_prob_iw(b, 256), support=support, draws=8)
    assert found["bound_gap"] > -0.02


def test_linear_gaussian_vae_meets_the_contract_with_its_exact_likelihood():
    m, _ = _pca_model()
    x = m.sample(32)
    found = check_likelihood_model(m, x, log_prob=m.elbo, bound=True, tighter=m.exact_log_prob)
    assert found["bound_gap"] > 0  # a random encoder: strictly above the exact NLL


def test_vqvae_meets_the_contract(trained_vqvae):
    vq = trained_vqvae
    x = torch.from_numpy(data.load("digits", "test")[:16])
    check_likelihood_model(vq, x, levels=17, log_prob=vq.log_prob_bound, n_samples=4)


def test_helmholtz_machine_meets_the_contract_and_normalises():
    torch.manual_seed(0)
    hm = HelmholtzMachine((2, 2, 1), 3)
    found = check_likelihood_model(hm, _binary_2x2()[[0, 3, 5, 15]], levels=2, support=_binary_2x2())
    assert found["support_total"] == pytest.approx(1.0, abs=1e-6)


def test_factor_r2_is_one_for_a_linear_factor_and_near_zero_for_noise():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2000, 3))
    r2 = factor_r2(f, {"linear": f @ [1.0, -2.0, 0.5] + 3, "noise": rng.standard_normal(2000)})
    assert r2["linear"] == pytest.approx(1.0, abs=1e-9) and abs(r2["noise"]) < 0.02


def test_traversals_and_interpolations_end_at_the_reconstructions():
    torch.manual_seed(0)
    model = BetaVAE((20, 20, 1), latent_dim=4, hidden=32).eval()
    x = torch.from_numpy(data.load("shapes", "test")[:4])
    recon = model.reconstruct(x)  # decoder mode at the posterior means
    line = interpolate(model, x[:1], x[1:2], steps=7)
    assert line.shape == (7, 20, 20, 1) and line.dtype == torch.uint8
    torch.testing.assert_close(line[[0, -1]], recon[:2])
    grid = interpolation_grid(model, x, steps=5)  # corners: top left, top right, bottom left, bottom right
    torch.testing.assert_close(grid[[0, 4, 20, 24]], recon)
    with torch.no_grad():
        mu = model.encode(x[:1])[0]
    tr = traverse(model, x[:1], values=(-1.0, float(mu[0, 2]), 1.0))
    assert tr.shape == (4, 3, 20, 20, 1)
    torch.testing.assert_close(tr[2, 1], recon[0])  # latent 2 set to its own posterior mean: the reconstruction


def test_objective_variants_and_errors():
    torch.manual_seed(0)
    x = torch.from_numpy(data.load("bars")[:32])
    plain = VAE((4, 4, 1), "bernoulli", latent_dim=4)
    out = plain.objective(x, 0)
    assert float(out["loss"].detach()) == pytest.approx(float(out["nelbo"]))  # beta = 1: the objective is the bound
    warm = VAE((4, 4, 1), "bernoulli", latent_dim=4, warmup_iters=10)
    warm.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    o0 = warm.objective(x, 0)
    assert float(o0["loss"].detach()) == pytest.approx(float(o0["recon"]), rel=1e-6)  # KL weight 0 at the start
    fb = VAE((4, 4, 1), "bernoulli", latent_dim=4, free_bits=0.5)
    fb.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    o = fb.objective(x, 0)
    assert float(o["loss"].detach()) * 16 >= float(o["recon"]) * 16 + 4 * 0.5 - 1e-5  # each dimension's KL floored
    with pytest.raises(ValueError, match="unknown likelihood"):
        VAE((2,), "poisson")
    with pytest.raises(TypeError, match="integer levels"):
        plain.loss(x.float())
    with pytest.raises(RuntimeError, match="no prior"):
        VQVAE((8, 8, 1), 17).loss(torch.from_numpy(data.load("digits")[:2]))
