"""Homework 1 (autoregressive), what is specific to it: wrong implementations lose their points, the
solution notebook in quick mode agrees with the reference models, the runners' data handling.
The contract every assignment keeps (points, cells, release, full marks through the grader) is
checked by tests/test_assignments.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepul_helpers.autograde.grade import load_verdict
from deepul_helpers.autograde.verdict import grade_here as _grade
from deepul_helpers.autograde.verdict import notebook_namespace

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "solutions" / "hw1_autoregressive" / "hw1.ipynb"
VERDICT = REPO / "grading" / "verdicts" / "hw1_autoregressive.py"


@pytest.fixture(scope="module")
def verdict():
    return load_verdict(VERDICT)


@pytest.fixture(scope="module")
def solution_ns():
    return notebook_namespace(SOURCE)


# ----------------------------------------------------------------------------- the verdict on wrong components


# Wrong implementations a student might write; each must lose points on its sub-check.


def _naive_logistic(x, logit_weights, means, log_scales, levels):
    """Differences of sigmoids without a clamp: -inf where every component is far from the value."""
    xf = x.to(means.dtype).unsqueeze(-1)
    s = torch.exp(log_scales)
    up = torch.where(xf >= levels - 1, torch.ones_like(xf), torch.sigmoid((xf + 0.5 - means) / s))
    lo = torch.where(xf <= 0, torch.zeros_like(xf), torch.sigmoid((xf - 0.5 - means) / s))
    return torch.logsumexp(F.log_softmax(logit_weights, -1) + torch.log(up - lo), -1)


def _logistic_without_edges(x, logit_weights, means, log_scales, levels):
    """Forgets that the first and last bins take the tails."""
    xf = x.to(means.dtype).unsqueeze(-1)
    inv_s = torch.exp(-log_scales)
    a, b = (xf - 0.5 - means) * inv_s, (xf + 0.5 - means) * inv_s
    log_p = F.logsigmoid(b) + F.logsigmoid(-a) + torch.log(-torch.expm1(-inv_s))
    return torch.logsumexp(F.log_softmax(logit_weights, -1) + log_p, -1)


def _made_masks_off_by_one(degrees, levels=1):
    """Hidden units see degree <= m - 1 (strict): a valid-looking but different MADE."""
    masks, below = [], np.repeat(degrees[0], levels)
    for deg in degrees[1:]:
        masks.append(torch.tensor(deg[:, None] > below[None, :], dtype=torch.float32))
        below = deg
    out = np.repeat(degrees[0], levels)
    masks.append(torch.tensor(out[:, None] > below[None, :], dtype=torch.float32))
    return masks


def _made_masks_output_leaks(degrees, levels=1):
    """Outputs see hidden units of the same degree: output d sees input d (not autoregressive)."""
    masks, below = [], np.repeat(degrees[0], levels)
    for deg in degrees[1:]:
        masks.append(torch.tensor(deg[:, None] >= below[None, :], dtype=torch.float32))
        below = deg
    out = np.repeat(degrees[0], levels)
    masks.append(torch.tensor(out[:, None] >= below[None, :], dtype=torch.float32))
    return masks


def _ensemble_of_logits(log_probs):
    """Averages log-probabilities instead of probabilities."""
    return log_probs.mean(0)


def _pixelcnn_mask_swapped(mask_type, in_channels, out_channels, kernel_size, color_channels=1):
    k, c = kernel_size, kernel_size // 2
    mask = torch.zeros(out_channels, in_channels, k, k)
    mask[:, :, :c, :] = 1
    mask[:, :, c, :c] = 1
    g_out = torch.arange(out_channels)[:, None] % color_channels
    g_in = torch.arange(in_channels)[None, :] % color_channels
    mask[:, :, c, c] = ((g_in <= g_out) if mask_type == "A" else (g_in < g_out)).float()
    return mask


def _pixelcnn_mask_blocked_colours(mask_type, in_channels, out_channels, kernel_size, color_channels=1):
    """Channel groups as contiguous blocks instead of i % color_channels."""
    k, c = kernel_size, kernel_size // 2
    mask = torch.zeros(out_channels, in_channels, k, k)
    mask[:, :, :c, :] = 1
    mask[:, :, c, :c] = 1
    g_out = (torch.arange(out_channels) * color_channels // out_channels)[:, None]
    g_in = (torch.arange(in_channels) * color_channels // in_channels)[None, :]
    mask[:, :, c, c] = ((g_in < g_out) if mask_type == "A" else (g_in <= g_out)).float()
    return mask


def _attention_strict(q, k, v):
    """Off by one: position t attends to 0..t-1 only."""
    t = q.shape[-2]
    att = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    att = att.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=0), float("-inf"))
    return torch.nan_to_num(F.softmax(att, -1)) @ v


def _step_without_scale(q, k, v, cache=None):
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    return F.softmax(q @ k.transpose(-2, -1), -1) @ v, (k, v)


def _step_forgets_cache(q, k, v, cache=None):
    return v, (k, v)


def _unfit(*args, **kwargs):
    raise NotImplementedError


# (question, name, wrong implementation, the sub-check it must fail, the points of the sub-checks it fails)
WRONG = [
    ("q1_tests", "logistic_mixture_log_probs", _naive_logistic, "sharp", 1.75),  # -inf: moderate and sharp
    ("q1_tests", "logistic_mixture_log_probs", _logistic_without_edges, "moderate", 1.75),  # moderate, extreme
    ("q2_tests", "made_masks", _made_masks_off_by_one, "made_masks", 2.0),  # one and several levels
    ("q2_tests", "made_masks", _made_masks_output_leaks, "made_masks", 2.0),
    ("q2_tests", "ensemble_log_prob", _ensemble_of_logits, "ensemble_log_prob", 1.0),
    ("q3_tests", "pixelcnn_mask", _pixelcnn_mask_swapped, "pixelcnn_mask", 3.0),  # mono A, B and colour A, B
    ("q3_tests", "pixelcnn_mask", _pixelcnn_mask_blocked_colours, "colour", 1.0),  # the hidden case with C != 3
    ("q4_tests", "causal_attention", _attention_strict, "causal_attention", 1.0),
    ("q4_tests", "attention_step", _step_without_scale, "attention_step", 1.0),
    ("q4_tests", "attention_step", _step_forgets_cache, "attention_step", 1.0),
]


@pytest.mark.parametrize("grade_id,name,wrong,where,lost", WRONG, ids=[w[2].__name__.strip("_") for w in WRONG])
def test_judge_takes_exactly_the_points_of_a_wrong_component(verdict, solution_ns, grade_id, name, wrong, where,
                                                               lost):
    (q,) = [q for q in verdict.QUESTIONS if q.grade_id == grade_id]
    fit_name = {"q1_tests": "q1_fit", "q2_tests": "q2_fit", "q3_tests": "q3_fit", "q4_tests": "q4_fit"}[grade_id]
    # The training function is stubbed out in both runs so that only the components differ.
    base_ns = {**solution_ns, fit_name: _unfit}
    base, _ = _grade(q, base_ns, verdict.HIDDEN_SEED)
    wrong_points, messages = _grade(q, {**base_ns, name: wrong}, verdict.HIDDEN_SEED)
    assert base == q.points - 2, "the stubbed training function loses its two points, nothing else"
    assert wrong_points == base - lost, (base, wrong_points, messages)
    assert any(where in m for m in messages), messages
    assert all(str(verdict.HIDDEN_SEED) not in m for m in messages)


def test_judge_catches_a_cache_that_changes_the_samples(verdict, solution_ns):
    """A generate() whose cached path draws different tokens than the naive path loses that point."""
    (q,) = [q for q in verdict.QUESTIONS if q.grade_id == "q4_tests"]
    torch.manual_seed(0)
    model = solution_ns["TransformerModel"](17, 64, 16, 2, 1).eval()  # untrained: the judge is under test

    def fit_with_bad_cache(*args, **kwargs):
        def bad(n, length, use_cache=True):
            x = model.generate(n, length, use_cache)
            return (x + 1) % 17 if use_cache else x

        return np.array([2.9, 2.5]), np.array([2.8, 2.4]), bad

    points, messages = _grade(q, {**solution_ns, "q4_fit": fit_with_bad_cache}, verdict.HIDDEN_SEED)
    assert points == pytest.approx(q.points - 1) and any("use_cache" in m for m in messages), messages


def test_judge_catches_a_reported_loss_that_is_not_the_models(verdict, solution_ns):
    (q,) = [q for q in verdict.QUESTIONS if q.grade_id == "q1_tests"]
    fit = solution_ns["q1_fit"]

    def fit_uniform_probs(train_data, test_data, levels, model, **kw):
        tr, te, probs = fit(train_data, test_data, levels, model, **kw)
        return tr, te, np.full(levels, 1.0 / levels)

    points, messages = _grade(q, {**solution_ns, "q1_fit": fit_uniform_probs}, verdict.HIDDEN_SEED)
    assert points == pytest.approx(q.points - 2), messages
    assert sum("NLL of the returned probs" in m for m in messages) == 2


# ----------------------------------------------------------------------------- the notebook, quick mode


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    from deepul_helpers import notebook

    out = tmp_path_factory.mktemp("hw1")
    path, records = notebook.execute(SOURCE, out_dir=out, env={"DEEPUL_OUT": str(out / "plots")}, timeout=300)
    return path, records, out


@pytest.mark.notebook
def test_solution_notebook_runs_in_quick_mode_and_passes_its_tests(executed):
    path, records, out = executed
    nb = json.loads(Path(path).read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    for q in ("q1", "q2", "q3", "q4", "q5"):
        assert any(k.startswith(q + "/") for k in records), q
    assert sorted(p.name for p in (out / "plots" / "hw1").glob("*.png")) == sorted(
        ["q1_1d_a_histogram.png", "q1_1d_a_logistic.png", "q1_1d_b_histogram.png", "q1_1d_b_logistic.png",
         "q2_image_density_25.png", "q2_shapes.png", "q3_shapes.png", "q3_digits.png", "q3_shapes_colored.png",
         "q4_digits.png", "q4_timing.png", "q5_curves.png", "q5_samples.png"])


def _reference_losses(model, train_x, test_x, settings, seed=0):
    from deepul_helpers.train import fit

    hist = fit(model, train_x, test_x, **settings, seed=seed, device="cpu", quick=True)
    return hist.train_losses, hist.test_losses


@pytest.mark.notebook
def test_solution_losses_match_the_reference_models(executed, solution_ns):
    """Same seed, same initialisation, same fit settings: the notebook's recorded losses are the
    reference models' losses (the solution is an independent implementation of the same models)."""
    from deepul_helpers import data
    from deepul_helpers.models import autoregressive as ar

    _, rec, _ = executed
    ns = solution_ns
    for name in ("1d_a", "1d_b"):
        tr_x, te_x, levels = data.load(name, "train"), data.load(name, "test"), data.info(name).levels
        for kind in ("histogram", "logistic"):
            torch.manual_seed(0)
            model = (ar.Histogram(levels) if kind == "histogram"
                     else ar.DiscretizedLogisticMixture(levels, ns["Q1_COMPONENTS"]))
            tr, te = _reference_losses(model, tr_x, te_x, ns["Q1_SETTINGS"][kind])
            np.testing.assert_allclose(rec[f"q1/{name}/{kind}/train_losses"], tr, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(rec[f"q1/{name}/{kind}/test_losses"], te, rtol=1e-5, atol=1e-6)

    s = ns["Q2_SETTINGS"]
    torch.manual_seed(0)
    made = ar.MADE(2, 25, hidden=s["hidden"])
    tr, te = _reference_losses(made, data.load("image_density_25", "train"), data.load("image_density_25", "test"),
                               dict(epochs=s["epochs"], lr=s["lr"], batch_size=s["batch_size"]))
    np.testing.assert_allclose(rec["q2/image_density_25/made/test_losses"], te, rtol=1e-4, atol=1e-5)

    s = ns["Q3_SETTINGS"]
    torch.manual_seed(0)
    pcnn = ar.PixelCNN((8, 8, 1), 17, n_filters=s["n_filters"], n_layers=s["n_layers"],
                       kernel_size=s["kernel_size"])
    tr, te = _reference_losses(pcnn, data.load("digits", "train"), data.load("digits", "test"),
                               dict(epochs=ns["Q3_EPOCHS"][(8, 8, 1)], lr=s["lr"], batch_size=s["batch_size"]))
    np.testing.assert_allclose(rec["q3/digits/pixelcnn/test_losses"], te, rtol=1e-4, atol=1e-5)

    s = ns["Q4_SETTINGS"]
    torch.manual_seed(0)
    gpt = ar.ImageTransformer((8, 8, 1), 17, d_model=s["d_model"], n_heads=s["n_heads"], n_layers=s["n_layers"])
    tr, te = _reference_losses(gpt, data.load("digits", "train"), data.load("digits", "test"),
                               dict(epochs=s["epochs"], lr=s["lr"], batch_size=s["batch_size"]))
    np.testing.assert_allclose(rec["q4/digits/transformer/test_losses"], te, rtol=1e-4, atol=1e-5)


@pytest.mark.notebook
def test_q1_recorded_probs_give_the_recorded_test_loss(executed):
    """Independent of any model: the last test loss is the NLL of the recorded probabilities."""
    from deepul_helpers import data

    _, rec, _ = executed
    for name in ("1d_a", "1d_b"):
        test_x = data.load(name, "test")[:256]  # quick mode evaluates on the first 256
        for kind in ("histogram", "logistic"):
            probs = np.asarray(rec[f"q1/{name}/{kind}/probs"])
            assert abs(probs.sum() - 1) < 1e-6
            nll = -np.log(probs[test_x]).mean()
            assert nll == pytest.approx(rec[f"q1/{name}/{kind}/test_losses"][-1], rel=1e-4)


# ----------------------------------------------------------------------------- the runners


def test_runner_states_the_contract_of_a_broken_function(tmp_path):
    from deepul_helpers.homework import hw1

    def bad_fit(train_data, test_data, levels, model, **kw):
        return np.ones(3), np.ones(3)  # probs missing

    with pytest.raises(TypeError, match="train_losses, test_losses, probs"):
        hw1.run_q1(bad_fit, quick=True, out=tmp_path)


def test_helper_crops_only_in_quick_mode():
    from deepul_helpers.homework import hw1

    full, _ = hw1.load_images("shapes", 0, quick=False)
    small, _ = hw1.load_images("shapes", 0, quick=True)
    assert full.shape[1:] == (20, 20, 1) and small.shape[1:] == (10, 10, 1)
    assert np.array_equal(small, full[:, 5:15, 5:15])
