"""deepul_helpers.augment: shapes, dtypes, value ranges and devices kept; seeded and reproducible;
each transform checked against what it must do (a shift is a pure translation, a zero rotation is
the identity, a cut-out zeroes exactly one square, noise has the asked spread)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepul_helpers import augment, data


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _digits(n=32):
    return augment.to_unit(data.load("digits")[:n], levels=17)


TRANSFORMS = {
    "shift": lambda x, g: augment.random_shift(x, 2, g),
    "rotation": lambda x, g: augment.random_rotation(x, 20, g, scale=(0.8, 1.2)),
    "noise": lambda x, g: augment.gaussian_noise(x, 0.1, g),
    "cutout": lambda x, g: augment.cutout(x, 3, g),
    "composed": augment.Augment(shift=1, degrees=15, noise=0.05, cutout=2),
}


@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_range_and_reproducibility(name, dtype):
    fn = TRANSFORMS[name]
    x = _digits().to(dtype)
    a, b, c = fn(x, _gen(1)), fn(x, _gen(1)), fn(x, _gen(2))
    assert a.shape == x.shape and a.dtype == dtype and a.device == x.device
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)  # it did something
    g = _gen(3)  # consecutive calls draw new views
    assert not torch.equal(fn(x, g), fn(x, g))


def test_to_unit():
    x = data.load("digits")[:4]
    u = augment.to_unit(x, 17)
    assert u.shape == (4, 1, 8, 8) and u.dtype == torch.float32
    assert torch.equal(u[:, 0] * 16, torch.as_tensor(x[..., 0]).float())


def test_shift_is_a_translation_with_zero_padding():
    x = torch.rand(64, 2, 6, 7, dtype=torch.float64)
    y = augment.random_shift(x, 2, _gen(0))
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):  # each output is one of the 25 crops of the padded input
        crops = [xp[i, :, r:r + 6, c:c + 7] for r in range(5) for c in range(7 - 2)]
        assert any(torch.equal(y[i], crop) for crop in crops)
    assert torch.equal(augment.random_shift(x, 0, _gen(0)), x)


def test_zero_rotation_is_the_identity_and_mass_is_kept_for_small_angles():
    x = torch.zeros(8, 1, 12, 12)
    x[:, :, 4:8, 4:8] = 1.0  # a centred square: a rotation keeps it inside the image
    same = augment.random_rotation(x, 0.0, _gen(0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    rot = augment.random_rotation(x, 30.0, _gen(1))
    torch.testing.assert_close(rot.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.05, atol=0)


def test_cutout_zeroes_one_square_and_nothing_else():
    x = torch.ones(200, 3, 8, 8)
    y = augment.cutout(x, 3, _gen(0))
    zeroed = (y == 0).all(1)  # (B, H, W): same pixels in every channel
    assert torch.equal((y == 0).any(1), zeroed)
    sizes = zeroed.sum((1, 2))
    assert int(sizes.max()) == 9 and int(sizes.min()) >= 2  # a full square, or its part inside the image
    for i in range(len(x)):
        rows, cols = torch.nonzero(zeroed[i], as_tuple=True)
        assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a rectangle


def test_noise_has_the_asked_spread_away_from_the_clip():
    x = torch.full((200, 1, 8, 8), 0.5, dtype=torch.float64)
    y = augment.gaussian_noise(x, 0.05, _gen(0))
    d = (y - x).flatten().numpy()
    assert abs(d.mean()) < 4 * 0.05 / np.sqrt(d.size) and abs(d.std() - 0.05) < 0.002


def test_bad_inputs_say_what_to_do():
    with pytest.raises(TypeError, match="to_unit"):
        augment.random_shift(torch.zeros(2, 8, 8, 1, dtype=torch.uint8), 1, _gen())
    with pytest.raises(TypeError, match="Generator"):
        augment.cutout(torch.zeros(2, 1, 8, 8), 2, 0)
