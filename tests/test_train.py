"""The training loop's contract: history, determinism, quick mode, NaN guard, checkpoints, budget."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from deepul_helpers import config
from deepul_helpers.models.baseline import IndependentCategorical
from deepul_helpers.train import TrainingDiverged, fit


def _data(n=300, d=4, levels=5, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(levels), size=d)  # (D, K)
    x = np.stack([rng.choice(levels, size=n, p=p[i]) for i in range(d)], axis=1).astype(np.int64)
    return x[: n * 4 // 5], x[n * 4 // 5 :]


class MLPDensity(torch.nn.Module):
    """A small model with random initialisation and a noisy loss, for determinism checks.

    Built with ``seed=``: the initialisation is part of what the seed must fix."""

    def __init__(self, d=4, levels=5, seed=0):
        super().__init__()
        config.seed_everything(seed)
        self.d, self.levels = d, levels
        self.net = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.ReLU(), torch.nn.Linear(32, d * levels))

    def loss(self, x):
        logits = self.net(torch.zeros(len(x), self.d)).view(len(x), self.d, self.levels)
        noise = 1e-3 * torch.randn_like(logits)  # uses the seeded torch RNG
        return torch.nn.functional.cross_entropy((logits + noise).transpose(1, 2), x)


def test_history_contract(clean_quick_env):
    train, test = _data()
    h = fit(IndependentCategorical(4, 5), train, test, epochs=3, lr=0.05, batch_size=32, seed=1)
    per_epoch = math.ceil(len(train) / 32)
    assert h.epochs == 3 and h.iterations == 3 * per_epoch
    assert h.train_losses.shape == (3 * per_epoch,)
    assert h.test_losses.shape == (4,)  # before training + after each epoch
    # before training the model is uniform: exactly log(levels) nats per dimension
    assert h.test_losses[0] == pytest.approx(math.log(5), abs=1e-6)
    assert h.test_losses[-1] < h.test_losses[0]
    assert h.wall_time_s > 0 and h.device == "cpu" and not h.quick


def test_same_seed_bit_identical_and_other_seed_differs(clean_quick_env):
    train, test = _data()
    a = fit(MLPDensity(seed=3), train, test, epochs=2, batch_size=16, seed=3)
    b = fit(MLPDensity(seed=3), train, test, epochs=2, batch_size=16, seed=3)
    c = fit(MLPDensity(seed=4), train, test, epochs=2, batch_size=16, seed=4)
    assert np.array_equal(a.train_losses, b.train_losses)
    assert np.array_equal(a.test_losses, b.test_losses)
    assert not np.array_equal(a.train_losses, c.train_losses)


@pytest.mark.parametrize("switch", ["argument", "DEEPUL_QUICK", "NBGRADER_EXECUTION"])
def test_quick_mode_switches(clean_quick_env, switch):
    train, test = _data(n=2000)
    quick = None
    if switch == "argument":
        quick = True
    else:
        clean_quick_env.setenv(switch, "1")
    assert config.is_quick(quick)
    h = fit(IndependentCategorical(4, 5), train, test, epochs=50, batch_size=16, quick=quick)
    assert h.quick
    assert h.epochs == config.QUICK_MAX_EPOCHS
    assert h.iterations == config.QUICK_MAX_EPOCHS * config.QUICK_MAX_ITERS_PER_EPOCH
    assert len(h.test_losses) == config.QUICK_MAX_EPOCHS + 1


def test_quick_is_off_by_default_and_false_does_not_override_env(clean_quick_env):
    assert not config.is_quick()
    assert not config.is_quick(False)
    clean_quick_env.setenv("DEEPUL_QUICK", "1")
    assert config.is_quick(False)  # the grader's environment wins over a notebook's parameters
    clean_quick_env.setenv("DEEPUL_QUICK", "0")
    assert not config.is_quick()
    assert config.pick(100, 3) == 100 and config.pick(100, 3, quick=True) == 3


class BlowsUp(torch.nn.Module):
    def __init__(self, at):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.at, self.calls = at, 0

    def loss(self, x):
        self.calls += 1
        if self.calls - 1 >= self.at:
            return self.w * float("nan")
        return (self.w - 2.0) ** 2 + 1.0


def test_nan_guard_names_iteration_and_last_finite_loss(clean_quick_env):
    train, _ = _data()
    model = BlowsUp(at=3)
    with pytest.raises(TrainingDiverged) as err:
        fit(model, train, None, epochs=2, batch_size=16, lr=0.1)
    msg = str(err.value)
    assert "iteration 3" in msg and "last finite loss" in msg and "iteration 2" in msg
    assert model.w.grad is None or torch.isfinite(model.w).all()  # no update with a NaN


def test_checkpoint_resume_equals_straight_run(tmp_path, clean_quick_env):
    train, test = _data()
    straight = fit(MLPDensity(seed=7), train, test, epochs=4, batch_size=16, seed=7)
    ckpt = tmp_path / "run.pt"
    first = fit(MLPDensity(seed=7), train, test, epochs=2, batch_size=16, seed=7, checkpoint=ckpt)
    assert first.epochs == 2 and ckpt.exists()
    resumed = fit(MLPDensity(seed=7), train, test, epochs=4, batch_size=16, seed=7, checkpoint=ckpt)
    assert resumed.epochs == 4
    assert np.array_equal(resumed.train_losses, straight.train_losses)
    assert np.array_equal(resumed.test_losses, straight.test_losses)
    with pytest.raises(ValueError, match="seed"):
        fit(MLPDensity(), train, test, epochs=5, batch_size=16, seed=8, checkpoint=ckpt)
    old = tmp_path / "old.pt"
    torch.save({"model": {}, "seed": 7, "epoch": 1}, old)  # the layout before the validation split
    with pytest.raises(ValueError, match="older version"):
        fit(MLPDensity(seed=7), train, test, epochs=4, batch_size=16, seed=7, checkpoint=old)


class Sleepy(IndependentCategorical):
    def loss(self, x):
        time.sleep(0.01)  # wall time without CPU time
        return super().loss(x)


def test_budget_stops_training(clean_quick_env):
    train, test = _data(n=5000)
    h = fit(Sleepy(4, 5), train, test, budget_s=0.3, batch_size=8)
    assert h.stopped_by_budget
    assert 1 <= h.iterations < 100
    assert len(h.test_losses) == h.epochs + 1


def test_step_hook_records_returned_losses(clean_quick_env):
    train, _ = _data()
    seen = []

    def step(model, batch, optimizer, iteration):
        seen.append(iteration)
        return {"loss": float(iteration), "critic": -float(iteration)}

    h = fit(IndependentCategorical(4, 5), train, None, epochs=1, batch_size=60, step=step)
    assert seen == list(range(h.iterations))
    assert np.array_equal(h.train_losses, np.arange(h.iterations, dtype=float))
    assert np.array_equal(h.train_extra["critic"], -np.arange(h.iterations, dtype=float))


@pytest.mark.parametrize(
    "kwargs, match",
    [({}, "epochs"), ({"epochs": -1}, "epochs"), ({"epochs": 1, "batch_size": 0}, "batch_size"),
     ({"epochs": 1, "device": "cuda:7" if not torch.cuda.is_available() else "tpu"}, "device|CUDA"),
     ({"epochs": 1, "optimizer": "lbfgs2"}, "optimizer"), ({"epochs": 1, "seed": -3}, "seed")],
)
def test_bad_arguments_have_clear_errors(kwargs, match, clean_quick_env):
    train, test = _data()
    with pytest.raises((ValueError, RuntimeError, TypeError), match=match):
        fit(IndependentCategorical(4, 5), train, test, **kwargs)


def test_device_auto_is_cpu_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert config.resolve_device("auto").type == expected


def test_cosine_schedule_decays_lr_to_zero_over_the_epochs(clean_quick_env):
    train, _ = _data(n=400)
    seen = []

    def step(model, batch, optimizer, iteration):
        seen.append(optimizer.param_groups[0]["lr"])
        return 0.0

    h = fit(IndependentCategorical(4, 5), train, None, epochs=2, lr=0.1, batch_size=32, step=step,
            lr_schedule="cosine")
    total = h.iterations
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * i / total)) for i in range(total)]
    assert seen == pytest.approx(expected)
    with pytest.raises(ValueError, match="lr_schedule"):
        fit(IndependentCategorical(4, 5), train, None, epochs=1, lr_schedule="step")


def test_cosine_schedule_keeps_each_groups_own_starting_rate(clean_quick_env):
    """A GAN's discriminator starting at 4x the generator's rate (TTUR) stays at 4x along the cosine."""
    from deepul_helpers.models import implicit

    train = torch.randn(512, 2)
    seen = []

    def step(model, batch, optimizer, iteration):
        seen.append((optimizer.g.param_groups[0]["lr"], optimizer.d.param_groups[0]["lr"]))
        return 0.0

    h = fit(implicit.mlp_gan(2, hidden=8, layers=1), train, None, epochs=2, lr=1e-3, batch_size=64, step=step,
            optimizer=implicit.gan_optimizer(lr_d=4e-3), lr_schedule="cosine")
    cos = [0.5 * (1 + math.cos(math.pi * i / h.iterations)) for i in range(h.iterations)]
    assert [g for g, _ in seen] == pytest.approx([1e-3 * c for c in cos])
    assert [d for _, d in seen] == pytest.approx([4e-3 * c for c in cos])


def test_evaluate_is_the_test_loss_fit_reports(clean_quick_env):
    train, test = _data()
    config.seed_everything(0)
    model = IndependentCategorical(4, 5)
    h = fit(model, train, test, epochs=2, lr=0.05, batch_size=32)
    from deepul_helpers.train import evaluate

    assert evaluate(model, test) == pytest.approx(h.test_losses[-1], rel=1e-12)


def test_validation_split_is_seeded_disjoint_and_never_trained_on(clean_quick_env):
    from deepul_helpers.train import split_validation

    keep, held = split_validation(100, 0.2, seed=3)
    assert len(held) == 20 and len(keep) == 80
    assert sorted(torch.cat([keep, held]).tolist()) == list(range(100))  # disjoint, nothing lost
    assert torch.equal(held, split_validation(100, 0.2, seed=3)[1])
    assert not torch.equal(held, split_validation(100, 0.2, seed=4)[1])
    x = torch.arange(100)
    seen = set()

    def step(model, batch, optimizer, iteration):
        seen.update(batch.tolist())
        return 0.0

    h = fit(IndependentCategorical(1, 100), x, None, epochs=3, batch_size=7, step=step, seed=3, val_fraction=0.2)
    assert seen == set(keep.tolist())  # every training example seen, no validation example
    assert len(h.val_losses) == 4 and h.best_epoch is not None
    with pytest.raises(ValueError, match="val_fraction"):
        fit(IndependentCategorical(1, 100), x, None, epochs=1, val_fraction=1.0)


def test_keep_best_ends_with_the_epoch_of_lowest_validation_loss(clean_quick_env):
    """A step that sets the parameters by epoch (good in epoch 2, bad after) shows which ones fit keeps."""
    train, test = _data(n=400)
    counts = np.stack([np.bincount(train[:, d], minlength=5) for d in range(4)]) + 1.0
    good = torch.tensor(np.log(counts / counts.sum(1, keepdims=True)), dtype=torch.float32)
    per_epoch = math.ceil(len(train) * 0.75 / 40)

    def step(model, batch, optimizer, iteration):
        epoch = iteration // per_epoch
        with torch.no_grad():
            model.logits.copy_(good if epoch == 1 else good * (epoch + 2.0))  # sharper = overfit
        return 0.0

    model = IndependentCategorical(4, 5)
    h = fit(model, train, test, epochs=4, batch_size=40, step=step, val_fraction=0.25, seed=5)
    assert h.best_epoch == 2 and int(np.argmin(h.val_losses)) == 2
    assert torch.equal(model.logits.detach(), good)
    from deepul_helpers.train import evaluate, split_validation

    _, held = split_validation(len(train), 0.25, seed=5)
    assert evaluate(model, train[held.numpy()]) == pytest.approx(h.val_losses[2], rel=1e-9)
    assert h.test_losses[2] == pytest.approx(evaluate(model, test), rel=1e-9)  # test loss of the kept model
    last = IndependentCategorical(4, 5)
    h = fit(last, train, test, epochs=4, batch_size=40, step=step, val_fraction=0.25, seed=5, keep_best=False)
    assert h.best_epoch is None and torch.equal(last.logits.detach(), good * 5.0)  # the last epoch's


def test_checkpoint_resume_with_validation_equals_straight_run(tmp_path, clean_quick_env):
    train, test = _data()
    kw = dict(batch_size=16, seed=7, val_fraction=0.2)
    straight_model = MLPDensity(seed=7)
    straight = fit(straight_model, train, test, epochs=4, **kw)
    ckpt = tmp_path / "run.pt"
    fit(MLPDensity(seed=7), train, test, epochs=2, checkpoint=ckpt, **kw)
    model = MLPDensity(seed=7)
    resumed = fit(model, train, test, epochs=4, checkpoint=ckpt, **kw)
    assert np.array_equal(resumed.val_losses, straight.val_losses) and resumed.best_epoch == straight.best_epoch
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), straight_model.state_dict().values()))


def test_history_as_dict_is_json_and_keeps_train_extra(clean_quick_env):
    import json

    train, _ = _data()
    h = fit(IndependentCategorical(4, 5), train, None, epochs=1, batch_size=60,
            step=lambda m, b, o, i: {"loss": 1.0, "critic": float(i)})
    d = json.loads(json.dumps(h.as_dict()))
    assert d["train_extra"]["critic"] == list(range(h.iterations))
    assert d["cpu_time_s"] >= 0 and d["val_losses"] == [] and d["best_epoch"] is None


def test_cpu_budget_ignores_time_spent_waiting(clean_quick_env):
    train, _ = _data(n=400)
    wall = fit(Sleepy(4, 5), train, None, epochs=1, budget_s=0.2, batch_size=8)
    cpu = fit(Sleepy(4, 5), train, None, epochs=1, budget_s=0.2, batch_size=8, budget_clock="cpu")
    assert wall.stopped_by_budget and wall.iterations < 40
    assert not cpu.stopped_by_budget and cpu.iterations == 40
    with pytest.raises(ValueError, match="budget_clock"):
        fit(Sleepy(4, 5), train, None, budget_s=1, budget_clock="gpu")


def test_threads_come_from_one_place(monkeypatch, clean_quick_env):
    monkeypatch.delenv("DEEPUL_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert config.threads() == 1  # the default: no oversubscription on a shared machine
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert config.threads() == 3
    monkeypatch.setenv("DEEPUL_THREADS", "2")
    assert config.threads() == 2  # the course's own setting wins
    monkeypatch.setenv("DEEPUL_THREADS", "two")
    with pytest.raises(ValueError, match="DEEPUL_THREADS"):
        config.threads()
    monkeypatch.setenv("DEEPUL_THREADS", "1")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        train, _ = _data()
        fit(IndependentCategorical(4, 5), train, None, epochs=1)
        assert torch.get_num_threads() == 1  # fit trains on config's threads
    finally:
        torch.set_num_threads(before)
