"""What continuation branches cost: a `--branch both` scan against an independent scan of the same grid.

    python benchmarks/branch_cost.py [--runs 3] [--device cpu]

For each setting below, runs ``landscape scan`` alternately as an independent scan and with ``--branch both``
(K norms, R restarts, the same steps per point), each in a fresh process and a fresh file, and prints the
median wall times, their ratio, and the ratio per point-step (``both`` computes 2 K R points, the independent
scan K R). Issue 14's target: ``both`` costs no more than 1.2x the independent scan of the same K x R points.

The branches are sequential in norm: a branch runs K x steps optimizer steps one after the other, on an
ensemble of 2 R members, where the independent scan runs ``steps`` steps on one ensemble of K R members. Where
a step's cost is per-operation overhead rather than arithmetic (small models on a CPU), the branches' wall
time grows with K; where it is arithmetic, with the member-steps, which are the same per point.
"""

from __future__ import annotations

import argparse
import sys

from paired import medians

SETTINGS = {
    "teacher-student, 17 norms x 2 restarts, 1000 steps": [
        "--task", "teacher-student", "--restarts", "2"],
    "modular MLP, 11 norms x 2 restarts, 500 steps": [
        "--task", "modular", "--norms", "0.3:1.5:11", "--restarts", "2", "--steps", "500"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    for name, argv in SETTINGS.items():
        argv = [*argv, "--device", args.device]
        i, b = medians("scan", argv, [*argv, "--branch", "both"], args.runs)
        print(f"{name}: independent {i:.2f} s, both branches {b:.2f} s (medians of {args.runs}); "
              f"ratio {b / i:.2f}, per point-step {b / (2 * i):.2f} (target <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
