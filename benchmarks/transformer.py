"""Nanda's transformer as an ensemble: speed against one-at-a-time runs, arithmetic rate, peak memory (issue 12).

    python benchmarks/transformer.py [--device cpu] [--steps-small 20] [--steps-large 3]

One run measures, on the same machine:

1. peak      float32 ``torch.mm`` of two 2048 x 2048 matrices, best of 5 after warm-up: the machine's
             matrix-multiply rate in GFLOP/s.
2. overhead  where per-operation overhead matters (p = 23 and 59, train fraction 0.3, full batch): an
             8-member sweep (weight decays x seeds) trained as one ensemble with the vmap engine against
             the same 8 members trained one after the other with the loop engine (plain autograd on the
             module, as a training script would). ``train.run`` both ways, logging at the first and
             last step only; time per member-step and the ratio (loop / ensemble). The bound: the
             one-at-a-time time over the ensemble's matrix-product kernels alone (``torch.profiler`` self
             time of mm/bmm/addmm in the ensemble's gradient, CPU only): no faster ensemble of the same
             products exists.
3. rate      where the products are large (p = 113, full batch): the 8-member ensemble's training step
             (gradient and AdamW update; vmap engine) against the peak of section 1. The FLOPs are not
             estimated: ``torch.utils.flop_counter.FlopCounterMode`` counts the matrix products of one
             member's loss and backward pass (loop engine), times 8.
4. memory    peak resident memory (VmHWM) of ``landscape train`` on the 8-member sweep at p = 113,
             full batch, 2 steps, in a fresh process: with ``--chunk 8`` (one ensemble) and ``--chunk 2``.

The targets of issue 12 are printed with the measured values at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from landscape.engine import optim
from landscape.experiments import train
from landscape.config.settings import TrainConfig
from landscape.engine.worker import Worker
from landscape.tasks import get_task

SWEEP = {"weight_decay": [0.3, 1.0], "seeds": [0, 1, 2, 3]}  # 8 members


def peak(device: str) -> float:
    a, b = (torch.randn(2048, 2048, device=device) for _ in range(2))
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(5):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048**3 / best / 1e9


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def config(p: int, steps: int, engine: str, device: str) -> TrainConfig:
    return TrainConfig(task="modular", task_options={"model": "transformer", "p": p, "train_fraction": 0.3},
                       lr=1e-3, betas=[0.9, 0.98], steps=steps, log_every=steps, engine=engine, device=device,
                       **SWEEP)


def timed_run(cfg: TrainConfig, one_at_a_time: bool) -> float:
    task = get_task(cfg.task, cfg.task_options)
    plan = train.make_plan(cfg, task)
    groups = [[m] for m in plan.members] if one_at_a_time else [plan.members]
    train.run(plan, groups[0], train.fresh_state(plan, groups[0]))  # warm-up (same shapes)
    _sync(cfg.device)
    t0 = time.perf_counter()
    for g in groups:
        train.run(plan, g, train.fresh_state(plan, g))
    _sync(cfg.device)
    return time.perf_counter() - t0


MATMULS = {"aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"}


def matmul_floor(p: int, device: str, repeats: int = 5) -> float:
    """Seconds per member of the 8-member vmap gradient spent in matrix-product kernels (``torch.profiler``,
    self time of mm/bmm/addmm/baddbmm): what an ensemble step would cost if nothing else took time."""
    from torch.profiler import profile

    cfg = config(p, 1, "vmap", device)
    task = get_task(cfg.task, cfg.task_options)
    plan = train.make_plan(cfg, task)
    worker = Worker(task, plan.module, plan.layout, "vmap", device)
    theta = train.fresh_state(plan, plan.members).theta.to(device)
    worker.grad(theta)
    with profile() as prof:
        for _ in range(repeats):
            worker.grad(theta)
    self_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATMULS)
    return self_us / 1e6 / repeats / len(plan.members)


def member_flop(p: int) -> int:
    """Matrix-product FLOPs of one member's gradient at p (full batch), counted by torch."""
    task = get_task("modular", {"model": "transformer", "p": p, "train_fraction": 0.3})
    torch.manual_seed(0)
    model = task.model()
    with FlopCounterMode(display=False) as counter:
        task.loss(model(task.x_train), task.y_train).backward()
    return counter.get_total_flops()


