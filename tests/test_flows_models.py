"""Flow models: the mathematics, checked by independent computations.

- every bijector: inverse(forward(x)) == x and the reported log-determinant equals
  log |det| of the autograd Jacobian, with random (non-identity) parameters, in float64;
- whole 2D models: the density integrates to 1 on a fine grid;
- discrete data: the reported nats/dim is the bound on the discrete NLL, checked against
  probabilities integrated cell by cell (equal where the density is constant within cells);
- every model passes the shared likelihood contract (tests/likelihood_contract.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from likelihood_contract import check_likelihood_model

from deepul_helpers.models import flows as fl


def _randomize(module: torch.nn.Module, std: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Random parameters (the zero-initialised last layers make new couplings the identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
        for m in module.modules():
            if isinstance(m, fl.ActNorm):
                m.initialized.fill_(True)
    return module


def _conditional(coupling, context_shape):
    """Wraps a conditional coupling with a fixed random context as a plain bijector."""
    context = torch.randn(context_shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    class Fixed(fl.Bijector):
        def __init__(self):
            super().__init__()
            self.inner = coupling

        def forward(self, x):
            return self.inner(x, context.expand(x.shape[0], *context.shape[1:]))

        def inverse(self, z):
            return self.inner.inverse(z, context.expand(z.shape[0], *context.shape[1:]))

    return Fixed()


def _inner_vec(x):  # values inside (0, 1) for the logit
    return torch.sigmoid(x)


# name -> (builder, one example's shape, input transform)
BIJECTORS = {
    "logit": (lambda: fl.Logit(0.05), (3,), _inner_vec),
    "sigmoid": (lambda: fl.Sigmoid(), (3,), None),
    "reverse": (lambda: fl.Reverse(), (4,), None),
    "reshape": (lambda: fl.Reshape((2, 2, 2), (8,)), (2, 2, 2), None),
    "elementwise_affine_image": (lambda: fl.ElementwiseAffine(2, image=True), (2, 3, 3), None),
    "mixture_cdf_logistic": (lambda: fl.MixtureCDF(2, 4, "logistic"), (2,), None),
    "mixture_cdf_gaussian": (lambda: fl.MixtureCDF(2, 4, "gaussian"), (2,), None),
    "autoregressive_cdf_2d": (lambda: fl.AutoregressiveCDF2d(4, "logistic", 16), (2,), None),
    "spline_coupling": (lambda: fl.SplineCoupling(fl.alternating_mask(3, 1), 6, 16, bound=2.0), (3,), None),
    "maf_layer": (lambda: fl.MAFLayer(4, 16), (4,), None),
    "iaf_layer": (lambda: fl.IAFLayer(4, 16), (4,), None),
    "coupling_vector": (lambda: fl.AffineCoupling(fl.alternating_mask(3), fl.mlp(3, 6, 16), 3), (3,), None),
    "coupling_checkerboard": (
        lambda: fl.AffineCoupling(fl.checkerboard_mask(4, 4, 1), fl.conv_net(2, 4, 8, 1), 2), (2, 4, 4), None),
    "coupling_channel": (
        lambda: fl.AffineCoupling(fl.channel_mask(4), fl.conv_net(4, 8, 8, 1), 4), (4, 2, 2), None),
    "coupling_conditional": (
        lambda: _conditional(fl.AffineCoupling(fl.alternating_mask(2), fl.mlp(4, 4, 16), 2), (1, 2)),
        (2,), None),
    "actnorm_vector": (lambda: fl.ActNorm(3), (3,), None),
    "actnorm_image": (lambda: fl.ActNorm(2), (2, 3, 3), None),
    "conv1x1_vector": (lambda: fl.InvertibleConv1x1(3, seed=1), (3,), None),
    "conv1x1_image": (lambda: fl.InvertibleConv1x1(3, seed=2), (3, 2, 2), None),
    "squeeze": (lambda: fl.Squeeze(), (1, 4, 4), None),
    "unsqueeze": (lambda: fl.Unsqueeze(), (4, 2, 2), None),
    "factor_out": (lambda: fl.FactorOut(fl.ActNorm(2), 1), (3, 2, 2), None),
    "realnvp_points": (lambda: fl.RealNVP(2, 4, 16, glow=True).bijector, (2,), None),
    "realnvp_multiscale": (lambda: fl.multiscale_bijector(1, 4, 4, 2, 8, 1, glow=True), (1, 4, 4), None),
    "maf_stack": (lambda: fl.MAF(3, 2, 16).bijector, (3,), None),
    "iaf_stack_image": (lambda: fl.IAF((2, 2, 1), 2, 16).bijector, (1, 2, 2), None),
}


@pytest.mark.parametrize("name", sorted(BIJECTORS))
def test_bijector_inverse_and_logdet_match_autograd_jacobian(name):
    build, shape, transform = BIJECTORS[name]
    torch.manual_seed(0)
    bij = _randomize(build()).double()
    x = torch.randn(2, *shape, dtype=torch.float64)
    x = transform(x) if transform else x

    z, logdet = bij(x)
    assert logdet.shape == (2,)
    if z.shape == x.shape and name not in ("reverse",):
        assert not torch.allclose(z, x, atol=1e-3), "parameters should make the bijector differ from identity"

    x_back, logdet_inv = bij.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-5, rtol=1e-6)

    for b in range(x.shape[0]):  # one example at a time: the Jacobian of its own map
        xb = x[b : b + 1]
        jac = torch.autograd.functional.jacobian(lambda v: bij(v)[0].reshape(-1), xb, vectorize=True)
        jac = jac.reshape(xb.numel(), -1)
        expected = torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(logdet[b], expected, atol=1e-6, rtol=1e-6)


def test_made_conditioner_is_autoregressive_by_gradients():
    made = _randomize(fl.MADEConditioner(5, 16, 2)).double()
    x = torch.randn(1, 5, dtype=torch.float64)
    shift_j = torch.autograd.functional.jacobian(lambda v: made(v)[0], x)[0, :, 0, :]  # (D out, D in)
    scale_j = torch.autograd.functional.jacobian(lambda v: made(v)[1], x)[0, :, 0, :]
    for j in (shift_j, scale_j):
        assert torch.all(torch.triu(j) == 0), "output i must not depend on x_i or later inputs"
        assert torch.all(torch.tril(j, -1)[1:].abs().sum(1) > 0), "output i should depend on x_<i"


def test_actnorm_data_dependent_init_standardises_first_batch():
    x = torch.randn(64, 3, 4, 4) * torch.tensor([2.0, 0.5, 3.0])[None, :, None, None] + 5
    z, _ = fl.ActNorm(3)(x)
    flat = z.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.std(1), torch.ones(3), atol=1e-3, rtol=0)


def test_variational_dequantization_log_q_matches_jacobian():
    deq = _randomize(fl.VariationalDequantization((2, 2, 1), n_couplings=2, hidden=8)).double()
    x = torch.randint(0, 4, (1, 1, 2, 2)).double()
    eps = torch.randn(1, 1, 2, 2, dtype=torch.float64)
    u, log_q = deq.transform(eps, x, levels=4)
    assert torch.all((u > 0) & (u < 1))
    jac = torch.autograd.functional.jacobian(lambda e: deq.transform(e, x, 4)[0].reshape(-1), eps).reshape(4, 4)
    log_normal = (-0.5 * eps**2 - 0.5 * math.log(2 * math.pi)).sum()
    torch.testing.assert_close(log_q[0], log_normal - torch.linalg.slogdet(jac)[1], atol=1e-8, rtol=1e-8)


def _grid(lim=8.0, n=320):
    t = torch.linspace(-lim, lim, n + 1, dtype=torch.float64)
    mid = (t[1:] + t[:-1]) / 2
    xx, yy = torch.meshgrid(mid, mid, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1), (2 * lim / n) ** 2


@pytest.mark.parametrize("name", ["realnvp", "realnvp_glow", "maf", "iaf", "cdf2d_logistic", "cdf2d_gaussian",
                                  "spline"])
def test_2d_model_density_integrates_to_one(name):
    build = {
        "realnvp": lambda: fl.RealNVP(2, 4, 16),
        "realnvp_glow": lambda: fl.RealNVP(2, 4, 16, glow=True),
        "maf": lambda: fl.MAF(2, 3, 16),
        "iaf": lambda: fl.IAF(2, 3, 16),
        "cdf2d_logistic": lambda: fl.CDFFlow2d(6, "logistic", 16),
        "cdf2d_gaussian": lambda: fl.CDFFlow2d(6, "gaussian", 16),
        "spline": lambda: fl.SplineFlow(2, 2, 8, 16, bound=3.0),
    }[name]
    model = _randomize(build(), std=0.2).double()
    points, cell = _grid()
    with torch.no_grad():
        density = torch.cat([model.log_prob(p).exp() for p in points.split(40000)])
    assert abs(float(density.sum() * cell) - 1.0) < 0.01


def test_1d_cdf_flow_density_integrates_to_one():
    model = _randomize(fl.CDFFlow1d(5), std=0.2).double()
    t = torch.linspace(-30, 30, 60001, dtype=torch.float64)
    with torch.no_grad():
        density = model.log_prob((t[1:] + t[:-1]) / 2).exp()
    assert abs(float(density.sum() * 60 / 60000) - 1.0) < 0.01


def test_constant_density_within_cells_reports_exact_discrete_nll():
    """Identity flow, logistic base, logit pre-processing: the density of y = (x + u) / L is the
    constant (1 - 2 alpha) per dimension on [0, 1]^D, so the discrete probability of every x is
    ((1 - 2 alpha) / L)^D exactly, and the bound must equal it (for any noise draw)."""
    levels, alpha = 17, 0.05
    model = fl.Flow(fl.FlowSequence([]), (4, 4, 1), base="logistic", levels=levels, logit_alpha=alpha)
    x = torch.randint(0, levels, (32, 4, 4, 1), dtype=torch.uint8)
    exact = math.log(levels) - math.log(1 - 2 * alpha)
    assert float(model.loss(x)) == pytest.approx(exact, abs=1e-5)
    assert float(-model.log_prob_iw(x, k=4).mean() / 16) == pytest.approx(exact, abs=1e-5)


def _discrete_model_and_exact_probs(levels, dequantization):
    """A random 2D RealNVP on discrete points and, independently, P(x) = integral over each cell of
    the density of v = x + u, from the same bijector used as a continuous flow on y = v / L."""
    bij = _randomize(fl.FlowSequence([fl.Logit(0.05), fl.RealNVP(2, 4, 16).bijector]), std=0.2, seed=3)
    continuous = fl.Flow(bij, (2,)).double()
    model = fl.Flow(bij.layers[1], (2,), levels=levels, dequantization=dequantization).double()
    n = 40  # midpoints per cell and axis
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    uu = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)  # (n*n, 2) in the unit cell
    cells = torch.stack(torch.meshgrid(torch.arange(levels), torch.arange(levels), indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():  # all cells in one pass: (cells * n * n, 2) points
        v = (cells.double()[:, None, :] + uu[None]).reshape(-1, 2)
        probs = (continuous.log_prob(v / levels).exp() / levels**2).view(len(cells), -1).mean(1)
    return model, cells, probs


def _per_cell(values, n_cells):  # (n_cells * n,) -> mean and standard error per cell
    v = values.view(n_cells, -1)
    return v.mean(1), v.std(1) / math.sqrt(v.shape[1])


def test_uniform_dequantization_bound_matches_cell_integrals_and_is_above_exact_nll():
    levels, n, k = 5, 2000, 32
    model, cells, probs = _discrete_model_and_exact_probs(levels, "uniform")
    assert float(probs.sum()) < 1.0 + 1e-6  # mass outside [0, L]^2 is lost, never created
    exact_nll = -torch.log(probs) / 2  # nats/dim per cell
    m = len(cells)
    torch.manual_seed(0)
    with torch.no_grad():
        plain, se_plain = _per_cell(-model.log_prob(cells.repeat_interleave(n, 0)) / 2, m)  # one-sample bounds
        iw, se_iw = _per_cell(-model.log_prob_iw(cells.repeat_interleave(128, 0), k=k) / 2, m)  # k-sample
        reported = torch.stack([model.loss(c.repeat(n, 1)) for c in cells])  # the loss the model reports
    # the reported loss is the same quantity as the mean one-sample bound
    assert torch.all((reported - plain).abs() <= 6 * se_plain)
    # both are upper bounds on the exact discrete NLL (up to Monte Carlo error) ...
    assert torch.all(plain >= exact_nll - 4 * se_plain)
    assert torch.all(iw >= exact_nll - 4 * se_iw)
    # ... the importance-weighted one is the tighter of the two ...
    assert torch.all(iw <= plain + 4 * se_plain)
    # ... and there is a real Jensen gap where the density is far from flat within a cell
    assert float((plain - exact_nll).max()) > 0.5


def test_variational_dequantization_bound_is_above_exact_nll():
    levels, n = 4, 2000
    deq = _randomize(fl.VariationalDequantization((2,), n_couplings=2, hidden=16), std=0.2, seed=5)
    model, cells, probs = _discrete_model_and_exact_probs(levels, deq)
    exact_nll = -torch.log(probs) / 2
    torch.manual_seed(0)
    with torch.no_grad():
        plain, se = _per_cell(-model.log_prob(cells.repeat_interleave(n, 0)) / 2, len(cells))
        reported = torch.stack([model.loss(c.repeat(n, 1)) for c in cells])
    assert torch.all(plain >= exact_nll - 4 * se)
    assert torch.all((reported - plain).abs() <= 6 * se)


@pytest.mark.parametrize("name", ["cdf1d", "cdf2d", "maf", "iaf", "realnvp", "spline", "realnvp_image",
                                  "realnvp_image_var"])
def test_discrete_models_sample_and_round_trip_in_data_space(name):
    build, data = {
        "cdf1d": (lambda: fl.CDFFlow1d(4, levels=20), torch.randint(0, 20, (8,))),
        "cdf2d": (lambda: fl.CDFFlow2d(4, levels=25), torch.randint(0, 25, (8, 2))),
        "maf": (lambda: fl.MAF((4, 4, 1), 2, 16, levels=17), torch.randint(0, 17, (8, 4, 4, 1), dtype=torch.uint8)),
        "iaf": (lambda: fl.IAF(2, 2, 16, levels=25), torch.randint(0, 25, (8, 2))),
        "realnvp": (lambda: fl.RealNVP(2, 2, 16, levels=25), torch.randint(0, 25, (8, 2))),
        "spline": (lambda: fl.SplineFlow(2, 2, 8, 16, levels=25), torch.randint(0, 25, (8, 2))),
        "realnvp_image": (lambda: fl.RealNVPImage((4, 4, 3), 4, channels=8, n_blocks=1, glow=True),
                          torch.randint(0, 4, (8, 4, 4, 3), dtype=torch.uint8)),
        "realnvp_image_var": (lambda: fl.RealNVPImage((4, 4, 1), 2, channels=8, n_blocks=1,
                                                      dequantization="variational"),
                              torch.randint(0, 2, (8, 4, 4, 1), dtype=torch.uint8)),
    }[name]
    model = _randomize(build(), std=0.1)
    loss = model.loss(data)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    s = model.sample(5)
    assert s.shape == (5, *data.shape[1:]) and s.dtype == data.dtype and s.device.type == "cpu"
    assert int(s.min()) >= 0 and int(s.max()) < model.levels
    if name not in ("cdf1d", "cdf2d"):  # bisection inverses are accurate to ~1e-6, not exact at edges
        assert torch.equal(model.decode(model.encode(data)), data)
    layers = model.forward_layers(data)
    assert len(layers) >= 2


def _cells(levels, shape):
    """Every example of a tiny discrete data set of one example's ``shape``, as a batch."""
    grids = torch.meshgrid(*[torch.arange(levels)] * math.prod(shape), indexing="ij")
    return torch.stack(grids, -1).reshape(-1, *shape)


