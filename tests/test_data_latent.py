"""The latent-structure data sets: the two 2D Gaussians, the bars and the shapes' factors, checked
against closed forms, scipy and a literal enumeration."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from deepul_helpers import data
from deepul_helpers.data.images import shape_masks, shapes_factors
from deepul_helpers.data.latent import all_binary, bar_masks


@pytest.mark.parametrize("name,angle", [("gaussian_rotated", np.pi / 4), ("gaussian_aligned", 0.0)])
def test_gaussians_against_scipy_and_closed_form(name, angle):
    inf, dist = data.info(name), data.true_distribution(name)
    assert inf.entropy == pytest.approx((np.log(2 * np.pi * np.e) + np.log(5.0)) / 2, rel=1e-12)
    assert 2 * inf.entropy == pytest.approx(4.4473, abs=5e-5)  # the figure the issue quotes per point
    c, s = np.cos(angle), np.sin(angle)
    cov = np.array([[c, -s], [s, c]]) @ np.diag([25.0, 1.0]) @ np.array([[c, s], [-s, c]])
    ref = scipy.stats.multivariate_normal(np.zeros(2), cov)
    assert ref.entropy() / 2 == pytest.approx(inf.entropy, rel=1e-12)
    x = data.load(name, "test")
    np.testing.assert_allclose(dist.log_prob(x), ref.logpdf(x.astype(np.float64)), rtol=1e-10, atol=1e-10)
    # the 10,000 training points: sample covariance within a few standard errors of the truth
    emp = np.cov(data.load(name).T)
    se = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / 10_000)  # Wishart variances
    assert np.all(np.abs(emp - cov) < 5 * se)
    # test-set NLL: an unbiased estimate of the entropy, within 4 standard errors
    lp = ref.logpdf(x)
    assert abs(-lp.mean() / 2 - inf.entropy) < 4 * lp.std() / np.sqrt(len(lp)) / 2


def _bars_table_literal(p_bar=0.2, p_flip=0.05):
    """p(x) of all 2^16 images by a literal product over pixels, for every one of the 256 z."""
    masks = bar_masks().reshape(8, 16)
    z = all_binary(8)  # (256, 8)
    prior = np.prod(np.where(z == 1, p_bar, 1 - p_bar), axis=1)  # (256,)
    clean = (z @ masks) > 0  # (256, 16)
    images = all_binary(16).astype(bool)  # (65536, 16), pixel 0 most significant like the registry
    table = np.zeros(len(images))
    for lo in range(0, len(images), 8192):
        same = images[lo : lo + 8192, None, :] == clean[None]  # (8192, 256, 16)
        table[lo : lo + 8192] = (np.prod(np.where(same, 1 - p_flip, p_flip), axis=2) * prior).sum(1)
    return table


def test_bars_exact_probabilities_and_entropy_by_enumeration():
    dist = data.true_distribution("bars")
    table = _bars_table_literal()
    np.testing.assert_allclose(dist.probs, table, rtol=1e-10, atol=0)
    assert table.sum() == pytest.approx(1.0, abs=1e-12)
    assert data.info("bars").entropy == pytest.approx(scipy.stats.entropy(table) / 16, rel=1e-12)
    # the entropy lies between H(X | Z) (noise only) and H(Z) + H(X | Z) (z recoverable)
    h_noise = 16 * scipy.stats.entropy([0.05, 0.95])
    h_z = 8 * scipy.stats.entropy([0.2, 0.8])
    assert h_noise < 16 * data.info("bars").entropy < h_noise + h_z


def test_bars_samples_follow_the_table():
    dist = data.true_distribution("bars")
    x = np.concatenate([data.load("bars"), data.load("bars", "test")])  # (6000, 4, 4, 1)
    assert set(np.unique(x)) <= {0, 1}
    lp = dist.log_prob(x)
    assert abs(-lp.mean() / 16 - dist.entropy) < 4 * lp.std() / np.sqrt(len(lp)) / 16
    codes = x.reshape(len(x), 16).astype(np.int64) @ (1 << np.arange(15, -1, -1))
    top = np.argsort(dist.probs)[::-1][:20]  # the 20 likeliest images, then everything else
    observed = np.append([(codes == c).sum() for c in top], 0)
    observed[-1] = len(x) - observed[:-1].sum()
    expected = np.append(dist.probs[top], 1 - dist.probs[top].sum()) * len(x)
    assert scipy.stats.chisquare(observed, expected).pvalue > 1e-4
    # the latents the sampler returns are the bars it drew: noise flips about 5% of the pixels
    xs, z = dist.sample(4000, 1, return_latents=True)
    clean = (z @ bar_masks().reshape(8, 16)) > 0
    assert np.mean(xs.reshape(-1, 16) != clean) == pytest.approx(0.05, abs=0.005)


def test_shapes_factors_describe_the_images():
    x, y = data.load("shapes", "test", labels=True)
    f = shapes_factors("test")
    assert set(f) == {"kind", "size", "y", "x", "rotation"} and all(len(v) == len(x) for v in f.values())
    np.testing.assert_array_equal(f["kind"], y)
    masks = x[..., 0].astype(bool)
    area = masks.sum((1, 2))
    yy, xx = np.meshgrid(np.arange(20) + 0.5, np.arange(20) + 0.5, indexing="ij")
    cy, cx = (masks * yy).sum((1, 2)) / area, (masks * xx).sum((1, 2)) / area
    dist = np.hypot(cy - f["y"], cx - f["x"])  # pixel centroid to the stated position
    sq, ci, tr, li = (f["kind"] == k for k in range(4))
    assert dist[sq | ci].max() < 0.75  # symmetric about their centre, up to pixelisation
    assert np.percentile(dist[li], 95) < 1.0  # a thin line's pixels: nearly symmetric about its midpoint
    # a triangle's centroid sits a third of its half-height from the centre of its bounding box
    assert np.abs(dist[tr] - f["size"][tr] / 3).max() < 0.75
    assert np.corrcoef(area[sq], (2 * f["size"][sq]) ** 2)[0, 1] > 0.99
    assert np.corrcoef(area[ci], np.pi * f["size"][ci] ** 2)[0, 1] > 0.99
    assert set(np.unique(f["rotation"][f["kind"] != 2])) == {0}
    # asking for the factors changes none of the random draws (shapes' checksum is unchanged)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    m1, l1 = shape_masks(50, rng_a)
    m2, l2, _ = shape_masks(50, rng_b, factors=True)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(l1, l2)
    assert data.checksums("shapes") == data.info("shapes").sha256
    with pytest.raises(ValueError, match="split"):
        shapes_factors("valid")
