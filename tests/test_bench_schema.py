"""The one benchmark row schema: derived fields, validation, and the measurements that fill a row."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch

from deepul_helpers import bench, data, metrics
from deepul_helpers.bench import schema
from deepul_helpers.models.autoregressive import Histogram


def _row(**kw):
    args = dict(test_nats_per_dim=2.7, nll_kind="exact", cross_entropy=(2.66, 0.0), s_per_1000_samples=0.5,
                params=20)
    return schema.make_row("autoregressive", "Histogram", "1d_a", **{**args, **kw})


def test_make_row_derives_bits_gaps_and_entropy():
    row = _row()
    entropy = data.info("1d_a").entropy
    assert list(row)[: len(schema.FIELDS)] == list(schema.FIELDS)
    assert row["test_bits_per_dim"] == pytest.approx(2.7 / math.log(2))
    assert row["entropy_nats_per_dim"] == entropy
    assert row["gap_percent"] == pytest.approx(100 * (2.7 - entropy) / entropy)
    assert row["cross_entropy_gap_percent"] == pytest.approx(100 * (2.66 - entropy) / entropy)
    no_likelihood = schema.make_row("autoregressive", "GAN", "gaussians_8", fid=1.5)  # no NLL, no history
    assert no_likelihood["test_nats_per_dim"] is None and no_likelihood["nll_kind"] is None


@pytest.mark.parametrize("change, match", [
    (lambda r: r.pop("params"), "missing fields"),
    (lambda r: r.update(sharpness=1.0), "OPTIONAL_FIELDS"),
    (lambda r: r.update(test_bits_per_dim=2.7), "test_bits_per_dim"),
    (lambda r: r.update(nll_kind="approximate"), "nll_kind"),
    (lambda r: r.update(gap_percent=0.0), "gap_percent"),
    (lambda r: r.update(cross_entropy_nats_per_dim=2.0, cross_entropy_gap_percent=metrics.gap_percent(
        2.0, data.info("1d_a").entropy)), "below the entropy"),
    (lambda r: r.update(dataset="mnist"), "unknown data set"),
    (lambda r: r.update(epochs=-1), "epochs"),
    (lambda r: r.update(params="many"), "params"),
    (lambda r: r.update(quick="yes"), "quick must be true or false"),
])
def test_validate_row_names_what_is_wrong(change, match):
    row = _row()
    change(row)
    with pytest.raises(ValueError, match=match):
        schema.validate_row(row)
    with pytest.raises(ValueError, match="family"):
        schema.validate_row(_row(), family="flows")
    schema.validate_row({**_row(), "quick": False})  # the run's metadata the dispatcher stamps on every row


def test_cross_entropy_exact_on_a_table_equals_entropy_at_the_truth_and_exceeds_it_elsewhere():
    probs = data.true_distribution("1d_a").probs
    model = Histogram(len(probs))
    with torch.no_grad():
        model.logits.copy_(torch.tensor(np.log(probs)))
    h, se = schema.true_cross_entropy(model, "1d_a")
    assert se == 0.0 and h == pytest.approx(data.info("1d_a").entropy, rel=1e-6)
    uniform = Histogram(len(probs))
    assert schema.true_cross_entropy(uniform, "1d_a")[0] == pytest.approx(math.log(len(probs)), rel=1e-6)
    assert schema.true_cross_entropy(uniform, "digits") is None  # no known distribution


class _Truth(torch.nn.Module):
    """A "model" whose log_prob is the data set's true distribution."""

    def __init__(self, name):
        super().__init__()
        self.dist = data.true_distribution(name)

    def log_prob(self, x):
        return torch.as_tensor(self.dist.log_prob(x.numpy()))


def test_cross_entropy_of_a_2d_table_enumerates_every_cell():
    """The true table's own log_prob gives the table's entropy per dimension, exactly."""
    h, se = schema.true_cross_entropy(_Truth("image_density_25"), "image_density_25")
    assert se == 0.0 and h == pytest.approx(data.info("image_density_25").entropy, rel=1e-9)


def test_monte_carlo_cross_entropy_of_a_continuous_toy_has_its_error():
    h, se = schema.true_cross_entropy(_Truth("gaussians_8"), "gaussians_8", n_monte_carlo=4000)
    assert 0 < se < 0.05 and abs(h - data.info("gaussians_8").entropy) < 4 * se + 1e-3


def test_dispatcher_rejects_a_model_family_row_off_the_schema(tmp_path, monkeypatch):
    fake = types.ModuleType("deepul_helpers.bench.latent")
    fake.run = lambda quick, device: [{"dataset": "1d_a", "model": "VAE", "nll": 1.5}]
    monkeypatch.setitem(sys.modules, "deepul_helpers.bench.latent", fake)
    monkeypatch.setattr(bench, "available", lambda: ["latent"])
    with pytest.raises(ValueError, match="missing fields"):
        bench.run_benchmark("latent", quick=True, out=tmp_path)
