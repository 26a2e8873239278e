"""Property tests of the autoregressive reference models: the mathematics, not just shapes.

- autoregressive property by gradients (output i depends on no input >= i, and on earlier ones);
- the plain PixelCNN's blind spot exists, the gated one has none;
- normalisation: exp(log p) summed over *every* possible input is 1;
- discretized logistic mixture sums to 1 for extreme parameters and matches a float64 reference;
- KV-cache logits and samples equal naive recomputation;
- samples follow the model's own likelihood (total variation on tiny cases) and have the data format;
- every model passes the shared likelihood contract (tests/likelihood_contract.py) on a tiny data set.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from likelihood_contract import check_likelihood_model

from deepul_helpers.models.autoregressive import (
    MADE,
    CharTransformer,
    DiscretizedLogisticMixture,
    GatedPixelCNN,
    Histogram,
    ImageTransformer,
    MaskedConv2d,
    PixelCNN,
    Transformer,
    WaveNet,
    discretized_logistic_mixture_log_probs,
    made_degrees,
    made_masks,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def all_inputs(shape, levels, dtype=torch.long):
    """Every possible example of ``shape`` with values 0..levels-1, as a batch."""
    n = int(np.prod(shape))
    grid = torch.tensor(list(itertools.product(range(levels), repeat=n)), dtype=torch.long)
    return grid.reshape(-1, *shape).to(dtype)


def log_prob_via_loss(model, x):
    """Per-example log p(x) from the public ``loss`` (nats/dim times the number of dims)."""
    dims = int(np.prod(x.shape[1:])) if x.dim() > 1 else 1
    with torch.no_grad():
        return torch.stack([-model.loss(x[i:i + 1]) * dims for i in range(len(x))])


def total_variation(samples, probs_of, support):
    """TV distance between the empirical distribution of ``samples`` and the model's ``probs_of``."""
    keys = [tuple(s.reshape(-1).tolist()) for s in samples]
    counts = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    tv = 0.0
    for x, p in zip(support, probs_of):
        tv += abs(counts.get(tuple(x.reshape(-1).tolist()), 0) / len(samples) - float(p))
    return tv / 2


# ---------------------------------------------------------------- 1D: histogram, logistic mixture

def test_histogram_untrained_is_uniform_and_normalised():
    h = Histogram(20)
    x = torch.randint(20, (50,))
    assert torch.allclose(h.loss(x), torch.tensor(math.log(20)))
    with torch.no_grad():
        h.logits.normal_()
    assert torch.allclose(h.log_probs().exp().sum(), torch.tensor(1.0), atol=1e-6)
    assert torch.allclose(log_prob_via_loss(h, torch.arange(20)).exp().sum(), torch.tensor(1.0), atol=1e-5)


@pytest.mark.parametrize("levels", [2, 20, 256])
def test_logistic_mixture_sums_to_one_for_extreme_parameters(levels):
    m = 6
    cases = [
        (torch.zeros(m), torch.linspace(0, levels - 1, m), torch.zeros(m)),  # ordinary
        (torch.zeros(m), torch.full((m,), -1e4), torch.zeros(m)),  # means far below the range
        (torch.zeros(m), torch.full((m,), 1e4), torch.full((m,), -5.0)),  # far above, sharp
        (torch.zeros(m), torch.linspace(-3, levels + 3, m), torch.full((m,), -60.0)),  # tiny scales
        (torch.zeros(m), torch.linspace(0, levels, m) + 0.5, torch.full((m,), -29.0)),  # on bin edges
        (torch.zeros(m), torch.linspace(0, levels, m), torch.full((m,), 40.0)),  # huge scales
        (torch.tensor([80.0, -80.0, 0, 0, 0, 0]), torch.linspace(0, levels, m), torch.linspace(-40, 60, m)),
    ]
    values = torch.arange(levels)
    for w, mu, log_s in cases:
        w, mu, log_s = (t.clone().requires_grad_() for t in (w, mu, log_s))
        lp = discretized_logistic_mixture_log_probs(values, w, mu, log_s, levels)  # (levels,)
        assert lp.shape == (levels,)
        assert torch.isfinite(lp).all()  # tiny probabilities stay finite in log space
        assert abs(float(torch.logsumexp(lp.detach(), 0).exp()) - 1.0) < 1e-5, (mu, log_s)
        lp.sum().backward()
        for t in (w, mu, log_s):
            assert torch.isfinite(t.grad).all()


