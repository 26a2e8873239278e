"""The homework kit (``homework/kit.py``) and the verdict kit (``autograde/verdict.py``) on small inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepul_helpers.autograde import verdict as V
from deepul_helpers.homework import kit

ROW = kit.Expected("q1", "1d_a", loss=2.6271, tol=0.02, seconds=5, variant="histogram")


def test_expected_rows_key_entropy_markdown_and_table_checks():
    from deepul_helpers import data

    assert ROW.key == "q1/1d_a/histogram" and kit.Expected("q3", "digits", 1.46, 0.1, 90).key == "q3/digits"
    assert ROW.entropy == data.info("1d_a").entropy  # from the registry, never typed twice
    assert ROW.markdown() == "- `1d_a`, histogram: **2.627 nats/dim** (± 0.020), about 5 s"
    assert kit.markdown(kit.table(ROW), "q1").endswith(ROW.markdown())
    with pytest.raises(ValueError, match="appears twice"):
        kit.table(ROW, ROW)
    with pytest.raises(ValueError, match="loss > tol"):
        kit.table(kit.Expected("q1", "1d_a", loss=0.01, tol=0.02, seconds=1))


def test_quick_mode_is_resolved_by_config_only(monkeypatch, tmp_path, capsys):
    """A run whose quick mode comes from the environment is reported as quick, never as 'outside
    the tolerance' (the report used the raw ``quick`` flag before the kit)."""
    monkeypatch.setenv("DEEPUL_QUICK", "1")
    run = kit.start("hw1_autoregressive", quick=False, out=tmp_path)
    assert run.quick is True and run.out == tmp_path
    line = run.report(ROW, 3.5)
    assert "quick mode" in line and "outside" not in line
    monkeypatch.delenv("DEEPUL_QUICK")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    run = kit.start("hw1_autoregressive", quick=None, out=tmp_path)
    assert run.quick is False
    assert "outside the tolerance" in run.report(ROW, 3.5)
    assert "outside" not in run.report(ROW, 2.62) and "true entropy" in capsys.readouterr().out


def test_call_passes_the_settings_times_and_states_the_contract(tmp_path):
    run = kit.start("hw9_x", quick=True, seed=3, device="cpu", out=tmp_path)
    seen = {}

    def q1_fit(a, *, quick, seed, device):
        seen.update(quick=quick, seed=seed, device=device)
        return [3.0, 2.0], torch.tensor([3.0, 2.5]), np.ones(4) / 4

    res = run.call(q1_fit, 1, returns=("train_losses", "test_losses", "probs"))
    assert seen == {"quick": True, "seed": 3, "device": "cpu"} and res.seconds >= 0
    assert res.test.dtype == np.float64 and list(res.train) == [3.0, 2.0] and res["probs"].shape == (4,)
    contract = r"q1_fit must return a tuple \(train_losses, test_losses, probs\); got a tuple of 2"
    with pytest.raises(TypeError, match=contract):
        run.call(lambda *a, **k: ([1.0], [2.0, 1.0]), returns=("train_losses", "test_losses", "probs"), label="q1_fit")
    with pytest.raises(ValueError, match="epochs \\+ 1"):
        run.call(lambda *a, **k: ([1.0], [2.0], None), returns=("train_losses", "test_losses", "x"))
    with pytest.raises(ValueError, match="NaN"):
        kit.check_losses([1.0, np.nan], [2.0, 1.0], "q1_fit")
    assert run.call(lambda d, n=0: d * 2, 4, returns=("twice",), settings=False)["twice"] == 8


def test_check_levels_and_save(tmp_path):
    with pytest.raises(TypeError, match="integer levels"):
        kit.check_levels(np.zeros((2, 2), dtype=np.float32), (2, 2), 3, "samples")
    with pytest.raises(ValueError, match="0..2"):
        kit.check_levels(np.full((2, 2), 3), (2, 2), 3, "samples")
    with pytest.raises(ValueError, match="expected shape \\(4, N\\)"):
        kit.check_levels(np.zeros((2, 2), dtype=np.int64), (4, None), 3, "samples")
    run = kit.start("hw9_x", quick=True, out=tmp_path)
    res = run.call(lambda **k: ([3.0, 2.0], [3.0, 2.5]), returns=("train_losses", "test_losses"))
    assert run.save(kit.curves(res, ROW, kit.image_panel(np.zeros((4, 2, 2, 1)), 2, "x")), "a.png").is_file()