def ensemble_step(p: int, steps: int, device: str, members: int = 8) -> float:
    """Seconds per training step (gradient + AdamW) of the first ``members`` of the sweep as one ensemble, vmap."""
    cfg = config(p, steps, "vmap", device)
    task = get_task(cfg.task, cfg.task_options)
    plan = train.make_plan(cfg, task)
    plan.members = plan.members[:members]
    worker = Worker(task, plan.module, plan.layout, "vmap", device)
    theta = train.fresh_state(plan, plan.members).theta.to(device)
    adam = optim.AdamState.zeros_like(theta)
    wd = torch.tensor([m.weight_decay for m in plan.members], device=device)[:, None]

    def step(theta, adam):
        grad, _ = worker.grad(theta)
        return optim.adamw_step(theta, grad, adam, cfg.lr, wd, tuple(cfg.betas))

    theta, adam = step(theta, adam)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        theta, adam = step(theta, adam)
    _sync(device)
    return (time.perf_counter() - t0) / steps


def peak_rss(chunk: int, device: str) -> float:
    """GiB of peak resident memory of ``landscape train`` on the 8-member sweep at p = 113, in its own process.

    Read as ``VmHWM`` of the child's ``/proc/self/status``: ``ru_maxrss`` would count the parent's pages
    (Linux carries it across fork and exec, so a child of this large process would report this one's peak).
    """
    with tempfile.TemporaryDirectory() as d:
        code = ("import sys; from landscape.cli import main; rc = main(sys.argv[1:]); "
                "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))); "
                "sys.exit(rc)")
        argv = ["train", "--task", "modular", "--task-opt", "model=transformer", "--weight-decay", "0.3,1",
                "--seeds", "0,1,2,3", "--steps", "2", "--chunk", str(chunk), "--device", device, "--quiet",
                "--out", os.path.join(d, "m.h5")]
        out = subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True, text=True)
        return int(out.stdout.strip().splitlines()[-1]) / 2**20  # kB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps-small", type=int, default=20, help="training steps per run at p = 23 and 59")
    ap.add_argument("--steps-large", type=int, default=3, help="timed ensemble steps at p = 113")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")

    rate = peak(args.device)
    print(f"\n1. peak: float32 matmul 2048^3: {rate:.1f} GFLOP/s")

    print("\n2. overhead: 8-member sweep, ensemble (vmap) against 8 one-at-a-time runs (loop), full batch")
    ratios, bounds = {}, {}
    for p in (23, 59):
        steps = args.steps_small
        ens = timed_run(config(p, steps, "vmap", args.device), one_at_a_time=False)
        one = timed_run(config(p, steps, "loop", args.device), one_at_a_time=True)
        per_ens, per_one = ens / (8 * steps) * 1e3, one / (8 * steps) * 1e3
        ratios[p] = per_one / per_ens
        gflop = member_flop(p) / 1e9  # per member-step: what each side would need at the peak rate
        floor = matmul_floor(p, args.device) * 1e3 if args.device == "cpu" else float("nan")
        bounds[p] = per_one / floor
        print(f"   p={p:3d}: ensemble {per_ens:7.2f} ms, one at a time {per_one:7.2f} ms per member-step; "
              f"ratio {ratios[p]:.2f}; matrix products at {gflop / per_ens * 1e3 / rate:.0%} and "
              f"{gflop / per_one * 1e3 / rate:.0%} of the peak; the ensemble's products alone take "
              f"{floor:.2f} ms per member-step (torch.profiler), so no ensemble of them beats {bounds[p]:.2f}x")

    flop = 8 * member_flop(113)
    sec = ensemble_step(113, args.steps_large, args.device)
    achieved = flop / sec / 1e9
    print(f"\n3. rate: p=113, 8 members, full batch: {sec:.3f} s per step, {flop / 1e9:.1f} GFLOP of matrix "
          f"products (FlopCounterMode) -> {achieved:.1f} GFLOP/s = {achieved / rate:.0%} of the peak")
    single = ensemble_step(113, args.steps_large, args.device, members=1)
    print(f"   one member (the grokking preset's run): {single:.3f} s per step, so its 10000 steps take about "
          f"{single * 10000 / 60:.0f} min plus logging")

    chunked, whole = peak_rss(2, args.device), peak_rss(8, args.device)
    print(f"\n4. memory: p=113, 8 members, full batch: peak RSS {whole:.2f} GiB with --chunk 8, "
          f"{chunked:.2f} GiB with --chunk 2")

    print("\ntargets (issue 12)")
    for p, r in ratios.items():
        print(f"   ensemble/loop speed-up at p={p}: {r:.2f} (target >= 3): {'PASS' if r >= 3 else 'FAIL'}; "
              f"bound (ensemble's matrix products alone) {bounds[p]:.2f}")
    print(f"   p=113 rate: {achieved / rate:.0%} of peak (target >= 40%): {'PASS' if achieved >= 0.4 * rate else 'FAIL'}")
    print(f"   peak RSS, 8 members: {whole:.2f} GiB (target < 4): {'PASS' if whole < 4 else 'FAIL'}; "
          f"--chunk 2: {chunked:.2f} GiB (bounded further: {'PASS' if chunked < whole else 'FAIL'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