def test_logistic_mixture_matches_float64_sigmoid_differences():
    levels = 30
    g = torch.Generator().manual_seed(1)
    w, mu, log_s = torch.randn(4, generator=g), torch.rand(4, generator=g) * 30, torch.randn(4, generator=g)
    x = torch.arange(levels, dtype=torch.float64)[:, None]
    s = log_s.double().exp()
    upper = torch.sigmoid((x + 0.5 - mu.double()) / s)
    lower = torch.sigmoid((x - 0.5 - mu.double()) / s)
    upper[-1], lower[0] = 1.0, 0.0  # the edge bins take the tails
    expected = ((upper - lower) * torch.softmax(w.double(), 0)).sum(1)
    got = discretized_logistic_mixture_log_probs(torch.arange(levels), w, mu, log_s, levels).exp()
    assert torch.allclose(got.double(), expected, atol=1e-6)


def test_1d_samples_follow_the_model_probabilities():
    for model in (Histogram(8), DiscretizedLogisticMixture(8, n_components=3)):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        g = torch.Generator().manual_seed(0)
        s = model.sample(20000, generator=g)
        assert s.shape == (20000,) and s.dtype == torch.int64 and 0 <= s.min() and s.max() < 8
        freq = torch.bincount(s, minlength=8).double() / len(s)
        assert (freq - model.log_probs().exp().double().detach()).abs().sum() / 2 < 0.02


# ---------------------------------------------------------------- MADE

def test_made_masks_are_autoregressive_in_the_given_ordering():
    ordering = [3, 0, 4, 1, 2]
    for rng in (None, np.random.default_rng(0)):
        masks = made_masks(made_degrees(ordering, (7, 9), rng=rng), levels=3)
        assert [tuple(m.shape) for m in masks] == [(7, 15), (9, 7), (15, 9)]
        conn = masks[0]
        for m in masks[1:]:
            conn = (m @ conn).clamp(max=1)  # (15, 15): is there a path output <- input?
        position = {v: i for i, v in enumerate(ordering)}
        for out_var, in_var in itertools.product(range(5), range(5)):
            block = conn[out_var * 3:(out_var + 1) * 3, in_var * 3:(in_var + 1) * 3]
            if position[in_var] >= position[out_var]:
                assert block.sum() == 0
            elif rng is None:
                assert block.sum() > 0  # deterministic degrees connect everything allowed


@pytest.mark.parametrize("n_orderings", [1, 3])
def test_made_autoregressive_by_gradients(n_orderings):
    d, k = 6, 3
    made = MADE(d, k, hidden=(32, 32), n_orderings=n_orderings, seed=1, ordering=[2, 5, 0, 1, 4, 3])
    onehot = torch.nn.functional.one_hot(torch.randint(k, (16, d)), k).float().requires_grad_()
    for s in range(n_orderings):
        made.set_mask(s)
        order = made.orderings[s].tolist()
        for pos, var in enumerate(order):
            (g,) = torch.autograd.grad(made(onehot)[:, var].sum(), onehot)
            dep = g.abs().sum(dim=(0, 2))  # (D,): dependence on each input variable
            assert all(dep[v] == 0 for v in order[pos:]), (s, var)
            if pos > 0:
                assert dep[order[pos - 1]] > 0 or any(dep[v] > 0 for v in order[:pos])


