"""The course feature space and its sample-quality scores, against closed forms and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from deepul_helpers import data
from deepul_helpers.metrics import sample_quality as sq


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    """The feature network trained into an empty cache folder, then read back from it."""
    cache = tmp_path_factory.mktemp("deepul-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv(sq.CACHE_ENV, str(cache))
    mp.setattr(sq, "_LOADED", {})
    trained = sq.digits_classifier(seed=0)
    assert list(cache.glob("digits_classifier_*seed0.pt")), "the trained network was not cached"
    sq._LOADED.clear()
    loaded = sq.digits_classifier(seed=0)
    assert loaded is not trained
    for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert loaded.test_accuracy == trained.test_accuracy
    yield loaded
    mp.undo()


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train"), data.load("digits", "test")


def test_cache_folder_is_outside_the_repository_and_overridable(monkeypatch, tmp_path):
    monkeypatch.delenv(sq.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert sq.cache_dir() == tmp_path / "deepul"
    monkeypatch.setenv(sq.CACHE_ENV, str(tmp_path / "x"))
    assert sq.cache_dir() == tmp_path / "x"


def test_classifier_is_accurate_on_held_out_digits(clf, digits):
    xt, yt = data.load("digits", "test", labels=True)
    with torch.no_grad():
        acc = float((clf(xt).argmax(1).numpy() == yt).mean())
    assert acc == clf.test_accuracy
    assert acc >= 0.97, f"the feature network's held-out accuracy is {acc:.3f}"


def test_training_is_deterministic_from_the_seed():
    a, b = sq.train_digits_classifier(seed=3, epochs=1), sq.train_digits_classifier(seed=3, epochs=1)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


def test_features_have_unit_root_mean_square_on_training_digits(clf, digits):
    with torch.no_grad():
        f = clf.features(digits[0])
    assert f.shape == (len(digits[0]), sq.FEATURES)
    assert float(f.pow(2).mean().sqrt()) == pytest.approx(1.0, rel=1e-5)


def test_bad_images_are_refused_with_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(N, 8, 8, 1\)"):
        sq.digits_to_float(np.zeros((4, 28, 28, 1)))


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # a few ReLU features are always 0
def test_frechet_distance_is_zero_on_a_set_and_itself_and_matches_scipy(clf, digits):
    train, test = digits
    assert abs(sq.frechet_distance(test, test, clf=clf)) < 1e-6
    with torch.no_grad():
        fa, fb = clf.features(train[:400]).double().numpy(), clf.features(test).double().numpy()
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    ca, cb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    root = scipy.linalg.sqrtm(ca @ cb).real
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * root)
    got = sq.frechet_distance(train[:400], test, clf=clf)
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-8)
    assert got > 0


def _kid_loops(a, b):
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, written as the literal sums."""
    d, m = a.shape[1], len(a)
    k = lambda x, y: (float(np.dot(x, y)) / d + 1.0) ** 3
    kxx = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(a[i], b[j]) for i in range(m) for j in range(m)) / (m * m)
    return kxx + kyy - 2 * kxy


def test_kid_matches_literal_sums_block_by_block():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(14, 3)), rng.normal(0.5, 1.0, size=(12, 3))
    blocks = [_kid_loops(a[i * 6 : (i + 1) * 6], b[i * 6 : (i + 1) * 6]) for i in range(2)]
    est, se = sq.kid_from_features(a, b, blocks=2)
    assert est == pytest.approx(np.mean(blocks), rel=1e-10)
    assert se == pytest.approx(np.std(blocks, ddof=1) / math.sqrt(2), rel=1e-10)


