"""Time the vmap ensemble engine against the one-point-at-a-time loop engine, in one run.

    python benchmarks/scan_speed.py [--steps 200] [--task teacher-student] [--device cpu]

Both engines do the same arithmetic (same seeds, same optimizer) on K norms;
the script prints point-steps per second for each and the speed-up.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from landscape import scan
from landscape.config import ScanConfig
from landscape.tasks import get_task


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
    print(f"{'K':>4} {'vmap s':>8} {'loop s':>8} {'vmap pt-step/s':>15} {'loop pt-step/s':>15} {'speed-up':>9} {'max rel diff':>13}")
    for k in [int(x) for x in args.ks.split(",")]:
        cfg = ScanConfig(task=args.task, norms=f"0.5:3:{k}", steps=args.steps)
        plan = scan.make_plan(cfg, task)
        timed(scan.make_plan(ScanConfig(task=args.task, norms="1", steps=5), task), "vmap", args.device)  # warm-up
        tv, rv = timed(plan, "vmap", args.device)
        tl, rl = timed(plan, "loop", args.device)
        work = k * args.steps
        diff = np.max(np.abs(rv.train_loss - rl.train_loss) / np.abs(rl.train_loss))
        print(f"{k:4d} {tv:8.2f} {tl:8.2f} {work / tv:15.0f} {work / tl:15.0f} {tl / tv:8.1f}x {diff:13.2e}")


if __name__ == "__main__":
    main()
