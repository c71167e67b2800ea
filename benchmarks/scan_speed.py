"""Time the ensemble engines (mlp, vmap) against the one-point-at-a-time loop engine, in one run.

    python benchmarks/scan_speed.py [--steps 200] [--task teacher-student] [--ks 8,32] [--device cpu]

All engines do the same arithmetic (same seeds, same optimizer) on K norms; the
script prints point-steps per second for each, the speed-up over the loop
engine and the largest relative difference of the final train loss from it.
``benchmarks/performance.py`` is the full measurement (issue 6).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from landscape.experiments import scan
from landscape.config.settings import ScanConfig
from landscape.tasks import get_task

ENGINES = ("mlp", "vmap", "loop")


def timed(plan, engine, device):
    points = np.arange(plan.n_points)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = scan.run_chunk(plan, points, device=device, engine=engine)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="teacher-student")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--ks", default="8,32")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    task = get_task(args.task)
    print(f"task {args.task}, {args.steps} steps, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'K':>4} {'engine':>6} {'s':>7} {'pt-steps/s':>11} {'vs loop':>8} {'max rel diff':>13}")
    warm = scan.make_plan(ScanConfig(task=args.task, norms="1", steps=5), task)
    for k in [int(x) for x in args.ks.split(",")]:
        plan = scan.make_plan(ScanConfig(task=args.task, norms=f"0.5:3:{k}", steps=args.steps), task)
        runs = {}
        for engine in ENGINES:
            timed(warm, engine, args.device)
            runs[engine] = timed(plan, engine, args.device)
        t_loop, r_loop = runs["loop"]
        for engine, (t, r) in runs.items():
            diff = np.max(np.abs(r.train_loss - r_loop.train_loss) / np.abs(r_loop.train_loss))
            print(f"{k:4d} {engine:>6} {t:7.2f} {k * args.steps / t:11.0f} {t_loop / t:7.1f}x {diff:13.2e}")


if __name__ == "__main__":
    main()