@pytest.mark.parametrize("n_orderings", [1, 3])
def test_made_normalises_over_every_input(n_orderings):
    made = MADE(2, 5, hidden=(24,), n_orderings=n_orderings, seed=0).eval()  # a 5x5 grid density
    grid = all_inputs((2,), 5)
    assert abs(float(log_prob_via_loss(made, grid).exp().sum()) - 1) < 1e-5
    binary = MADE((6,), 2, hidden=(16, 16), n_orderings=n_orderings, seed=2).eval()  # 6-bit vectors
    with torch.no_grad():
        total = float(binary.log_prob(all_inputs((6,), 2)).exp().sum())
    assert abs(total - 1) < 1e-5


def test_made_ensemble_averages_probabilities_and_samples_from_it():
    made = MADE(2, 4, hidden=(16,), n_orderings=3, seed=3).eval()
    grid = all_inputs((2,), 4)
    with torch.no_grad():
        per_mask = torch.stack([made._log_prob_mask(grid, s).exp() for s in range(3)])  # (3, 16)
        ensemble = made.log_prob(grid).exp()
    assert torch.allclose(ensemble, per_mask.mean(0), atol=1e-6)  # mean of probabilities, not logits
    s = made.sample(8000, generator=torch.Generator().manual_seed(0))
    assert s.shape == (8000, 2) and s.dtype == torch.int64
    assert total_variation(s, ensemble, grid) < 0.03


def test_made_uses_the_published_masks_and_ensemble_loss_backpropagates():
    made = MADE(4, 3, hidden=(10, 12), n_orderings=3, seed=4, ordering=[1, 3, 0, 2])
    expected = made_masks(made_degrees([1, 3, 0, 2], (10, 12)), levels=3)
    assert all(torch.equal(a, b) for a, b in zip(made.masks(0), expected))
    made.eval().loss(torch.randint(3, (5, 4))).backward()  # all three mask sets in one graph
    assert all(torch.isfinite(p.grad).all() for p in made.parameters())


def test_made_training_cycles_masks():
    made = MADE(3, 2, hidden=(8,), n_orderings=3).train()
    x = torch.randint(2, (4, 3))
    used = []
    for _ in range(4):
        made.loss(x)
        used.append(made.current_mask)
    assert used == [0, 1, 2, 0]


# ---------------------------------------------------------------- PixelCNN and Gated PixelCNN

def dependence_map(model, shape, i, j, c):
    """|d logits(i, j, c) / d input| summed over batch and levels: (H, W, C)."""
    z = (torch.rand(8, *shape) * 2 - 1).requires_grad_()
    (g,) = torch.autograd.grad(model(z)[:, i, j, c].sum(), z)
    return g.abs().sum(0)


def raster_index(shape, i, j, c):
    h, w, ch = shape
    return (i * w + j) * ch + c


def check_autoregressive(model, shape, pixels):
    """Output (i, j, c) depends on no input at or after it in the model's ordering, and on some before.

    Colour-conditioned: the ordering is raster over (row, column, channel); otherwise the channels of
    a pixel are independent given the previous pixels, so the whole pixel counts as 'at or after'.
    """
    for i, j, c in pixels:
        dep = dependence_map(model, shape, i, j, c).reshape(-1)  # raster order
        me = raster_index(shape, i, j, c if model.color_channels > 1 else 0)
        assert dep[me:].abs().sum() == 0, f"output {(i, j, c)} sees itself or the future"
        assert dep[:me].sum() > 0 or me == 0


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
@pytest.mark.parametrize("color_conditioning", [True, False])
def test_pixelcnns_autoregressive_by_gradients(cls, color_conditioning):
    shape = (6, 6, 3)
    model = cls(shape, 4, n_filters=12, n_layers=3, kernel_size=3, color_conditioning=color_conditioning)
    pixels = [(0, 0, 0), (0, 0, 2), (2, 3, 0), (2, 3, 1), (2, 3, 2), (5, 5, 1)]
    check_autoregressive(model, shape, pixels)
    dep = dependence_map(model, shape, 2, 3, 2)[2, 3]  # the same pixel's R, G (B itself excluded)
    if color_conditioning:
        assert dep[0] > 0 and dep[1] > 0  # B sees R and G of its own pixel
    else:
        assert dep.sum() == 0  # channels independent given the past