def test_kid_is_unbiased_under_the_null():
    """Two samples of one distribution: the estimate's mean over seeds is 0 within its standard error."""
    est = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        est.append(sq.kid_from_features(rng.normal(size=(80, 4)), rng.normal(size=(80, 4)), blocks=2)[0])
    est = np.asarray(est)
    assert abs(est.mean()) < 3 * est.std(ddof=1) / math.sqrt(len(est))
    # and it sees a shift of the mean
    rng = np.random.default_rng(0)
    shifted, se = sq.kid_from_features(rng.normal(size=(400, 4)), rng.normal(0.5, 1.0, size=(400, 4)))
    assert shifted > 5 * se


def test_kid_between_two_halves_of_the_digits_is_zero_within_its_error(clf, digits):
    train = digits[0]
    kid, se = sq.kernel_distance(train[:750], train[750:], clf=clf)
    assert se > 0 and abs(kid) < 3 * se
    noisy = np.clip(train[750:] + np.random.default_rng(0).normal(0, 8, train[750:].shape), 0, 16)
    kid_noisy, se_noisy = sq.kernel_distance(noisy, train[:750], clf=clf)
    assert kid_noisy > 3 * se_noisy


@pytest.mark.filterwarnings("ignore:std\\(\\):UserWarning")  # one split: no spread
def test_inception_score_matches_its_formula(clf, digits):
    test = digits[1]
    with torch.no_grad():
        p = torch.softmax(clf(test).double(), 1).numpy()
    marginal = p.mean(0)
    expected = math.exp(float((p * (np.log(p) - np.log(marginal))).sum(1).mean()))
    mean, std = sq.inception_score(test, splits=1, clf=clf)
    assert mean == pytest.approx(expected, rel=1e-6)
    assert 8.0 < mean <= 10.0
    ones = test[data.load("digits", "test", labels=True)[1] == 1]
    assert sq.inception_score(ones, splits=1, clf=clf)[0] < 1.5  # one class only: close to 1


def test_digit_modes_on_real_digits_and_on_one_class(clf, digits):
    test = digits[1]
    modes = sq.digit_modes(test, clf=clf)
    assert modes["covered"] == 10 and modes["confident_share"] > 0.9
    assert sum(modes["counts"]) == pytest.approx(modes["confident_share"] * len(test))
    assert 0 <= modes["reverse_kl"] < 0.05
    with torch.no_grad():
        sevens = test[clf(test).argmax(1).numpy() == 7]  # every one classified as a 7
    seven = sq.digit_modes(sevens, threshold=0.0, clf=clf)
    assert seven["covered"] == 1
    assert seven["reverse_kl"] == pytest.approx(math.log(10))


@pytest.mark.parametrize("name", ["gaussians_8", "gaussians_25"])
def test_mode_coverage_of_the_true_mixture(name):
    """Samples of the mixture itself: every mode covered, and the share within 3 sd is
    P(chi^2_2 <= 9) = 1 - exp(-4.5) in 2D (the components are far apart)."""
    x = data.true_distribution(name).sample(2500, np.random.default_rng(0))
    cov = sq.mode_coverage(x, name)
    means, _ = sq.mixture_modes(name)
    assert cov["modes_covered"] == cov["n_modes"] == len(means)
    p = 1 - math.exp(-4.5)
    assert cov["high_quality"] == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / 2500))
    assert 0 <= cov["reverse_kl"] < 0.02


def test_mode_coverage_of_a_collapsed_and_of_a_lost_sampler():
    means, sd = sq.mixture_modes("gaussians_8")
    one = means[3] + 0.1 * sd * np.random.default_rng(0).normal(size=(100, 2))
    cov = sq.mode_coverage(one, means, sd)
    assert cov["modes_covered"] == 1 and cov["high_quality"] == 1.0
    assert cov["reverse_kl"] == pytest.approx(math.log(8))
    lost = sq.mode_coverage(np.zeros((50, 2)), "gaussians_8")
    assert lost["modes_covered"] == 0 and lost["high_quality"] == 0.0
    with pytest.raises(ValueError, match="not a Gaussian mixture"):
        sq.mode_coverage(one, "moons")