# name -> (model, a batch in data format, levels, support of a tiny discrete set or None)
CONTRACT = {
    "realnvp": (lambda: fl.RealNVP(2, 4, 16), lambda: torch.randn(16, 2), None),
    "maf": (lambda: fl.MAF(2, 3, 16), lambda: torch.randn(16, 2), None),
    "iaf": (lambda: fl.IAF(2, 3, 16), lambda: torch.randn(16, 2), None),
    "cdf1d": (lambda: fl.CDFFlow1d(5), lambda: torch.randn(16), None),
    "cdf2d": (lambda: fl.CDFFlow2d(6, "gaussian", 16), lambda: torch.randn(16, 2), None),
    "spline": (lambda: fl.SplineFlow(2, 2, 8, 16, bound=3.0), lambda: torch.randn(16, 2), None),
    "realnvp_discrete": (lambda: fl.RealNVP(2, 2, 16, levels=4), lambda: _cells(4, (2,)), 4),
    "cdf1d_discrete": (lambda: fl.CDFFlow1d(4, levels=6), lambda: torch.arange(6), 6),
    "maf_image": (lambda: fl.MAF((2, 2, 1), 2, 16, levels=2), lambda: _cells(2, (2, 2, 1)).to(torch.uint8), 2),
    "realnvp_image_variational": (
        lambda: fl.RealNVPImage((4, 4, 1), 2, channels=8, n_blocks=1, dequantization="variational"),
        lambda: torch.randint(0, 2, (8, 4, 4, 1), dtype=torch.uint8), 2),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_likelihood_contract(name):
    build, batch, levels = CONTRACT[name]
    model, x = _randomize(build(), std=0.2), batch()
    if levels is None:  # continuous data: loss is the exact NLL
        check_likelihood_model(model, x)
        return
    # discrete data: loss is the dequantization bound, above the importance-weighted one (k = 64);
    # a set small enough to enumerate gets a bound probability for every example
    support = x if len(x) <= 64 and name != "realnvp_image_variational" else None
    found = check_likelihood_model(model, x, levels=levels, bound=True, draws=8, support=support,
                                   tighter=lambda b: model.log_prob_iw(b, k=64))
    assert found["bound_gap"] > -0.02 and found.get("support_total", 0.0) <= 1.02


def test_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="expected a batch of shape"):
        fl.RealNVP(2).loss(torch.randn(4, 3))
    with pytest.raises(ValueError, match="dequantization"):
        fl.RealNVPImage((4, 4, 1), 2, dequantization="gaussian")


def test_maf_learns_a_gaussian_to_its_closed_form_entropy():
    """Trained briefly on a correlated Gaussian, the test NLL approaches the exact entropy."""
    from deepul_helpers.train import fit

    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    rng = np.random.default_rng(0)
    data = rng.multivariate_normal([1.0, -2.0], cov, size=6000).astype(np.float32)
    entropy = 0.5 * math.log((2 * math.pi * math.e) ** 2 * np.linalg.det(cov)) / 2  # nats/dim
    model = fl.MAF(2, 2, 32)
    hist = fit(model, data[:5000], data[5000:], epochs=3, lr=5e-3, batch_size=128, device="cpu", quick=False,
               progress=False)
    assert hist.test_losses[-1] < hist.test_losses[0]
    assert abs(hist.test_losses[-1] - entropy) < 0.05
