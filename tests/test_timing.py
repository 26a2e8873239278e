"""deepul_helpers.timing: exact statistics on a scripted clock, and the real clocks on calls whose
cost is known (a sleep costs wall time but no CPU time; a spin costs CPU time)."""

from __future__ import annotations

import time

import pytest
import torch

from deepul_helpers import timing


class ScriptedClock:
    """Stands in for the ``time`` module: each call of ``fn`` advances wall and CPU clocks by the
    next scripted durations, so every statistic has an exact expected value."""

    def __init__(self, walls, cpus):
        self.walls, self.cpus = list(walls), list(cpus)
        self.wall = self.cpu = 0.0
        self.calls = 0

    def perf_counter(self):
        return self.wall

    def process_time(self):
        return self.cpu

    def fn(self, value=None):
        self.wall += self.walls[self.calls]
        self.cpu += self.cpus[self.calls]
        self.calls += 1
        return (self.calls, value)


def test_best_of_statistics_are_exact_on_a_scripted_clock(monkeypatch):
    # warm-up (10 s, never counted), then repeats of 4, 1, 3, 2, 8 seconds
    clock = ScriptedClock([10.0, 4.0, 1.0, 3.0, 2.0, 8.0], [9.0, 3.0, 0.5, 3.0, 2.0, 1.0])
    monkeypatch.setattr(timing, "time", clock)
    t = timing.best_of(clock.fn, "x", repeats=5, warmup=1)
    assert clock.calls == 6
    assert t.times_s == (4.0, 1.0, 3.0, 2.0, 8.0)
    assert (t.best_s, t.median_s, t.worst_s, t.repeats) == (1.0, 3.0, 8.0, 5)
    assert t.spread == pytest.approx(7.0)  # (8 - 1) / 1
    assert t.cpu_best_s == 0.5  # the CPU time of the fastest repeat, not the smallest CPU time
    assert t.result == (6, "x")  # the last call's result, arguments passed through
    assert t.describe() == "best of 5: 1 s (median 3 s, spread 700%)"


def test_best_of_divides_by_the_number_of_calls_per_repeat(monkeypatch):
    clock = ScriptedClock([0.001] * 2 + [0.002] * 4 + [0.003] * 4, [0.0] * 10)
    monkeypatch.setattr(timing, "time", clock)
    t = timing.best_of(clock.fn, repeats=2, warmup=2, number=4)
    assert clock.calls == 2 + 2 * 4
    assert t.times_s == pytest.approx((0.002, 0.003))
    assert t.describe() == "best of 2, 4 calls each: 2 ms (median 2.5 ms, spread 50%)"
    assert t.describe(unit="us") == "best of 2, 4 calls each: 2000 us (median 2500 us, spread 50%)"


def test_timed_returns_result_wall_and_cpu(monkeypatch):
    clock = ScriptedClock([2.5], [0.25])
    monkeypatch.setattr(timing, "time", clock)
    result, wall, cpu = timing.timed(clock.fn, value=7)
    assert (result, wall, cpu) == ((1, 7), 2.5, 0.25)


def test_a_sleep_costs_wall_time_but_almost_no_cpu_time():
    r = timing.timed(time.sleep, 0.05)
    assert r.result is None
    assert r.wall_s >= 0.05  # a sleep never returns early
    assert r.cpu_s < 0.03  # sleeping does not use the CPU, however loaded the machine is


def _spin(cpu_seconds):
    """Busy-loop until this process has used ``cpu_seconds`` of CPU time."""
    end = time.process_time() + cpu_seconds
    n = 0
    while time.process_time() < end:
        n += 1
    return n


def test_a_spin_costs_its_cpu_time_and_at_least_as_much_wall_time():
    r = timing.timed(_spin, 0.04)
    assert r.result > 0
    assert r.cpu_s >= 0.04
    assert r.wall_s >= r.cpu_s - 0.005  # one thread cannot use more CPU than elapsed time (clock granularity)
    t = timing.best_of(time.sleep, 0.02, repeats=3, warmup=0)
    assert t.repeats == 3 and t.best_s >= 0.02 and t.median_s >= t.best_s and t.spread >= 0
    assert max(t.cpu_times_s) < 0.02


def test_bad_arguments_say_what_to_pass():
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        timing.best_of(print, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        timing.best_of(print, warmup=-1)
    with pytest.raises(TypeError, match="callable"):
        timing.timed(3)
    with pytest.raises(ValueError, match="unit"):
        timing.best_of(time.sleep, 0, repeats=1).describe(unit="h")


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with timing.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n must be"):
        with timing.torch_threads(0):
            pass


def test_compare_interleaves_and_keeps_each_functions_statistics(monkeypatch):
    # warm-up a, b (never counted), then a, b, a, b, a, b
    clock = ScriptedClock([5.0, 5.0, 3.0, 1.0, 2.0, 0.5, 4.0, 0.75], [1.0, 1.0, 3.0, 0.25, 1.0, 0.5, 4.0, 0.5])
    monkeypatch.setattr(timing, "time", clock)
    order = []

    def make(name):
        return lambda: order.append(name) or clock.fn(name)

    ts = timing.compare({"a": make("a"), "b": make("b")}, repeats=3, warmup=1)
    assert order == ["a", "b"] * 4
    assert ts["a"].times_s == (3.0, 2.0, 4.0) and ts["b"].times_s == (1.0, 0.5, 0.75)
    assert ts["a"].best_s / ts["b"].best_s == 4.0
    assert ts["a"].cpu_min_s == 1.0 and ts["b"].cpu_min_s == 0.25
    assert ts["b"].result == (8, "b")
    with pytest.raises(TypeError, match="dict"):
        timing.compare([print])


def test_sweep_keeps_the_least_cpu_or_the_best_wall_time_per_size(monkeypatch):
    # x = 1: warm-up a, b; then a, b, a, b.  x = 2: the same pattern
    walls = [9, 9, 4.0, 2.0, 3.0, 1.0] + [9, 9, 8.0, 4.0, 6.0, 5.0]
    cpus = [9, 9, 1.0, 0.5, 2.0, 0.25] + [9, 9, 3.0, 2.0, 2.5, 1.5]
    clock = ScriptedClock(walls, cpus)
    monkeypatch.setattr(timing, "time", clock)
    make = lambda x: {"a": clock.fn, "b": clock.fn}  # noqa: E731
    assert timing.sweep([1, 2], make, repeats=2) == {"a": [1.0, 2.5], "b": [0.25, 1.5]}
    clock = ScriptedClock(walls, cpus)
    monkeypatch.setattr(timing, "time", clock)
    assert timing.sweep([1, 2], lambda x: {"a": clock.fn, "b": clock.fn}, repeats=2, clock="wall") == {
        "a": [3.0, 6.0], "b": [1.0, 4.0]}
    with pytest.raises(ValueError, match="clock"):
        timing.sweep([1], make, clock="gpu")
