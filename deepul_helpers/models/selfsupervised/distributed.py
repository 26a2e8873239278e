"""Negatives shared across processes: SimCLR under ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Each process holds B examples of the global batch of N = W * B (W processes). To contrast every
anchor against all 2N views, each process gathers the embeddings of all processes. The gather
must be **differentiable**: the loss on process r depends on the embeddings made on process s, so
the gradient reaching process s's embeddings is the sum over r of d loss_r / d z_s. Its backward
therefore all-reduces (sums) the incoming gradient and keeps its own rows. (A gather whose
backward only keeps the local rows of the local gradient, without the sum, drops every cross-
process term; with identical data on every rank the error hides, with different data it shows.)
After backward, gradients are averaged over processes (``average_gradients``): the result is the
gradient of the loss of one process on the concatenated global batch (tests/test_distributed.py).

Train SimCLR on 2 local processes (each gets an equal contiguous shard of the training split;
``--batch-size`` is per process, the global batch is W times larger):

    torchrun --standalone --nproc_per_node 2 -m deepul_helpers.models.selfsupervised.distributed --epochs 30

(``--standalone`` rendezvous on this machine at a free port; ``--quick`` for a few iterations.)

and on several machines, the same on each with its node rank and a reachable address:

    torchrun --nnodes 2 --node_rank R --nproc_per_node 2 --master_addr HOST --master_port 29500 \\
        -m deepul_helpers.models.selfsupervised.distributed --epochs 30
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist


def is_active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):  # (B, D) -> (W * B, D), rank r's rows at r * B
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):  # (W * B, D) -> (B, D)
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every process's loss depends on our rows
        b = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * b:(dist.get_rank() + 1) * b]


def gather_with_grad(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All processes' ``t`` (B, ...) concatenated in rank order (W * B, ...), differentiable, and the
    row offset of this process's block. Outside a process group: ``(t, 0)``. Every process must
    call it with the same B."""
    if not is_active():
        return t, 0
    return _GatherWithGrad.apply(t), dist.get_rank() * t.shape[0]


def average_gradients(model: torch.nn.Module) -> None:
    """Average every parameter's gradient over the processes (what DistributedDataParallel does)."""
    if not is_active():
        return
    w = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= w


def step(model, batch, optimizer, iteration):
    """``fit(..., step=distributed.step)``: one update with gradients averaged over processes;
    returns the loss averaged over processes (the loss of the global batch)."""
    optimizer.zero_grad(set_to_none=True)
    loss = model.loss(batch)
    loss.backward()
    average_gradients(model)
    optimizer.step()
    value = loss.detach().clone()
    if is_active():
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def shard(x, rank: int, world: int):
    """Rank ``rank``'s equal contiguous share of ``x`` (the remainder of len(x) / world is dropped)."""
    m = len(x) // world
    return x[rank * m:(rank + 1) * m]


def main(argv=None) -> dict:
    """Train SimCLR on ``--data`` in every process of the group; rank 0 probes and writes the result."""
    from deepul_helpers import config, data
    from deepul_helpers.metrics import probes
    from deepul_helpers.train import fit

    from .simclr import SimCLR

    ap = argparse.ArgumentParser(description="SimCLR with negatives gathered across processes (run under torchrun)")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=128, help="per process; the global batch is W times larger")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="out/simclr_distributed.json")
    args = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    try:
        x = data.load(args.data)
        inf = data.info(args.data)
        config.seed_everything(args.seed)  # the same initial weights in every process
        model = SimCLR(inf.shape, inf.levels, seed=args.seed * 1000 + rank)  # different views per process
        hist = fit(model, shard(x, rank, world), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                   seed=args.seed, device=device, quick=args.quick, step=step, progress=rank == 0)
        result = {"world_size": world, "global_batch": world * args.batch_size, "iterations": hist.iterations,
                  "train_s": hist.wall_time_s, "final_loss": float(hist.train_losses[-1])}
        if rank == 0:
            xtr, ytr = data.load(args.data, labels=True)
            xte, yte = data.load(args.data, "test", labels=True)
            rows = probes.probe(probes.embed(model, xtr), ytr, probes.embed(model, xte), yte)
            result["probe"] = probes.table(rows)  # "linear@10": "93.1 ± 1.2" (percent)
            result["probe_mean"] = {f"linear@{r['labels_per_class'] or 'all'}": r["mean"] for r in rows}
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(result, f, indent=1)
            print(json.dumps(result))
        return result
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
