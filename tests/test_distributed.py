"""SimCLR's negatives gathered across processes: 2 gloo processes, each on its own half of a batch,
give the same gradients, and the same parameters after a few Adam steps, as 1 process on the
concatenated batch. The same run with a gather whose backward keeps only the local gradient (the
widely copied bug) must differ: that is checked too, so this test cannot pass with a broken gather.
The processes rendezvous through a file (no network beyond the machine) and finish in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from deepul_helpers import config
from deepul_helpers.models.selfsupervised import SimCLR, distributed
from deepul_helpers.models.selfsupervised import simclr as simclr_module

REPO = Path(__file__).resolve().parents[1]
WORLD, PER_RANK, STEPS = 2, 4, 3


class FixedViewsSimCLR(SimCLR):
    """Two deterministic, different views (the image and its mirror): every process sees exactly the
    views the single process sees for the same examples, so any difference is the gather's."""

    def views(self, x):
        u = self.encoder.to_views(x).double()
        return u, u.flip(-1)


def _model():
    config.seed_everything(0)
    return FixedViewsSimCLR(width=4, features=8, projection=6).double()


def _global_batch():
    """Digit-sized images (8, 8, 1) with 17 levels, different on each rank."""
    return torch.randint(0, 17, (WORLD * PER_RANK, 8, 8, 1), generator=torch.Generator().manual_seed(1))


class _LocalOnlyGather(torch.autograd.Function):
    """The bug: the forward gathers, the backward returns this process's rows of its own gradient only."""

    @staticmethod
    def forward(ctx, t):
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        b = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * b:(dist.get_rank() + 1) * b]


def _broken_gather(t):
    return _LocalOnlyGather.apply(t), dist.get_rank() * t.shape[0]


def _run(x):
    """Gradients of one step, then parameters after STEPS Adam steps, with ``distributed.step``."""
    model = _model()
    model.zero_grad()
    model.loss(x).backward()
    distributed.average_gradients(model)
    grads = [p.grad.clone() for p in model.parameters()]
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = [float(distributed.step(model, x, opt, i)) for i in range(STEPS)]
    return grads, [p.detach().clone() for p in model.parameters()], losses


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        x = distributed.shard(_global_batch(), rank, WORLD)
        result = {"correct": _run(x)}
        simclr_module.gather_with_grad = _broken_gather  # the mutation, inside this process only
        result["broken"] = _run(x)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    d = tmp_path_factory.mktemp("gloo")
    mp.start_processes(_worker, args=(str(d / "rendezvous"), str(d)), nprocs=WORLD, join=True, start_method="spawn")
    return [torch.load(d / f"rank{r}.pt") for r in range(WORLD)]


def test_two_processes_give_the_gradients_and_parameters_of_one_process_on_the_whole_batch(ranks):
    assert not distributed.is_active()  # the reference below runs without a process group
    ref_grads, ref_params, ref_losses = _run(_global_batch())
    for r in ranks:
        grads, params, losses = r["correct"]
        for g, ref in zip(grads, ref_grads):
            torch.testing.assert_close(g, ref, rtol=1e-9, atol=1e-12)
        for p, ref in zip(params, ref_params):
            torch.testing.assert_close(p, ref, rtol=1e-7, atol=1e-9)
        assert losses == pytest.approx(ref_losses, rel=1e-10)  # step returns the global batch's loss


def test_a_gather_without_the_summed_backward_is_caught(ranks):
    ref_grads, ref_params, _ = _run(_global_batch())
    for r in ranks:
        grads, params, _ = r["broken"]
        worst = max(float((g - ref).abs().max() / ref.abs().max()) for g, ref in zip(grads, ref_grads))
        assert worst > 1e-3, "the broken gather gave the right gradients: this test could not catch it"
        assert any(not torch.allclose(p, ref, rtol=1e-7, atol=1e-9) for p, ref in zip(params, ref_params))


@pytest.mark.slow
def test_the_documented_torchrun_command_trains_on_two_processes(tmp_path):
    out = tmp_path / "simclr.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "deepul_helpers.models.selfsupervised.distributed", "--quick", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    result = json.loads(out.read_text())
    assert result["world_size"] == 2 and result["global_batch"] == 256 and result["iterations"] > 0
    assert set(result["probe"]) == {"linear@1", "linear@10", "linear@all"}