def test_verdict_hidden_inputs_array_and_seed():
    a, b = V.hidden_rng(7, 1, 2).normal(size=3), V.hidden_rng(7, 1, 2).normal(size=3)
    assert np.array_equal(a, b) and not np.array_equal(a, V.hidden_rng(7, 1, 3).normal(size=3))
    assert V.array(torch.ones(2, dtype=torch.float32, requires_grad=True)).dtype == np.float32
    assert V.array(torch.ones(2, dtype=torch.uint8)).dtype == np.uint8
    assert V.array(torch.tensor([0.1], dtype=torch.float32), np.float64)[0] == np.float64(np.float32(0.1))
    assert V.fit_seed(20261124) == 124
    outs = V.fit_outputs("f", ([1, 2], torch.ones(2), np.zeros(2, np.uint8)), "s")
    assert outs["f_s"].dtype == np.uint8 and outs["f_test"].dtype == np.float32 and outs["f_train"].dtype.kind == "i"
    assert V.fit_outputs("f", ([1, 2], torch.ones(2)), dtype=np.float64)["f_train"].dtype == np.float64


def test_checks_accumulate_points_and_messages():
    out = {"z": np.array([1.0, 2.0]), "bad_error": "ValueError"}
    c = V.Checks(out)
    assert c.check(0.25, V.close(out, "z", [1.0, 2.0], atol=1e-9), "z: {why}")
    assert not c.check(0.5, V.close(out, "z", [1.0, 3.0], atol=1e-9), "z: {why}")
    assert c.raised("bad", "f", " in quick mode") and not c.raised("z", "z")
    c.check(0.25, True, "never shown")
    assert c.result() == (0.5, ["z: differs from the reference (largest error 1)", "f raised ValueError in quick mode"])


def test_verdict_checks_losses_shapes_levels_and_grid_mass():
    good = {"f_train": np.array([2.0, 1.0]), "f_test": np.array([2.0, 1.5])}
    assert V.losses_ok(good, "f") == (True, "")
    assert "go down" in V.losses_ok({**good, "f_test": np.array([1.0, 2.0])}, "f")[1]
    assert V.losses_ok({**good, "f_test": np.array([1.0, 2.0])}, "f", decreasing=False)[0]
    assert not V.losses_ok({**good, "f_train": np.array([1, 2])}, "f")[0]  # integer losses
    assert V.levels_ok(np.array([[0, 2]]), (1, 2), 3) and not V.levels_ok(np.array([[0, 3]]), (1, 2), 3)
    assert not V.levels_ok(np.array([[0.0, 1.0]]), (1, 2), 3)
    assert V.shape_ok(np.zeros((2, 2), np.float32), (2, 2), "f") and not V.shape_ok(np.full(2, np.nan), (2,))
    normal = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    assert V.grid_mass(normal.log_prob) == pytest.approx(1.0, abs=1e-4)


def test_error_name_reports_only_the_interpreters_own_exception_classes():
    """A probe reports a failure by its builtin class name only; a student class posing as a builtin
    (``__module__ = "builtins"``, put into ``builtins``) could carry hidden inputs in its name."""
    import builtins

    from deepul_helpers.autograde.verdict import error_name

    leak = type("Leak_0_123", (ValueError,), {"__module__": "builtins"})
    builtins.Leak_0_123 = leak
    try:
        assert error_name(leak()) == "ValueError"
        assert error_name(type("Exception_secret", (Exception,), {})()) == "Exception"
    finally:
        del builtins.Leak_0_123
    assert [error_name(e) for e in (KeyError(), FileNotFoundError(), ZeroDivisionError())] == [
        "KeyError", "FileNotFoundError", "ZeroDivisionError"]