def test_masked_conv_type_a_and_b_centres():
    a = MaskedConv2d("A", 3, 6, 3, color_channels=3).mask[:, :, 1, 1]  # (out, in) at the centre
    b = MaskedConv2d("B", 3, 6, 3, color_channels=3).mask[:, :, 1, 1]
    g_out, g_in = torch.arange(6)[:, None] % 3, torch.arange(3)[None, :]
    assert torch.equal(a, (g_in < g_out).float()) and torch.equal(b, (g_in <= g_out).float())
    assert MaskedConv2d("A", 1, 1, 5).mask[0, 0].tolist() == [
        [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]


def test_blind_spot_in_pixelcnn_not_in_gated_pixelcnn():
    shape, (i, j) = (9, 9, 1), (5, 4)
    plain = PixelCNN(shape, 2, n_filters=16, n_layers=4, kernel_size=3)
    gated = GatedPixelCNN(shape, 2, n_filters=16, n_layers=4, kernel_size=3)
    earlier = [(r, col) for r in range(i - 2, i) for col in range(j - 2, j + 3)] + [(i, j - 2), (i, j - 1)]
    dep_plain = dependence_map(plain, shape, i, j, 0)[..., 0]
    dep_gated = dependence_map(gated, shape, i, j, 0)[..., 0]
    # plain: (i-2, j+2) is within its receptive field, but (i-1, j+2) and (i-1, j+3) never are
    assert dep_plain[i - 2, j + 2] > 0
    assert dep_plain[i - 1, j + 2] == 0 and dep_plain[i - 1, j + 3] == 0
    # gated: every earlier pixel in the 2-row, 5-column window gets a gradient
    assert all(dep_gated[r, col] > 0 for r, col in earlier), dep_gated
    assert dep_gated[i - 1, j + 3] > 0


# ---------------------------------------------------------------- Transformer and WaveNet (sequences)

def test_transformer_and_wavenet_autoregressive_by_gradients():
    t = 12
    models = [Transformer(5, t, d_model=32, n_heads=4, n_layers=2), WaveNet(t, levels=5, n_layers=3, n_channels=8)]
    for model in models:
        e = model.embed(torch.randint(5, (4, t))).detach().requires_grad_()  # position p holds x_{p-1}
        seq_axis = 1 if isinstance(model, Transformer) else 2
        for i in (0, 1, 5, 11):
            (g,) = torch.autograd.grad(model(e)[:, i].sum(), e)
            dep = g.abs().sum(dim=tuple(a for a in range(3) if a != seq_axis))  # (T,)
            assert dep[i + 1:].sum() == 0, (type(model).__name__, i)  # no x_j, j >= i
            assert dep[i] > 0  # sees x_{i-1} (the start token when i == 0)
        if isinstance(model, WaveNet):  # and exactly its receptive field
            (g,) = torch.autograd.grad(model(e)[:, 11].sum(), e)
            dep = g.abs().sum(dim=(0, 1))
            assert model.receptive_field == 1 + 1 + 7
            assert (dep[11 - model.receptive_field + 1:] > 0).all() and dep[:11 - model.receptive_field + 1].sum() == 0


def test_wavenet_sampling_window_equals_full_logits():
    model = WaveNet(20, levels=6, n_layers=2, n_channels=8).eval()  # receptive field 5 < 20
    x = torch.randint(6, (3, 20))
    with torch.no_grad():
        full = model.logits(x)
        for t in range(20):
            assert torch.allclose(model.next_logits(x, t), full[:, t], atol=1e-5)


def test_kv_cache_logits_and_samples_equal_naive():
    model = Transformer(7, 20, d_model=32, n_heads=4, n_layers=2).eval()
    x = torch.randint(7, (3, 20))
    with torch.no_grad():
        full = model.logits(x)  # (3, 20, 7)
        cache = model.new_cache(3)
        e = model.embed(x)
        stepped = torch.cat([model(e[:, t:t + 1], cache, t) for t in range(20)], dim=1)
    assert torch.allclose(full, stepped, atol=1e-5)
    a = model.sample(6, use_cache=True, generator=torch.Generator().manual_seed(5))
    b = model.sample(6, use_cache=False, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    prompt = torch.tensor([1, 2, 3])
    a = model.sample(4, use_cache=True, prompt=prompt, generator=torch.Generator().manual_seed(6))
    b = model.sample(4, use_cache=False, prompt=prompt, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and (a[:, :3] == prompt).all()


def test_sequence_models_normalise_and_sample_their_own_distribution():
    support = all_inputs((4,), 2)
    for model in (Transformer(2, 4, d_model=16, n_heads=2, n_layers=1), WaveNet(4, levels=2, n_layers=2)):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.5 * torch.randn_like(p))  # a distribution far from uniform
        probs = log_prob_via_loss(model.eval(), support).exp()
        assert abs(float(probs.sum()) - 1) < 1e-5
        s = model.sample(6000, generator=torch.Generator().manual_seed(0))
        assert total_variation(s, probs, support) < 0.03


def _far_from_uniform(model, scale=0.5):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


# name -> (model, data shape, dtype, levels, independent log p per example or None for the model's own)
CONTRACT = {
    "histogram": (lambda: Histogram(5), (), torch.int64, 5, lambda m: lambda x: m.log_probs()[x]),
    "logistic_mixture": (lambda: DiscretizedLogisticMixture(6, 3), (), torch.int64, 6,
                         lambda m: lambda x: m.log_probs()[x]),
    "made_2d": (lambda: MADE(2, 5, hidden=(24,)), (2,), torch.int64, 5, None),
    "made_image_ensemble": (lambda: MADE((2, 2, 1), 2, hidden=(16,), n_orderings=2), (2, 2, 1), torch.uint8, 2, None),
    "pixelcnn": (lambda: PixelCNN((1, 2, 3), 2, n_filters=6, n_layers=2, kernel_size=3), (1, 2, 3), torch.uint8, 2,
                 None),
    "gated_pixelcnn": (lambda: GatedPixelCNN((1, 2, 3), 2, n_filters=6, n_layers=2, kernel_size=3), (1, 2, 3),
                       torch.uint8, 2, None),
    "image_transformer": (lambda: ImageTransformer((2, 2, 1), 3, d_model=16, n_heads=2), (2, 2, 1), torch.uint8, 3,
                          None),
    "char_transformer": (lambda: CharTransformer(3, 4, d_model=16, n_heads=2), (4,), torch.int64, 3, None),
    "wavenet": (lambda: WaveNet(4, levels=2, n_layers=2), (4,), torch.int64, 2, None),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_likelihood_contract(name):
    make, shape, dtype, levels, independent = CONTRACT[name]
    model = _far_from_uniform(make())
    support = all_inputs(shape, levels, dtype) if shape else torch.arange(levels)
    x = support[torch.randint(len(support), (12,))]
    found = check_likelihood_model(model, x, levels=levels, support=support,
                                   log_prob=independent(model) if independent else None)
    assert found["support_total"] == pytest.approx(1.0, abs=1e-4)


class _SummedLoss(Histogram):  # sums over the batch instead of averaging
    def loss(self, x):
        return super().loss(x) * len(x)


class _Unnormalised(Histogram):  # a log-probability table that is not normalised
    def log_probs(self):
        return self.logits


class _FloatSamples(Histogram):  # samples as floats, not the data's int64 levels
    def sample(self, n, generator=None):
        return super().sample(n, generator).float()


@pytest.mark.parametrize("cls, message", [(_SummedLoss, "log_prob.mean"), (_Unnormalised, "sum to"),
                                          (_FloatSamples, "the data set stores")])
def test_likelihood_contract_catches_broken_models(cls, message):
    model = cls(4)
    with torch.no_grad():
        model.logits.normal_()
    with pytest.raises(AssertionError, match=message):
        check_likelihood_model(model, torch.randint(4, (8,)), levels=4, support=torch.arange(4),
                               log_prob=lambda x: model.log_probs()[x])


# ---------------------------------------------------------------- data format of samples and losses

@pytest.mark.parametrize(
    "make, data_shape, dtype, levels",
    [
        (lambda: Histogram(20), (), torch.int64, 20),
        (lambda: DiscretizedLogisticMixture(100), (), torch.int64, 100),
        (lambda: MADE(2, 25, hidden=(32,)), (2,), torch.int64, 25),
        (lambda: MADE((5, 4, 1), 2, hidden=(32,), n_orderings=2), (5, 4, 1), torch.uint8, 2),
        (lambda: PixelCNN((4, 4, 3), 4, n_filters=12, n_layers=2, kernel_size=3), (4, 4, 3), torch.uint8, 4),
        (lambda: GatedPixelCNN((4, 4, 1), 17, n_filters=8, n_layers=2, kernel_size=3), (4, 4, 1), torch.uint8, 17),
        (lambda: ImageTransformer((3, 3, 1), 17, d_model=16, n_heads=2), (3, 3, 1), torch.uint8, 17),
        (lambda: CharTransformer(11, 9, d_model=16, n_heads=2), (9,), torch.int64, 11),
        (lambda: WaveNet(9, levels=256, n_layers=2, n_channels=8), (9,), torch.int64, 256),
    ],
)
def test_sample_format_and_loss_scale(make, data_shape, dtype, levels):
    model = make()
    s = model.sample(5)
    assert s.shape == (5, *data_shape) and s.dtype == dtype and s.device.type == "cpu"
    assert int(s.min()) >= 0 and int(s.max()) < levels
    loss = model.loss(s)
    assert loss.dim() == 0 and torch.isfinite(loss)
    # per-dimension NLL of an untrained model: near log(levels), far below the total over all dims
    assert 0.3 * math.log(levels) < float(loss.detach()) < 2 * math.log(levels)


def test_bad_input_gets_a_clear_error():
    with pytest.raises(TypeError, match="integer levels"):
        PixelCNN((4, 4, 1), 2, n_filters=4, n_layers=1, kernel_size=3).loss(torch.rand(2, 4, 4, 1))
    with pytest.raises(ValueError, match="values must lie in 0..1"):
        MADE(3, 2, hidden=(4,)).loss(torch.full((2, 3), 2))
    with pytest.raises(ValueError, match="expected a batch of shape"):
        ImageTransformer((3, 3, 1), 2, d_model=8, n_heads=2).loss(torch.zeros(2, 3, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="multiple of"):
        GatedPixelCNN((4, 4, 3), 4, n_filters=8)


def test_model_device_reads_parameters_then_buffers_then_defaults_to_cpu():
    from deepul_helpers.models._common import model_device

    assert model_device(Histogram(3)) == torch.device("cpu")
    meta = torch.nn.Module()
    meta.register_buffer("probe", torch.zeros((), device="meta"))
    assert model_device(meta) == torch.device("meta")  # no parameters: the buffer answers
    meta.weight = torch.nn.Parameter(torch.zeros(1))
    assert model_device(meta) == torch.device("cpu")  # a parameter wins over a buffer
    assert model_device(torch.nn.Module()) == torch.device("cpu")
