"""The helpers the lectures share with runners, verdicts and benchmarks, against closed forms:
grid integration of 2D densities (metrics.grid_mass) and receptive fields from gradients
(metrics.receptive_field)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepul_helpers import metrics
from deepul_helpers.metrics.receptive_field import input_gradients, receptive_field
from deepul_helpers.models.autoregressive import GatedPixelCNN, MaskedConv2d, PixelCNN


def _normal_log_prob(mean, sd):
    def fn(p):
        z = (p - np.asarray(mean)) / np.asarray(sd)
        return (-0.5 * (z ** 2) - np.log(np.asarray(sd) * math.sqrt(2 * math.pi))).sum(1)
    return fn


def _box_mass(lo, hi, mean, sd):  # P(lo < X < hi) for a normal, by the error function
    return 0.5 * (math.erf((hi - mean) / (sd * math.sqrt(2))) - math.erf((lo - mean) / (sd * math.sqrt(2))))


def test_grid_mass_of_normals_matches_the_error_function():
    mean, sd = (1.0, -0.5), (0.5, 2.0)  # x and y differ, so a swapped axis would show
    lp = _normal_log_prob(mean, sd)
    assert metrics.grid_mass(lp, (-6, 8, -20, 20), n=300) == pytest.approx(1.0, abs=1e-4)
    box = (0.0, 1.5, -1.0, 4.0)
    expected = _box_mass(box[0], box[1], mean[0], sd[0]) * _box_mass(box[2], box[3], mean[1], sd[1])
    assert metrics.grid_mass(lp, box, n=400, chunk=1000) == pytest.approx(expected, rel=1e-4)
    swapped = _box_mass(box[2], box[3], mean[0], sd[0]) * _box_mass(box[0], box[1], mean[1], sd[1])
    assert abs(expected - swapped) > 0.05


def test_grid_mass_is_exact_for_a_uniform_density_and_checks_its_input():
    uniform = lambda p: np.full(len(p), -math.log(6.0))  # noqa: E731  uniform on a 2 x 3 box
    assert metrics.grid_mass(uniform, (0, 2, 0, 3), n=7) == pytest.approx(1.0, rel=1e-12)
    with pytest.raises(ValueError, match="xmin < xmax"):
        metrics.grid_mass(uniform, (1, 0, 0, 1))
    with pytest.raises(ValueError, match="one log-density per point"):
        metrics.grid_mass(lambda p: np.zeros((len(p), 2)), (0, 1, 0, 1), n=4)


def test_log_prob_numpy_adapts_a_torch_model():
    class Gauss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mu = torch.nn.Parameter(torch.zeros(2))

        def log_prob(self, x):  # standard normal in 2D
            return -0.5 * ((x - self.mu) ** 2).sum(1) - math.log(2 * math.pi)

    fn = metrics.log_prob_numpy(Gauss())
    out = fn(np.zeros((3, 2)))
    assert isinstance(out, np.ndarray) and out == pytest.approx(np.full(3, -math.log(2 * math.pi)))
    assert metrics.grid_mass(fn, (-7, 7, -7, 7), n=200) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(TypeError, match="log_prob"):
        metrics.log_prob_numpy(object())


class _OneMaskedConv(torch.nn.Module):
    """A single masked 5x5 convolution, shaped like an image model: (B, H, W, 1) -> (B, H, W, 1, 1)."""

    def __init__(self, kind):
        super().__init__()
        self.conv = MaskedConv2d(kind, 1, 1, 5)

    def forward(self, z):
        return self.conv(z.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)[..., None]


@pytest.mark.parametrize("kind", ["A", "B"])
def test_receptive_field_of_one_masked_convolution_is_its_mask(kind):
    torch.manual_seed(0)
    layer = _OneMaskedConv(kind)
    state = torch.random.get_rng_state()
    field = receptive_field(layer, (9, 9, 1), at=(4, 4))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is left alone
    mask = layer.conv.mask[0, 0].numpy() > 0  # (5, 5)
    expected = np.zeros((9, 9), bool)
    expected[2:7, 2:7] = mask
    assert np.array_equal(field, expected)
    corner = receptive_field(layer, (9, 9, 1), at=(0, 1))  # clipped by the border
    assert np.array_equal(corner, _shifted(expected, 0, 1))


def _shifted(field_at_centre, i, j):
    """The same window centred at (i, j) instead of (4, 4), clipped to the 9x9 image."""
    out = np.zeros_like(field_at_centre)
    for r, c in zip(*np.nonzero(field_at_centre)):
        rr, cc = r - 4 + i, c - 4 + j
        if 0 <= rr < 9 and 0 <= cc < 9:
            out[rr, cc] = True
    return out


def _stack_fields(size=15, at=7, layers=6):
    """Closed forms for one 'A' + (layers-1) 'B' 3x3 layers at pixel (at, at): PixelCNN sees k rows
    above over columns at-layers .. at+k (the blind spot is the triangle to the right); the gated
    PixelCNN sees every pixel of the layers + 1 rows above within `layers` columns, and the
    `layers` pixels to the left in the current row."""
    plain = np.zeros((size, size), dtype=bool)
    gated = np.zeros((size, size), dtype=bool)
    lo = at - layers
    for k in range(1, layers + 1):
        plain[at - k, lo:at + k + 1] = True
    plain[at, lo:at] = True
    gated[max(at - layers - 1, 0):at, lo:at + layers + 1] = True
    gated[at, lo:at] = True
    return plain, gated


def test_receptive_fields_of_pixelcnn_stacks_match_their_closed_forms():
    torch.manual_seed(0)
    plain, gated = _stack_fields()
    kw = dict(n_filters=16, n_layers=6, kernel_size=3)
    assert np.array_equal(receptive_field(PixelCNN((15, 15, 1), 2, **kw), (15, 15, 1), (7, 7)), plain)
    assert np.array_equal(receptive_field(GatedPixelCNN((15, 15, 1), 2, **kw), (15, 15, 1), (7, 7)), gated)
    assert input_gradients(PixelCNN((15, 15, 1), 2, **kw), (15, 15, 1), (7, 7)).shape == (15, 15, 1)
    with pytest.raises(ValueError, match="outside"):
        receptive_field(PixelCNN((15, 15, 1), 2, **kw), (15, 15, 1), (15, 0))
