"""A phase-diagram grid as one ensemble against its cells one at a time, and the grid's peak memory (issue 15).

    python benchmarks/phases.py [--config data/modular-phases.toml] [--steps 30] [--loop-cells 4]

0. peak    float32 ``torch.mm`` of two 2048 x 2048 matrices, best of 5: the machine's matrix-product rate.
1. speed   the preset's whole grid (11 x 11 = 121 cells: per-member learning rate and weight decay) trained as
           one ensemble for ``--steps`` steps (``train.run``, auto engine, logging at the first and last step only)
           against a sample of ``--loop-cells`` cells spread over the grid, each trained alone with the loop engine
           (plain autograd, one model, as a training script would); time per member-step and the ratio. The
           bound: the one-at-a-time time over one member's matrix-product FLOPs (counted by
           ``FlopCounterMode``) at the peak rate: no ensemble computing the same products beats it.
2. memory  peak resident memory (VmHWM) of ``landscape phases`` on the preset, 2 steps, in a fresh process:
           the chunk size is chosen automatically from memory.

Both in one run; the targets of issue 15 are printed with the measured values at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from landscape.config import settings as config
from landscape.experiments import train
from landscape.config.phases import PhasesConfig
from landscape.tasks import get_task


def timed(cfg, members) -> float:
    """Seconds to train ``members`` as one group (after one warm-up step of the same shapes)."""
    plan = train.make_plan(cfg, get_task(cfg.task, cfg.task_options))
    warm = config.TrainConfig(**{**cfg.__dict__, "steps": 1, "log_every": 1})
    train.run(train.make_plan(warm, plan.task), members, train.fresh_state(plan, members))
    t0 = time.perf_counter()
    train.run(plan, members, train.fresh_state(plan, members))
    return time.perf_counter() - t0


def peak() -> float:
    """GFLOP/s of a float32 2048^3 matrix product, best of 5 after warm-up."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = min(_time(lambda: a @ b) for _ in range(5))
    return 2 * 2048**3 / best / 1e9


def _time(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def member_flop(cfg) -> int:
    """Matrix-product FLOPs of one member's full-batch loss and gradient."""
    from torch.utils.flop_counter import FlopCounterMode

    task = get_task(cfg.task, cfg.task_options)
    torch.manual_seed(0)
    model = task.model()
    with FlopCounterMode(display=False) as counter:
        task.loss(model(task.x_train), task.y_train).backward()
    return counter.get_total_flops()


def peak_rss(preset: str) -> float:
    """GiB of peak resident memory of ``landscape phases`` on ``preset`` (2 steps), read as the child's VmHWM."""
    with tempfile.TemporaryDirectory() as d:
        code = ("import sys; from landscape.cli import main; rc = main(sys.argv[1:]); "
                "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))); "
                "sys.exit(rc)")
        argv = ["phases", "--config", preset, "--steps", "2", "--quiet", "--out", os.path.join(d, "p.h5")]
        out = subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True, text=True)
        return int(out.stdout.strip().splitlines()[-1]) / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "..", "data", "modular-phases.toml"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--loop-cells", type=int, default=4)
    args = ap.parse_args()
    grid = config.resolve(PhasesConfig, args.config, {"steps": args.steps, "log_every": args.steps})
    sweep = grid.train_config()
    members = sweep.members()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.config}: {len(members)} cells, "
          f"{args.steps} steps")

    rate = peak()
    print(f"\n0. peak: float32 matmul 2048^3: {rate:.1f} GFLOP/s")
    ens = timed(sweep, members) / (len(members) * args.steps)
    loop_cfg = config.TrainConfig(**{**sweep.__dict__, "engine": "loop"})
    sample = [members[int(i)] for i in np.linspace(0, len(members) - 1, args.loop_cells).round()]
    one = float(np.mean([timed(loop_cfg, [m]) for m in sample])) / args.steps
    ratio = one / ens
    floor = member_flop(sweep) / (rate * 1e9)
    print(f"\n1. speed: ensemble {ens * 1e3:.3f} ms, one at a time (loop engine, {len(sample)} cells) "
          f"{one * 1e3:.3f} ms per member-step: ratio {ratio:.1f}; one member's products take {floor * 1e3:.3f} ms "
          f"at the peak, so no ensemble of them beats {one / floor:.1f}x")

    rss = peak_rss(args.config)
    print(f"\n2. memory: peak RSS of `landscape phases --config {os.path.basename(args.config)}`: {rss:.2f} GiB")

    print("\ntargets (issue 15)")
    print(f"   grid ensemble / one-at-a-time loop, per member-step: {ratio:.1f}x (target >= 8): "
          f"{'PASS' if ratio >= 8 else 'FAIL'}; bound at the matmul peak {one / floor:.1f}x")
    print(f"   peak RSS: {rss:.2f} GiB (target < 4): {'PASS' if rss < 4 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
