"""What continuation branches cost: a `--branch both` scan against an independent scan of the same grid.

    python benchmarks/branch_cost.py [--runs 3] [--device cpu] [--compile off,on,auto] [--only teacher|modular]

For each setting below, runs ``landscape scan`` alternately as an independent scan and with ``--branch both``
(K norms, R restarts, the same steps per point), each in a fresh process and a fresh file, and prints the
median wall times, their ratio, and the ratio per point-step (``both`` computes 2 K R points, the independent
scan K R). Then the same comparison of the optimization steps alone, in this process (no start-up, no file):
the independent scan's chunks against the two branches' norm-by-norm ensembles of 2 R members. Issue 14's
target: ``both`` costs no more than 1.2x the independent scan of the same K x R points. Each comparison runs
under each ``--compile`` mode given (both scans under the same mode; ``auto`` may decide differently for each).

The branches are sequential in norm: a branch runs K x steps optimizer steps one after the other, on an
ensemble of 2 R members, where the independent scan runs ``steps`` steps on one ensemble of K R members. Where
a step's cost is per-operation overhead rather than arithmetic (small models on a CPU), the branches' wall
time grows with K; where it is arithmetic, with the member-steps, which are the same per point.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from paired import medians

SETTINGS = {
    "teacher-student, 17 norms x 2 restarts, 1000 steps": [
        "--task", "teacher-student", "--restarts", "2"],
    "modular MLP, 11 norms x 2 restarts, 500 steps": [
        "--task", "modular", "--norms", "0.3:1.5:11", "--restarts", "2", "--steps", "500"],
}


def step_times(argv: list[str], runs: int) -> tuple[float, float]:
    """Median seconds of the optimization steps alone: the independent scan's chunks, and both branches, each
    with the step ``landscape scan`` would use (``scan.stepper``: ``--compile`` in ``argv`` decides)."""
    from landscape.experiments import scan as scan_mod
    from landscape.cli import build_parser, config_of
    from landscape.config.settings import ScanConfig
    from landscape.engine.worker import chunks
    from landscape.tasks import get_task

    cfg = config_of(build_parser().parse_args(["scan", *argv]), ScanConfig)
    plan = scan_mod.make_plan(cfg, get_task(cfg.task, cfg.task_options))
    size, K, R = scan_mod.auto_chunk(plan), len(plan.norm), cfg.restarts
    step_i = scan_mod.stepper(plan, size=size)
    cfg_b = config_of(build_parser().parse_args(["scan", *argv, "--branch", "both"]), ScanConfig)
    step_b = scan_mod.stepper(scan_mod.make_plan(cfg_b, plan.task), size=size)

    def independent():
        for c in chunks(np.arange(plan.n_points), size):
            scan_mod.run_chunk(plan, c, step=step_i)

    def both():  # down and up as one ensemble per norm, as landscape.experiments.branches runs them
        warm = None
        for j in range(K):
            index = np.concatenate([(K - 1 - j) * R + np.arange(R), j * R + np.arange(R)])
            warm = scan_mod.concat([scan_mod.run_branch_step(plan, index[c], None if warm is None else warm[c],
                                                             step=step_b)
                                    for c in chunks(np.arange(len(index)), size)]).params

    independent()  # warm-up: first calls allocate, and compile where the steps are compiled
    both()
    a, b = [], []
    for _ in range(runs):
        for fn, out in ((independent, a), (both, b)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    print(f"  compiled: independent {step_i.compiled}, both {step_b.compiled}")
    return statistics.median(a), statistics.median(b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", default="off,on,auto",
                    help="the --compile modes to compare, each for both scans (default: off,on,auto)")
    ap.add_argument("--only", choices=["teacher", "modular"], help="one setting only")
    ap.add_argument("--no-end-to-end", action="store_true", help="time the steps alone only")
    args = ap.parse_args()
    for name, argv in SETTINGS.items():
        if args.only and not name.startswith({"teacher": "teacher", "modular": "modular"}[args.only]):
            continue
        for mode in args.compile.split(","):
            run = [*argv, "--device", args.device, "--compile", mode]
            print(f"{name}, --compile {mode}:")
            if not args.no_end_to_end:
                i, b = medians("scan", run, [*run, "--branch", "both"], args.runs)
                print(f"  end to end: independent {i:.2f} s, both branches {b:.2f} s (medians of {args.runs}); "
                      f"ratio {b / i:.2f}, per point-step {b / (2 * i):.2f} (target <= 1.2)")
            i, b = step_times(run, args.runs)
            print(f"  steps alone: independent {i:.2f} s, both branches {b:.2f} s; "
                  f"per point-step {b / (2 * i):.2f} (target <= 1.2)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
